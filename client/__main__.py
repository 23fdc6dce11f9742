"""gRPC command-line client of the COVID-19 QA Flow.

    python -m client ask "How does the virus spread?"          # answers with scores and sources
    python -m client search "How does the virus spread?" -k 5  # the closest FAQ entries
    python -m client index faq.csv [--question-column title]  # CSV with question, answer[, wrong_answer]
    python -m client count
    python -m client delete ID [ID ...]

``--host``/``--port`` (default 127.0.0.1:54321, or $COVIDQA_HOST / $COVIDQA_GRPC_PORT) select the Flow.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap

from covidqa.shard_replies import indexer_reply


def auth_metadata():
    """gRPC metadata carrying ``$COVIDQA_TOKEN`` (writes need it when the service has one); empty without it."""
    from executors.access import service_token

    token = service_token()
    return (('authorization', f'Bearer {token}'),) if token else ()


def _client(args):
    from jina import Client

    return Client(host=args.host, port=args.port, protocol='grpc')


def _post(args, endpoint, docs, parameters=None):
    from jina.excepts import BadServer

    from covidqa.docs import DocList, QADoc

    try:
        return _client(args).post(endpoint, docs, parameters=parameters or {}, return_type=DocList[QADoc],
                                  request_size=args.batch_size, show_progress=endpoint == '/index',
                                  results_in_order=True, metadata=auth_metadata())
    except BadServer as exc:
        description = getattr(getattr(exc.args[0], 'status', None), 'description', '') if exc.args else ''
        sys.exit(f'error from the Flow: {description or exc}')
    except ConnectionError as exc:
        sys.exit(f'cannot reach the Flow at {args.host}:{args.port} ({exc}); is it running? (make serve)')


def _short(text: str, width: int = 300) -> str:
    return textwrap.shorten(' '.join((text or '').split()), width=width, placeholder=' …')


def cmd_search(args):
    from covidqa.docs import DocList, QADoc

    result = _post(args, '/search', DocList[QADoc]([QADoc(text=args.question)]), {'limit': args.limit})
    for rank, match in enumerate(result[0].matches, 1):
        print(f'{rank:>2}. [{match.score:.3f}] {match.text}')
        if match.answer:
            print(f'      {_short(match.answer, 200)}')
        if match.source or match.url:
            print(f'      source: {match.source or ""} {match.url or ""}'.rstrip())


def cmd_ask(args):
    from covidqa.docs import DocList, QADoc

    result = _post(args, '/answer', DocList[QADoc]([QADoc(text=args.question)]),
                   {'limit': args.limit, 'top_k': args.top_k})
    query = result[0]
    sources = {m.id: m for m in query.matches}
    if not query.answers:
        print('no answer found')
    for rank, span in enumerate(query.answers, 1):
        match = sources.get(span.context_id)
        if not span.answer:
            print(f'{rank}. (no answer above the threshold) [{span.score:.3f}]')
            continue
        print(f'{rank}. {span.answer}   [score {span.score:.3f}]')
        if match is not None:
            print(f'   from: {match.text}  ({match.source or "FAQ"}{" " + match.url if match.url else ""})')
        if span.context:
            before = span.context[max(0, span.start - 80):span.start]
            after = span.context[span.end:span.end + 80]
            print(f'   …{_short(before, 90)} >>{span.answer}<< {_short(after, 90)}…')


def cmd_index(args):
    from toydata import generate_qa

    docs = generate_qa(args.file, question_column=args.question_column, skip_bad=args.skip_bad)
    _post(args, '/index', docs)
    print(f'indexed {len(docs)} documents from {args.file}' + (f' ({docs.skipped} bad rows skipped)'
                                                              if docs.skipped else ''))


def cmd_count(args):
    from covidqa.docs import DocList, QADoc

    response = _client(args).post('/count', DocList[QADoc](), return_responses=True)
    print(indexer_reply(response[0].parameters.get('__results__', {}))['count'])


def cmd_delete(args):
    from covidqa.docs import DocList, QADoc

    response = _client(args).post('/delete', DocList[QADoc]([QADoc(id=i) for i in args.ids]), return_responses=True)
    deleted = indexer_reply(response[0].parameters.get('__results__', {}))['deleted']
    print(f'deleted {len(deleted)}: {" ".join(deleted)}')
    missing = set(args.ids) - set(deleted)
    if missing:
        print(f'not found: {" ".join(sorted(missing))}')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m client', description=__doc__.split('\n\n')[0])
    parser.add_argument('--host', default=os.environ.get('COVIDQA_HOST', '127.0.0.1'))
    parser.add_argument('--port', type=int, default=int(os.environ.get('COVIDQA_GRPC_PORT', 54321)))
    parser.add_argument('--batch-size', type=int, default=64, help='documents per request')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('ask', help='answer a question from the indexed FAQ')
    p.add_argument('question')
    p.add_argument('-k', '--top-k', type=int, default=3, help='answers to show')
    p.add_argument('-l', '--limit', type=int, default=5, help='FAQ entries to read')
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser('search', help='find the closest FAQ entries')
    p.add_argument('question')
    p.add_argument('-l', '--limit', '-k', type=int, default=5)
    p.set_defaults(func=cmd_search)
    p = sub.add_parser('index', help='index a CSV with question, answer[, wrong_answer] columns')
    p.add_argument('file')
    p.add_argument('--question-column', default='question')
    p.add_argument('--skip-bad', action='store_true', help='skip rows with empty fields (counted) instead of failing')
    p.set_defaults(func=cmd_index)
    p = sub.add_parser('count', help='number of stored documents')
    p.set_defaults(func=cmd_count)
    p = sub.add_parser('delete', help='delete documents by id')
    p.add_argument('ids', nargs='+')
    p.set_defaults(func=cmd_delete)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == '__main__':
    main()
