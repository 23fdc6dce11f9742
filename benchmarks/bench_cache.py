"""Remembered answers on real-looking traffic, through the Flow (a script, not a test; ``make bench-cache``).

The deepset FAQ is indexed in ``flow.yml`` (free 127.0.0.1 ports, a temporary ``$COVIDQA_HOME``); then ``--requests``
questions are asked through ``/answer``, one a request, drawn with a Zipf-like repetition (the question of rank r
is drawn with probability proportional to ``1 / r ** s``, ``--zipf`` s) from the titles of xhlulu's community
questions (real people's COVID questions). Half of them are asked with other casing and spacing (the same question
to the reader). Prints the answer cache's hit rate (``/qa/status``), the share of repeats in the traffic (the most
a cache can hit), and p50/p95 latency of the hits and the misses.

Usage: ``.venv/bin/python benchmarks/bench_cache.py [--requests 400] [--zipf 1.1]`` (~3 min on 2 cores).
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from covidqa.paths import FAQ_FILE, data_dir


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float('nan')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-dir', help='data root (default $COVIDQA_DATA, else ../shared/data)')
    parser.add_argument('--requests', type=int, default=400)
    parser.add_argument('--zipf', type=float, default=1.1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    root = Path(args.data_dir) if args.data_dir else data_dir()
    community = root / 'covidqa_xhlulu_community' / 'community.csv'
    faq = root / FAQ_FILE
    for path in (community, faq):
        if not path.is_file():
            print(f'error: missing data file {path}', file=sys.stderr)
            return 2

    from client.flowctl import FlowProcess
    from covidqa.data.documents import load_documents
    from covidqa.docs import DocList, QADoc

    with open(community, newline='', encoding='utf-8') as f:
        titles = list(dict.fromkeys(row['title'].strip() for row in csv.DictReader(f) if row['title'].strip()))
    rng = random.Random(args.seed)
    rng.shuffle(titles)
    weights = [1.0 / (rank + 1) ** args.zipf for rank in range(len(titles))]
    traffic = rng.choices(titles, weights=weights, k=args.requests)
    asked = [q if rng.random() < 0.5 else '  ' + q.upper() + ' ' for q in traffic]
    repeats = 1 - len(set(traffic)) / len(traffic)

    with tempfile.TemporaryDirectory(prefix='covidqa-cache-') as home:
        with FlowProcess(home=home, ready_timeout=600,
                         env={'JINA_LOG_LEVEL': os.environ.get('JINA_LOG_LEVEL', 'WARNING')}) as flow:
            client = flow.client()
            client.post('/index', load_documents([faq]).docs, request_size=64)

            def stats():
                results = client.post('/qa/status', DocList[QADoc](), return_responses=True)[0] \
                    .parameters['__results__']
                return next(v for k, v in results.items() if k.startswith('reader'))['answer_cache']

            start = stats()
            hits, misses = [], []
            for question in asked:
                before = stats()['hits']
                t0 = time.perf_counter()
                client.post('/answer', DocList[QADoc]([QADoc(text=question)]), return_type=DocList[QADoc])
                took = time.perf_counter() - t0
                (hits if stats()['hits'] > before else misses).append(took)
            end = stats()
    hit_rate = (end['hits'] - start['hits']) / len(asked)
    print(f'{len(asked)} requests over {len(set(traffic))} distinct questions (Zipf s={args.zipf}): '
          f'repeats {repeats:.1%} of the traffic, cache hit rate {hit_rate:.1%}')
    for name, values in (('hits', hits), ('misses', misses)):
        if values:
            print(f'  {name}: {len(values)}, p50 {1000 * statistics.median(values):.1f} ms, '
                  f'p95 {1000 * percentile(values, 0.95):.1f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
