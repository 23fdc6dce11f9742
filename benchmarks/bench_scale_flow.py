"""The 1M-document index through the whole Flow (issue 16: "report the same through the whole Flow"; a script, not
a test): ``make bench-scale-flow``.

1. Builds (or reuses) a store of ``--docs`` synthetic 384-d documents in ``--work/index/shard-0``, as
   ``benchmarks/bench_scale.py`` builds its stores (:func:`bench_scale.build`, HNSW ``M`` 16, ``ef_construction``
   100; ~14 min for 1M on 2 cores, reused when it already holds the documents).
2. Starts ``flow.yml`` (:class:`client.flowctl.FlowProcess`) with the indexer on that store (``index: hnsw``,
   ``ef_search`` ``--ef``), stops it (the first start also exports the ONNX models into the home), and times the
   second start to ready: the whole Flow's restart with a 1M index.
3. Sends real questions (the FAQ questions of ``covid_faq_deepset``, embedded by the Flow's embedder) to ``/search``
   (top 10) through the gateway with :class:`client.grpc_stub.GrpcStub`: p50/p99 at one client, and QPS at
   ``--clients`` clients. The documents are synthetic, so the matches mean nothing; the work per query is the real
   one (embedding, HNSW search over 1M vectors, reading 10 documents from SQLite, 3 gRPC hops).
4. Memory (PSS, RSS) of the Flow, and the indexer's own RSS.

Writes ``benchmarks/out/bench_scale_flow.json`` and prints a table::

    python benchmarks/bench_scale_flow.py [--docs 1000000] [--work /tmp/bench_scale_flow] [--ef 256]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from bench_scale import build, store_ready
from measure import cpu_state, memory_of, percentile, process_tree, run_load

from client.flowctl import FlowProcess
from client.grpc_stub import GrpcStub
from covidqa.docs import DocList, QADoc
from covidqa.paths import FAQ_FILE, data_dir

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--docs', type=int, default=1_000_000)
    parser.add_argument('--work', type=Path, default=Path('/tmp/bench_scale_flow'))
    parser.add_argument('--ef', type=int, default=256, help="the indexer's ef_search (its default)")
    parser.add_argument('--queries', type=int, default=200, help='one-client queries')
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--duration', type=float, default=15.0, help='seconds of the multi-client load')
    parser.add_argument('--M', type=int, default=16)
    parser.add_argument('--ef-construction', type=int, default=100)
    parser.add_argument('--threads', type=int, default=2, help='HNSW build threads')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'out' / 'bench_scale_flow.json')
    args = parser.parse_args()

    shard = args.work / 'index' / 'shard-0'
    result: dict = {'docs': args.docs, 'ef_search': args.ef, 'cpu_start': cpu_state()}
    if store_ready(shard, args.docs):
        result['build'] = json.loads((shard / 'build.json').read_text())
        print(f'reusing the store in {shard}: {result["build"]}', flush=True)
    else:
        print(f'building {args.docs} documents into {shard} ...', flush=True)
        shard.parent.mkdir(parents=True, exist_ok=True)
        result['build'] = build(shard, np.arange(args.docs), args)

    from toydata import generate_qa

    questions = [d.text for d in generate_qa(data_dir() / FAQ_FILE)]
    overrides = {'indexer': {'index': 'hnsw', 'index_dir': str(args.work / 'index'), 'ef_search': args.ef}}
    home = args.work / 'home'
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with FlowProcess(home=home, overrides=overrides, ready_timeout=600):  # first start: ONNX exports into home
        result['flow_first_ready_s'] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    with FlowProcess(home=home, overrides=overrides, ready_timeout=600) as flow:
        result['flow_ready_s'] = round(time.perf_counter() - started, 2)
        print(f'Flow ready in {result["flow_ready_s"]} s with {args.docs} documents', flush=True)
        stub = GrpcStub(flow.grpc_port)
        counted = stub.post('/count', DocList[QADoc]())[0].parameters['__results__']
        result['count'] = counted
        for question in questions[:10]:  # warm-up
            stub.post('/search', DocList[QADoc]([QADoc(text=question)]), {'limit': 10})
        latencies = []
        for k in range(args.queries):
            t0 = time.perf_counter()
            reply = stub.post('/search', DocList[QADoc]([QADoc(text=questions[k % len(questions)])]), {'limit': 10})
            latencies.append(1000 * (time.perf_counter() - t0))
            if len(reply[0].docs[0].matches) != 10:
                raise SystemExit(f'/search returned {len(reply[0].docs[0].matches)} matches, not 10')
        result['one_client'] = {'n': len(latencies), 'p50_ms': round(statistics.median(latencies), 1),
                                'p99_ms': round(percentile(latencies, 99), 1),
                                'mean_ms': round(statistics.fmean(latencies), 1)}

        def make_caller():
            own = GrpcStub(flow.grpc_port)
            return lambda question: own.post('/search', DocList[QADoc]([QADoc(text=question)]), {'limit': 10})

        load = run_load(make_caller, questions, args.clients, args.duration, min_requests=args.clients)
        result['clients'] = {'clients': args.clients, 'qps': load.qps, 'p50_ms': load.p50_ms, 'p95_ms': load.p95_ms,
                             'errors': load.errors}
        rss, pss, _ = memory_of(process_tree(flow.proc.pid))
        indexer_pid = next(iter(flow.replica_pids('indexer').values()), None)
        result['memory_mb'] = {'flow_rss': round(rss / 2**20), 'flow_pss': round(pss / 2**20),
                               'indexer_rss': round(memory_of([indexer_pid])[0] / 2**20) if indexer_pid else None}
        stub.close()
    result['cpu_end'] = cpu_state()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    one, many = result['one_client'], result['clients']
    print(f'\n| {args.docs} docs, 1 shard, ef {args.ef} | number |\n|---|---|\n'
          f'| Flow ready (restart with the index on disk) | {result["flow_ready_s"]} s |\n'
          f'| /search top-10 through the Flow, 1 client | p50 {one["p50_ms"]} ms, p99 {one["p99_ms"]} ms |\n'
          f'| /search, {many["clients"]} clients | {many["qps"]} QPS, p50 {many["p50_ms"]} ms, '
          f'p95 {many["p95_ms"]} ms |\n'
          f'| memory | Flow PSS {result["memory_mb"]["flow_pss"]} MB, indexer RSS '
          f'{result["memory_mb"]["indexer_rss"]} MB |\n\nwrote {args.out}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
