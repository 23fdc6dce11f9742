"""gRPC command-line client of the COVID-19 QA Flow.

    python -m client ask "How does the virus spread?"          # answers with scores and sources
    python -m client search "How does the virus spread?" -k 5  # the closest FAQ entries
    python -m client index faq.csv docs/ 'papers/*.json'      # FAQ tables, PDF, HTML, Markdown, text, CORD-19, SQuAD
    python -m client index faq.csv --question-column Question --answer-column Answer
    python -m client count
    python -m client delete ID [ID ...] [--documents]         # --documents: whole documents, every passage

``--host``/``--port`` (default 127.0.0.1:54321, or $COVIDQA_HOST / $COVIDQA_GRPC_PORT) select the Flow.

Exit status: 0 on success; 2 for a user error (a file not found, a column missing, the Flow not reachable or
refusing the request), printed as one line ``error: ...`` on stderr, without a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap

from client.quiet import quiet_jina_client, quiet_library_warnings
from covidqa.index.options import COLLECTIONS
from covidqa.index.replies import combine, indexer_reply, shard_replies


class UserError(Exception):
    """A problem with what the user asked for (shown as one line, exit status 2)."""


def auth_metadata():
    """gRPC metadata carrying ``$COVIDQA_TOKEN`` (writes need it when the service has one); empty without it."""
    from executors.access import service_token

    token = service_token()
    return (('authorization', f'Bearer {token}'),) if token else ()


def _client(args):
    from jina import Client

    return Client(host=args.host, port=args.port, protocol='grpc')


def _post(args, endpoint, docs, parameters=None, return_responses=False, return_type=None):
    """``docs`` posted to ``endpoint``: the reply's documents (``return_type``, default ``DocList[QADoc]``; or
    jina's responses with ``return_responses``). Raises :class:`UserError` when the Flow refuses the request or
    cannot be reached."""
    from jina.excepts import BadServer

    from covidqa.docs import DocList, QADoc

    try:
        return _client(args).post(endpoint, docs, parameters=parameters or {},
                                  return_type=return_type or DocList[QADoc],
                                  request_size=args.batch_size, show_progress=endpoint == '/index',
                                  results_in_order=True, metadata=auth_metadata(),
                                  return_responses=return_responses)
    except BadServer as exc:
        description = getattr(getattr(exc.args[0], 'status', None), 'description', '') if exc.args else ''
        raise UserError(f'the Flow refused {endpoint}: {_one_line(description or exc)}') from None
    except ConnectionError as exc:
        raise UserError(f'cannot reach the Flow at {args.host}:{args.port} ({_one_line(exc)}); is it running? '
                        f'(make serve)') from None


def _one_line(message) -> str:
    return ' '.join(str(message).split())


def legible_score(score: float) -> str:
    """A probability as a person reads it: ``0.0011`` -> ``'0.11%'``, ``0.527`` -> ``'53%'``, ``0.00001`` ->
    ``'<0.01%'``."""
    percent = 100 * score
    if percent >= 9.95:
        return f'{percent:.0f}%'
    if percent >= 0.995:
        return f'{percent:.1f}%'
    if percent >= 0.005:
        return f'{percent:.2f}%'
    return '<0.01%'


def _short(text: str, width: int = 300) -> str:
    return textwrap.shorten(' '.join((text or '').split()), width=width, placeholder=' …')


def cmd_search(args):
    from covidqa.docs import DocList, QADoc

    result = _post(args, '/search', DocList[QADoc]([QADoc(text=args.question)]),
                   {'limit': args.limit, 'collection': args.collection})
    for rank, match in enumerate(result[0].matches, 1):
        print(f'{rank:>2}. [{match.score:.3f}] {match.text}')
        if match.answer:
            print(f'      {_short(match.answer, 200)}')
        if match.source or match.url:
            print(f'      source: {match.source or ""} {match.url or ""}'.rstrip())


def cmd_ask(args):
    from covidqa.docs import AnswerReply, DocList, QADoc

    result = _post(args, '/answer', DocList[QADoc]([QADoc(text=args.question)]),
                   {'limit': args.limit, 'top_k': args.top_k, 'collection': args.collection},
                   return_type=DocList[AnswerReply])
    answers = list(result[0].answers)
    if not answers or answers[0].no_answer:
        sure = f' ({legible_score(answers[0].score)} sure)' if answers else ''
        print(f'no answer in the indexed documents{sure}')
        if len(answers) > 1:
            print('best candidates, not trusted:')
    for rank, span in enumerate((a for a in answers if not a.no_answer), 1):
        print(f'{rank}. {span.answer}   [{legible_score(span.score)} likely right]')
        if span.title or span.source or span.url:
            kind = 'FAQ' if span.kind == 'faq' else 'document'
            where = ' '.join(x for x in (span.source or kind, span.url or '') if x)
            section = f' / {span.section}' if span.section else ''
            print(f'   from {kind}: {span.title or ""}{section}  ({where})')
        if span.context:
            before = span.context[max(0, span.start - 80):span.start]
            after = span.context[span.end:span.end + 80]
            print(f'   …{_short(before, 90)} >>{span.answer}<< {_short(after, 90)}…')


def user_errors_of_faq(call, *args, **kwargs):
    """``call(*args, **kwargs)`` (reading an FAQ file), a missing file or column, or a bad row, raised as
    :class:`UserError` with the reader's message and the options that choose the columns."""
    from covidqa.data.records import QADataError

    try:
        return call(*args, **kwargs)
    except QADataError as exc:
        raise UserError(_with_column_hint(str(exc))) from None
    except OSError as exc:
        raise UserError(str(exc)) from None


