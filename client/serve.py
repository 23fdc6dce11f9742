"""``make serve``: start the Flow on 127.0.0.1 (gRPC 54321, HTTP 8080), index the FAQ data on first run, serve
until Ctrl-C.

    python -m client.serve [--faq FILE_OR_URL] [--grpc-port 54321] [--http-port 8080] [--home DIR]

The Flow runs as ``jina flow --uses flow.yml`` in a child process (logs in ``<home>/flow.log``); it is stopped by its
PID with SIGINT when this script ends.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time

from client.quiet import quiet_library_warnings

quiet_library_warnings()  # before client.flowctl imports jina: this module is the launcher's entry point

from client.flowctl import FlowProcess  # noqa: E402
from covidqa.index.replies import indexer_reply  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m client.serve', description=__doc__.split('\n\n')[0])
    parser.add_argument('--faq', default=None, help='CSV (path or URL) with question, answer columns to index '
                        'when the index is empty (default: the deepset COVID-19 FAQ: its copy under $COVIDQA_DATA, '
                        'else downloaded once)')
    parser.add_argument('--question-column', default='question')
    parser.add_argument('--answer-column', default='answer')
    parser.add_argument('--grpc-port', type=int, default=54321)
    parser.add_argument('--http-port', type=int, default=8080)
    parser.add_argument('--home', default=None, help='where models, index and labels live (default: $COVIDQA_HOME, '
                        'else ./workspace)')
    parser.add_argument('--no-wait', action='store_true', help='index, then stop (for scripts)')
    args = parser.parse_args(argv)
    from client.__main__ import UserError, auth_metadata, load_faq, user_errors_of_faq
    from covidqa.paths import service_home
    from toydata import check_faq_columns, default_faq_source

    source = args.faq or default_faq_source()
    try:  # a file named here is checked before anything starts: a wrong column is told in a second
        if args.faq:
            user_errors_of_faq(check_faq_columns, source, args.question_column, args.answer_column)
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    home = service_home(args.home)
    flow = FlowProcess(home=home, grpc_port=args.grpc_port, http_port=args.http_port, log_path=home / 'flow.log')
    print(f'starting the Flow (logs: {flow.log_path}) ...', flush=True)
    flow.start()
    print(f'ready in {flow.startup_seconds:.1f}s', flush=True)
    try:
        from covidqa.docs import DocList, QADoc

        client = flow.client()
        counted = client.post('/count', DocList[QADoc](), return_responses=True)[0].parameters['__results__']
        stored = indexer_reply(counted)['count']
        if stored == 0:
            try:
                docs = load_faq(source, args.question_column, args.answer_column, skip_bad=True)
            except UserError as exc:
                print(f'error: {exc}', file=sys.stderr)
                return 2
            print(f'indexing {len(docs)} FAQ entries from {source} ...', flush=True)
            client.post('/index', docs, request_size=32, show_progress=True, metadata=auth_metadata())
        else:
            print(f'the index already holds {stored} documents', flush=True)
        print(f'''
Serving COVID-19 QA on 127.0.0.1
  gRPC : 127.0.0.1:{flow.grpc_port}     python -m client ask "How does the virus spread?"
  HTTP : {flow.http_url}    curl -s -XPOST {flow.http_url}/answer -H 'Content-Type: application/json' \\
                                   -d '{{"data":[{{"text":"How does the virus spread?"}}]}}'
  Ask  : {flow.http_url}/         Labeler: {flow.http_url}/labeler     API: {flow.http_url}/docs
Press Ctrl-C to stop.''', flush=True)
        if args.no_wait:
            return 0
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while flow.proc.poll() is None:
            time.sleep(1)
        print(f'the Flow exited with {flow.proc.returncode}; see {flow.log_path}', file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print('\nstopping ...', flush=True)
    finally:
        flow.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
