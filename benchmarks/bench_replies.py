"""``/answer`` latency and reply size of the Flow of the checkout this runs in (a script, not a test).

For a before/after comparison run it from the root of each checkout with that checkout first on the path (it starts
*that* checkout's flow.yml on free 127.0.0.1 ports, a temporary ``$COVIDQA_HOME``), e.g. ``git worktree add /tmp/old
de99275 && cd /tmp/old && PYTHONPATH=. /path/to/.venv/bin/python /path/to/benchmarks/bench_replies.py``. The FAQ (``$COVIDQA_DATA``) is indexed with a
``wrong_answer`` per entry (as ``toydata.generate_qa`` gives); 127 questions (every other FAQ question, plus 20 repeats
of two others), one a request, over gRPC and HTTP. Prints one JSON line: p50s and the median HTTP reply size.
"""
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from client.flowctl import FlowProcess
from covidqa.docs import DocList, QADoc

DATA = Path(os.environ.get('COVIDQA_DATA', '../shared/data'))


def main() -> int:
    with open(DATA / 'covid_faq_deepset/faq_covidbert.csv', newline='', encoding='utf-8') as handle:
        rows = [r for r in csv.DictReader(handle) if r['question'].strip() and r['answer'].strip()]
    questions = [r['question'] for r in rows][::2] + ['What is the capital of France?',
                                                       'How long is the incubation period?'] * 10
    with tempfile.TemporaryDirectory() as home, FlowProcess(home=home, ready_timeout=600) as flow:
        client = flow.client('grpc')
        client.post('/index', DocList[QADoc]([QADoc(id=str(i), text=r['question'], answer=r['answer'],
                                                    wrong_answer=rows[(i + 1) % len(rows)]['answer'])
                                              for i, r in enumerate(rows)]), request_size=32)
        for q in questions[:5]:
            client.post('/answer', DocList[QADoc]([QADoc(text=q)]))
        grpc, http, sizes = [], [], []
        for q in questions:
            started = time.perf_counter()
            client.post('/answer', DocList[QADoc]([QADoc(text=q)]))
            grpc.append(time.perf_counter() - started)
        for q in questions:
            started = time.perf_counter()
            reply = requests.post(f'{flow.http_url}/answer', json={'data': [{'text': q}]}, timeout=60)
            http.append(time.perf_counter() - started)
            sizes.append(len(reply.content))
    print(json.dumps({'checkout': str(Path(sys.modules['client.flowctl'].__file__).resolve().parents[1]), 'questions': len(questions),
                      'grpc_p50_ms': round(1000 * statistics.median(grpc), 1),
                      'http_p50_ms': round(1000 * statistics.median(http), 1),
                      'http_reply_bytes_median': statistics.median(sizes)}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