def _with_column_hint(problem: str) -> str:
    return problem + (' (name them with --question-column / --answer-column)' if 'missing column' in problem else '')


def load_faq(source, question_column: str, answer_column: str, skip_bad: bool):
    """The FAQ file's documents (:func:`toydata.generate_qa`); raises :class:`UserError` (:func:`user_errors_of_faq`)."""
    from toydata import generate_qa

    return user_errors_of_faq(generate_qa, source, question_column=question_column, answer_column=answer_column,
                              skip_bad=skip_bad)


def read_documents(args):
    """The documents of ``args.paths`` (:func:`covidqa.data.documents.load_documents`), with a progress bar of the
    files read. A bad file or row is named on stderr and skipped (``--strict``: the first one stops everything, as a
    :class:`UserError`); :class:`UserError` too when nothing could be read."""
    from tqdm import tqdm

    from covidqa.data.documents import load_documents
    from covidqa.data.records import QADataError

    with tqdm(desc='reading', unit=' files', disable=None, file=sys.stderr) as bar:
        def progress(done: int, total: int, passages: int) -> None:
            bar.total = total
            bar.set_postfix_str(f'{passages} passages', refresh=False)
            bar.update(done - bar.n)
        try:
            loaded = load_documents(args.paths, question_column=args.question_column,
                                    answer_column=args.answer_column, strict=args.strict, progress=progress)
        except QADataError as exc:
            raise UserError(_with_column_hint(str(exc))) from None
    if not len(loaded.docs):
        if loaded.problems:
            more = f' (and {len(loaded.problems) - 1} more problems)' if len(loaded.problems) > 1 else ''
            raise UserError(_with_column_hint(loaded.problems[0]) + more)
        raise UserError(f'nothing to index in {" ".join(args.paths)}: no file of a known format '
                        f'(FAQ tables .csv .tsv .jsonl; .json SQuAD or CORD-19; .txt .md .html .pdf)')
    for problem in loaded.problems:
        print(f'skipped: {_with_column_hint(problem)}', file=sys.stderr)
    return loaded


