"""Scale benchmark of the indexer's store (issue 16 part 3; a script, not a test): ``make bench-scale``.

Synthetic 384-d vectors (a clustered Gaussian mixture, normalised; see :func:`vectors`) at 10k, 100k and 1M documents,
in :class:`covidqa.index.store.DocumentStore` with ``index='hnsw'`` (one shard; and two shards of half the documents each,
queried one after the other and merged), measured *inside the store* (no Flow):

- index throughput (docs/s: upserts of 10k documents, SQLite + HNSW insert with ``--threads`` threads), the time to
  write the HNSW snapshot, size on disk (SQLite + snapshot);
- restart: a fresh process opens the store (snapshot + replay) until its first search is answered; its RSS;
  ``--rebuild-at``: the same without a snapshot (the index rebuilt from the SQLite vectors);
- single-query top-10 latency p50/p99 and recall@10 against exact search (numpy matmul over every document) for
  ``--queries`` queries of the same mixture, at each ``--ef`` (the query beam);
- upsert of 64 new documents (one transaction + HNSW insert), 20 times, p50/p99; delete of 64 likewise.

``--real N``: the check on real text instead: up to N passages of the COVID-QA articles (300 characters each) and
the COVID-QA questions as queries, embedded with the base embedder (torch), recall@10 of the HNSW store against
exact search at each ``--ef`` (into the same JSON under ``real_text``).

The stores live under ``--work`` (default ``/tmp/bench_scale``) and are reused when they already hold the documents
(the 1M build takes long on 2 cores: run it once). Writes ``benchmarks/out/bench_scale.json``,
``docs/bench_scale.png`` (latency and recall against collection size) and ``benchmarks/SCALE_RESULTS.md``::

    python benchmarks/bench_scale.py [--sizes 10000 100000 1000000] [--shards-at 100000 1000000] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
from measure import cpu_state, percentile

from covidqa.docs import DocList, StoredDoc
from covidqa.index.store import DocumentStore

REPO = Path(__file__).resolve().parents[1]

DIM = 384
CLUSTERS = 500  # 20 documents a centre at 10k: top-10 within a cluster even there
NOISE = 0.5  # isotropic part: the finer structure of the neighbourhood is noisy
RANK = 48  # the mixture's within-cluster spread lies mostly in a 48-d subspace (real embeddings are not isotropic)
BATCH = 10000


def vectors(begin: int, end: int, seed: int = 0) -> np.ndarray:
    """Documents ``begin:end`` of the synthetic collection (deterministic per index): a centre (one of 500 random
    unit vectors) + 0.6 x a random direction of a shared 48-d subspace + 0.25 x isotropic noise, normalised. Query
    sets use another ``seed`` (new points of the same mixture)."""
    base = np.random.default_rng(12345)
    centres = base.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = np.linalg.qr(base.standard_normal((DIM, RANK)))[0].T.astype(np.float32)  # (RANK, DIM) orthonormal
    out = np.empty((end - begin, DIM), dtype=np.float32)
    for start in range(begin // BATCH * BATCH, end, BATCH):  # chunks aligned on BATCH: document i is always the same
        rng = np.random.default_rng([seed, start])
        x = centres[rng.integers(0, CLUSTERS, BATCH)]
        x = x + 0.6 * (rng.standard_normal((BATCH, RANK)).astype(np.float32) @ basis) / np.sqrt(RANK)
        x = x + NOISE * rng.standard_normal((BATCH, DIM)).astype(np.float32) / np.sqrt(DIM)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        lo, hi = max(begin, start), min(end, start + BATCH)
        out[lo - begin:hi - begin] = x[lo - start:hi - start]
    return out


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def build(directory: Path, ids: np.ndarray, args) -> dict:
    """Index the documents ``ids`` (sorted) into a new store under ``directory``; returns the build numbers."""
    shutil.rmtree(directory, ignore_errors=True)
    store = DocumentStore(directory, index='hnsw', M=args.M, ef_construction=args.ef_construction,
                          num_threads=args.threads, snapshot_every=10 ** 12)
    started = time.perf_counter()
    for begin in range(0, len(ids), BATCH):
        part = ids[begin:begin + BATCH]
        all_vectors = vectors(int(part[0]), int(part[-1]) + 1)
        chosen = all_vectors[part - part[0]]
        store.upsert(DocList[StoredDoc]([StoredDoc(id=str(i), text=f'synthetic document {i}', embedding=v)
                                         for i, v in zip(part.tolist(), chosen)]))
        print(f'  {directory.name}: {begin + len(part)}/{len(ids)} in {time.perf_counter() - started:.0f} s',
              flush=True)
    seconds = time.perf_counter() - started
    snap_started = time.perf_counter()
    store.snapshot(force=True)
    snapshot_s = time.perf_counter() - snap_started
    store.close()
    info = {'docs': int(len(ids)), 'build_s': round(seconds, 1), 'docs_per_s': round(len(ids) / seconds),
            'snapshot_s': round(snapshot_s, 2), 'disk_mb': round(disk_bytes(directory) / 2 ** 20, 1),
            'M': args.M, 'ef_construction': args.ef_construction, 'threads': args.threads}
    (directory / 'build.json').write_text(json.dumps(info))
    return info


def ground_truth(sizes: List[int], queries: np.ndarray, k: int = 10) -> Dict[int, np.ndarray]:
    """Exact top-``k`` document numbers of each query at each size (numpy matmul over all documents)."""
    best = {n: None for n in sizes}
    top_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    top_ids = np.zeros((len(queries), 0), dtype=np.int64)
    done = 0
    for n in sorted(sizes):
        while done < n:
            stop = min(n, done + 100000)
            scores = queries @ vectors(done, stop).T
            ids = np.broadcast_to(np.arange(done, stop), scores.shape)
            all_scores = np.concatenate([top_scores, scores], axis=1)
            all_ids = np.concatenate([top_ids, ids], axis=1)
            pick = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
            top_scores, top_ids = np.take_along_axis(all_scores, pick, 1), np.take_along_axis(all_ids, pick, 1)
            done = stop
        best[n] = top_ids.copy()
    return best  # type: ignore[return-value]


def serve(directories: List[str], queries_file: str, truth_file: str, ef_values: List[int], n: int,
          threads: int) -> dict:
    """In a fresh process: open the store(s) (restart), search, upsert; returns the numbers (printed as JSON)."""
    queries, truth = np.load(queries_file), np.load(truth_file)
    started = time.perf_counter()
    stores = [DocumentStore(d, index='hnsw', num_threads=threads) for d in directories]
    for store in stores:
        store.search(queries[0], 10)
    restart_s = time.perf_counter() - started
    rss_mb = int(Path('/proc/self/status').read_text().split('VmRSS:')[1].split()[0]) / 1024
    results = {'restart_s': round(restart_s, 2), 'rss_mb': round(rss_mb), 'by_ef': []}
    for ef in ef_values:
        latencies, hits = [], 0
        for store in stores:
            store._ann.ef_search = ef  # type: ignore[union-attr]
        for query, expected in zip(queries, truth):
            begin = time.perf_counter()
            found = []
            for store in stores:
                matched, scores = store.search(query, 10)[0]
                found.extend(zip(scores.tolist(), matched.id))
            top = [doc_id for _, doc_id in sorted(found, reverse=True)[:10]]
            latencies.append(time.perf_counter() - begin)
            hits += len(set(top) & {str(i) for i in expected.tolist()})
        results['by_ef'].append({'ef_search': ef, 'recall_at_10': round(hits / (10 * len(queries)), 4),
                                 'p50_ms': round(1000 * percentile(latencies, 50), 3),
                                 'p99_ms': round(1000 * percentile(latencies, 99), 3)})
    upserts, deletes = [], []
    extra = vectors(n, n + 64 * 20, seed=7)
    for rep in range(20):
        batch = DocList[StoredDoc]([StoredDoc(id=f'u{rep}-{j}', text='new', embedding=extra[rep * 64 + j])
                                    for j in range(64)])
        store = stores[rep % len(stores)]
        begin = time.perf_counter()
        store.upsert(batch)
        upserts.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        store.delete(batch.id)
        deletes.append(time.perf_counter() - begin)
    results.update({'upsert64_p50_ms': round(1000 * percentile(upserts, 50), 1),
                    'upsert64_p99_ms': round(1000 * percentile(upserts, 99), 1),
                    'delete64_p50_ms': round(1000 * percentile(deletes, 50), 1)})
    return results


def run_serve(directories: List[Path], work: Path, n: int, args) -> dict:
    command = [sys.executable, __file__, '--serve', *map(str, directories), '--n', str(n),
               '--queries-file', str(work / 'queries.npy'), '--truth-file', str(work / f'truth-{n}.npy'),
               '--ef', *map(str, args.ef), '--threads', str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(args.threads))
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def store_ready(directory: Path, n: int) -> bool:
    return (directory / 'build.json').is_file() and json.loads((directory / 'build.json').read_text())['docs'] == n


def plot(rows: List[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for shards, marker in ((1, 'o'), (2, 's')):
        chosen = sorted((r for r in rows if r['shards'] == shards), key=lambda r: r['docs'])
        if not chosen:
            continue
        sizes = [r['docs'] for r in chosen]
        left.plot(sizes, [r['p50_ms'] for r in chosen], marker=marker, label=f'p50, {shards} shard(s)')
        left.plot(sizes, [r['p99_ms'] for r in chosen], marker=marker, linestyle='--', label=f'p99, {shards} shard(s)')
        right.plot(sizes, [r['recall_at_10'] for r in chosen], marker=marker, label=f'{shards} shard(s)')
    left.set(xscale='log', xlabel='documents (384-d)', ylabel='top-10 query latency in the store (ms)',
             title='single-query latency')
    right.set(xscale='log', xlabel='documents (384-d)', ylabel='recall@10 vs exact', title='recall@10')
    right.axhline(0.95, color='grey', linewidth=0.8)
    left.axhline(5, color='grey', linewidth=0.8)
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(rows: List[dict]) -> str:
    lines = ['| docs | shards | build docs/s | disk MB | restart s | RSS MB | p50 ms | p99 ms | recall@10 | '
             'upsert-64 p50/p99 ms |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in sorted(rows, key=lambda r: (r['docs'], r['shards'])):
        lines.append(f"| {r['docs']:,} | {r['shards']} | {r['docs_per_s']:,} | {r['disk_mb']:,} | {r['restart_s']} | "
                     f"{r['rss_mb']:,} | {r['p50_ms']} | {r['p99_ms']} | {r['recall_at_10']} | "
                     f"{r['upsert64_p50_ms']} / {r['upsert64_p99_ms']} |")
    return '\n'.join(lines)


def real_text(n: int, args) -> dict:
    """Recall@10 and latency of the HNSW store on embedded COVID-QA passages (queries: COVID-QA questions)."""
    from covidqa.data.passages import read_squad_articles, split_articles
    from covidqa.embedding.encoder import Embedder
    from covidqa.paths import data_file

    articles = [a for part in ('train', 'dev', 'test')
                for a in read_squad_articles(data_file(f'covid_qa_deepset/covid-qa-{part}.json'))]
    passages = [p.text for p in split_articles(articles, max_size=300)][:n]
    questions = list(dict.fromkeys(q.question for a in articles for q in a.questions))[:args.queries]
    cache = args.work / f'real-{len(passages)}-{len(questions)}.npz'
    if cache.is_file():
        loaded = np.load(cache)
        doc_vectors, query_vectors = loaded['docs'], loaded['queries']
    else:
        embedder = Embedder('base', backend='torch', num_threads=args.threads, max_length=128, batch_size=64)
        started = time.perf_counter()
        doc_vectors = embedder.embed_texts(passages)
        query_vectors = embedder.embed_texts(questions)
        print(f'embedded {len(passages)} passages + {len(questions)} questions in '
              f'{time.perf_counter() - started:.0f} s', flush=True)
        np.savez(cache, docs=doc_vectors, queries=query_vectors)
    unit = doc_vectors / np.linalg.norm(doc_vectors, axis=1, keepdims=True)
    queries = query_vectors / np.linalg.norm(query_vectors, axis=1, keepdims=True)
    truth = np.argsort(-(queries @ unit.T), axis=1)[:, :10]
    directory = args.work / f'real-{len(passages)}'
    shutil.rmtree(directory, ignore_errors=True)
    store = DocumentStore(directory, index='hnsw', M=args.M, ef_construction=args.ef_construction,
                          num_threads=args.threads)
    store.upsert(DocList[StoredDoc]([StoredDoc(id=str(i), text=t, embedding=v)
                                     for i, (t, v) in enumerate(zip(passages, doc_vectors))]))
    by_ef = []
    for ef in args.ef:
        store._ann.ef_search = ef  # type: ignore[union-attr]
        latencies, hits = [], 0
        for query, expected in zip(query_vectors, truth):
            begin = time.perf_counter()
            found = store.search(query, 10)[0][0]
            latencies.append(time.perf_counter() - begin)
            hits += len(set(found.id) & {str(i) for i in expected.tolist()})
        by_ef.append({'ef_search': ef, 'recall_at_10': round(hits / (10 * len(queries)), 4),
                      'p50_ms': round(1000 * percentile(latencies, 50), 3),
                      'p99_ms': round(1000 * percentile(latencies, 99), 3)})
    store.close()
    return {'docs': len(passages), 'queries': len(questions), 'M': args.M, 'ef_construction': args.ef_construction,
            'by_ef': by_ef}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10000, 100000, 1000000])
    parser.add_argument('--shards-at', type=int, nargs='*', default=[100000, 1000000])
    parser.add_argument('--queries', type=int, default=1000)
    parser.add_argument('--ef', type=int, nargs='+', default=[32, 64, 96, 160, 256])
    parser.add_argument('--default-ef', type=int, default=256,
                        help='the row reported in the table and plot (the store\'s default ef_search: the smallest '
                             'of the sweep with recall@10 >= 0.95 at 1M)')
    parser.add_argument('--M', type=int, default=16)
    parser.add_argument('--ef-construction', type=int, default=100)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rebuild-at', type=int, nargs='*', default=[10000, 100000],
                        help='sizes at which a restart without snapshot is also measured')
    parser.add_argument('--work', type=Path, default=Path('/tmp/bench_scale'))
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'out' / 'bench_scale.json')
    parser.add_argument('--real', type=int, default=0, help='run the real-text check with this many passages instead')
    parser.add_argument('--report', action='store_true', help='only write the plot and tables from the JSON')
    parser.add_argument('--serve', nargs='*', help=argparse.SUPPRESS)
    parser.add_argument('--n', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--queries-file', help=argparse.SUPPRESS)
    parser.add_argument('--truth-file', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        print(json.dumps(serve(args.serve, args.queries_file, args.truth_file, args.ef, args.n, args.threads)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    real_out = args.out.with_name('bench_scale_real.json')
    if args.real:
        result = real_text(args.real, args)
        real_out.parent.mkdir(parents=True, exist_ok=True)
        real_out.write_text(json.dumps(result, indent=1))
        print(json.dumps(result))
        return
    if args.report:  # the rows again, at --default-ef
        rows = json.loads(args.out.read_text())['rows']
        for row in rows:
            chosen = next((e for e in row['by_ef'] if e['ef_search'] == args.default_ef), None)
            if chosen:
                row.update({'ef_search': args.default_ef, 'p50_ms': chosen['p50_ms'], 'p99_ms': chosen['p99_ms'],
                            'recall_at_10': chosen['recall_at_10']})
        report(rows, real_out)
        return
    queries = vectors(0, args.queries, seed=1)
    np.save(args.work / 'queries.npy', queries)
    started = time.perf_counter()
    truth = ground_truth(args.sizes, queries)
    print(f'exact ground truth in {time.perf_counter() - started:.0f} s', flush=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {'rows': []}
    rows = [r for r in previous.get('rows', []) if r['docs'] not in args.sizes]
    for n in args.sizes:
        np.save(args.work / f'truth-{n}.npy', truth[n])
        layouts = [1] + ([2] if n in args.shards_at else [])
        for shards in layouts:
            ids = np.arange(n)
            directories = [args.work / f'n{n}-s{shards}-{s}' for s in range(shards)]
            builds = []
            for s, directory in enumerate(directories):
                mine = ids[ids % shards == s]
                if store_ready(directory, len(mine)):
                    builds.append(json.loads((directory / 'build.json').read_text()))
                    print(f'reusing {directory}', flush=True)
                else:
                    print(f'building {directory} ({len(mine)} docs)', flush=True)
                    builds.append(build(directory, mine, args))
            state = cpu_state()
            served = run_serve(directories, args.work, n, args)
            chosen = next(e for e in served['by_ef'] if e['ef_search'] == args.default_ef)
            row = {'docs': n, 'shards': shards, 'M': args.M, 'ef_construction': args.ef_construction,
                   'ef_search': args.default_ef, 'threads': args.threads,
                   'build_s': round(sum(b['build_s'] for b in builds), 1),
                   'docs_per_s': round(n / sum(b['build_s'] for b in builds)),
                   'snapshot_s': round(sum(b['snapshot_s'] for b in builds), 2),
                   'disk_mb': round(sum(b['disk_mb'] for b in builds), 1),
                   **{k: served[k] for k in ('restart_s', 'rss_mb', 'upsert64_p50_ms', 'upsert64_p99_ms',
                                             'delete64_p50_ms')},
                   'p50_ms': chosen['p50_ms'], 'p99_ms': chosen['p99_ms'], 'recall_at_10': chosen['recall_at_10'],
                   'by_ef': served['by_ef'], 'cpu_before': state}
            if shards == 1 and n in args.rebuild_at:  # restart without a snapshot: rebuilt from SQLite
                moved = []
                for directory in directories:
                    for snap in directory.glob('ann-*.hnsw'):
                        target = snap.with_name(snap.name + '.aside')
                        snap.rename(target)
                        moved.append((target, snap))
                try:
                    row['restart_without_snapshot_s'] = run_serve(directories, args.work, n, args)['restart_s']
                finally:
                    for directory in directories:  # the rebuild wrote a snapshot of its own: keep the original
                        for snap in directory.glob('ann-*.hnsw'):
                            snap.unlink()
                    for target, snap in moved:
                        target.rename(snap)
            print(json.dumps({k: v for k, v in row.items() if k != 'by_ef'}), flush=True)
            rows = [r for r in rows if (r['docs'], r['shards']) != (n, shards)] + [row]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({'data': 'clustered Gaussian mixture, 384-d, normalised '
                                                    '(500 centres, 48-d shared subspace spread 0.6, isotropic 0.25)',
                                            'queries': args.queries, 'rows': rows}, indent=1))
    report(rows, real_out)


def report(rows: List[dict], real_out: Path) -> None:
    """``docs/bench_scale.png`` and ``benchmarks/SCALE_RESULTS.md`` from the measured rows (and the real-text
    check, when ``real_out`` exists)."""
    plot(rows, REPO / 'docs' / 'bench_scale.png')
    markdown = table(rows)
    sweep = '\n'.join(
        f"- {r['docs']:,} docs, {r['shards']} shard(s): " + '; '.join(
            f"ef {e['ef_search']}: {e['recall_at_10']} / {e['p50_ms']} / {e['p99_ms']}" for e in r['by_ef']) +
        (f"; restart without snapshot (rebuild from SQLite) {r['restart_without_snapshot_s']} s"
         if 'restart_without_snapshot_s' in r else '')
        for r in sorted(rows, key=lambda r: (r['docs'], r['shards'])))
    text = ('# Scale benchmark (`make bench-scale`)\n\nGenerated by benchmarks/bench_scale.py (see its docstring for '
            'what is measured). Synthetic data: a clustered Gaussian mixture, 384-d, normalised (500 centres, '
            'spread 0.6 in a shared 48-d subspace, isotropic noise 0.5); 1,000 queries of the same mixture; all '
            'numbers inside the store (no Flow), one process.\n\n' + markdown +
            '\n\nQuery beam sweep (ef_search: recall@10 / p50 ms / p99 ms):\n\n' + sweep + '\n')
    if real_out.is_file():
        real = json.loads(real_out.read_text())
        text += (f"\nReal text: {real['docs']:,} COVID-QA passages (300 characters), {real['queries']:,} COVID-QA "
                 f"questions, base embedder; HNSW M {real['M']}, ef_construction {real['ef_construction']}:\n\n" +
                 '\n'.join(f"- ef {e['ef_search']}: recall@10 {e['recall_at_10']}, p50 {e['p50_ms']} ms, "
                           f"p99 {e['p99_ms']} ms" for e in real['by_ef']) + '\n')
    (REPO / 'benchmarks' / 'SCALE_RESULTS.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