def cmd_index(args):
    import time

    from covidqa.docs import DocList, QADoc

    loaded = read_documents(args)
    docs = loaded.docs
    started = time.perf_counter()
    _post(args, '/index', docs)  # the same ids replace
    seconds = time.perf_counter() - started
    # a document indexed before is replaced whole: what is left of its older version (passages past the new ones,
    # FAQ rows edited or removed since) goes once the new version is in (never before: nothing is lost midway)
    parents = list(dict.fromkeys(d.parent_id for d in docs if d.parent_id))
    for start in range(0, len(parents), args.batch_size):
        batch = parents[start:start + args.batch_size]
        chosen = set(batch)
        _post(args, '/delete', DocList[QADoc]([QADoc(id=p) for p in batch]),
              {'documents': True, 'keep': [d.id for d in docs if d.parent_id in chosen]})
    print(f'{loaded.summary()}; indexed at {len(docs) / max(seconds, 1e-9):.1f} documents a second')
    problems = f' ({len(loaded.problems)} skipped, named above)' if loaded.problems else ''
    print(f'indexed {len(docs)} documents from {" ".join(args.paths)}{problems}')


def cmd_count(args):
    from covidqa.docs import DocList, QADoc

    response = _post(args, '/count', DocList[QADoc](), return_responses=True)
    print(indexer_reply(response[0].parameters.get('__results__', {}))['count'])


def cmd_delete(args):
    from covidqa.docs import DocList, QADoc

    responses = _post(args, '/delete', DocList[QADoc]([QADoc(id=i) for i in args.ids]),
                      {'documents': True} if args.documents else None, return_responses=True)
    # one response a --batch-size of ids: their shards' replies together
    reply = combine([r for response in responses
                     for r in shard_replies(response.parameters.get('__results__', {}))])
    deleted = reply['deleted']
    print(f'deleted {len(deleted)}: {" ".join(deleted)}')
    if reply['missing']:
        print(f'not found: {" ".join(sorted(reply["missing"]))}')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m client', description=__doc__.split('\n\n')[0])
    parser.add_argument('--host', default=os.environ.get('COVIDQA_HOST', '127.0.0.1'))
    parser.add_argument('--port', type=int, default=int(os.environ.get('COVIDQA_GRPC_PORT', 54321)))
    parser.add_argument('--batch-size', type=int, default=64, help='documents per request')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('ask', help='answer a question from the indexed FAQ and documents')
    p.add_argument('question')
    p.add_argument('-k', '--top-k', type=int, default=3, help='answers to show')
    p.add_argument('-l', '--limit', type=int, default=5, help='FAQ entries (and passages) to read')
    p.add_argument('-c', '--collection', choices=COLLECTIONS, default='auto',
                   help="'faq', 'literature', 'all', or 'auto': the FAQ when it answers, else the literature")
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser('search', help='find the closest FAQ entries')
    p.add_argument('question')
    p.add_argument('-l', '--limit', '-k', type=int, default=5)
    p.add_argument('-c', '--collection', choices=COLLECTIONS, default='all', help="'faq', 'literature' or 'all'")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser('index', help='index FAQ tables and documents: files, folders, globs (.csv .tsv .jsonl '
                                     'FAQ tables; .json SQuAD or CORD-19; .txt .md .html .pdf)')
    p.add_argument('paths', nargs='+', metavar='PATH')
    p.add_argument('--question-column', default='question', help="an FAQ table's question column")
    p.add_argument('--answer-column', default='answer', help="an FAQ table's answer column")
    p.add_argument('--strict', action='store_true', help='stop at the first bad file or row (default: name it on '
                                                          'stderr, skip it and index the rest)')
    p.set_defaults(func=cmd_index)
    p = sub.add_parser('count', help='number of stored documents')
    p.set_defaults(func=cmd_count)
    p = sub.add_parser('delete', help='delete documents by id')
    p.add_argument('ids', nargs='+')
    p.add_argument('--documents', action='store_true', help='the ids are document ids: delete every passage of each')
    p.set_defaults(func=cmd_delete)
    args = parser.parse_args(argv)
    quiet_library_warnings()  # before jina is imported (the commands import it)
    quiet_jina_client()
    try:
        args.func(args)
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
