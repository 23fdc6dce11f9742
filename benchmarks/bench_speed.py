"""Speed on a CPU: ONNX Runtime vs torch, and the Flow vs an in-process baseline, in one run (a script, not a test).

On the same FAQ documents (``covid_faq_deepset/faq_covidbert.csv``: the FAQ question is embedded, its answer is the
reader's context) and the same questions, it measures:

1. **Embedding** docs/s, torch vs ONNX Runtime (fp32 and int8), at batch 1 and 32 (plus a batch-size sweep and
   length-sorted vs arrival-order batches), interleaved repetitions, best and median.
2. **Quality of int8** vs fp32: FAQ hit@1 (reworded FAQ questions -> their entry), top-10 agreement, and the
   reader's SQuAD F1 / EM on ``covid_qa_paragraphs/qa_dev.json``; reader windows/s per backend.
3. **In-process baseline**: numpy cosine search over torch embeddings + the reader checkpoint run the way
   transformers 4's ``pipeline("question-answering")`` runs it (transformers 5 removed that pipeline: see
   :class:`PipelineQA`), and the same with the project's batched :class:`~covidqa.reader.reader.ExtractiveReader`
   (torch). ``/search`` and ``/answer``-equivalent latency p50/p95 and QPS at 1, 4 and 16 concurrent callers.
4. **The Flow** (``flow.yml``, started as a subprocess with :class:`client.flowctl.FlowProcess`, stopped by PID):
   start-up time to ready (exports already cached), ``/index`` of the FAQ, ``/search`` and ``/answer`` latency
   p50/p95 and QPS over gRPC at 1, 4 and 16 concurrent clients (``--client stub``, the default: one channel per
   client thread, :class:`client.grpc_stub.GrpcStub`; ``--client jina``: jina's sync Client, which adds its own
   event loop and channel to every call), peak RSS (and PSS) summed over the Flow's process
   tree, PSS idle after the load, and PSS after ``--feedback-queries`` labelled queries (labeler-style ``/search`` +
   ``/feedback``, then ``/train``, re-embedding done), for each variant in ``--flows`` (``onnx``, ``onnx-int8``,
   ``torch``).
5. Ratios Flow / baseline.

Writes ``benchmarks/out/speed.json`` and ``benchmarks/out/speed.md``. Usage::

    .venv/bin/python benchmarks/bench_speed.py                       # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_speed.py --quick               # shorter load phases (~4 min)
    .venv/bin/python benchmarks/bench_speed.py --flows onnx         # only the fp32 ONNX Flow
    .venv/bin/python benchmarks/bench_speed.py --reader DIR          # another reader checkpoint

The reader: ``--reader``, else the service's reader (trained into ``$COVIDQA_HOME``, else the one shipped in
``models/reader/``). Timings on a shared machine: the script records the load average and CPU idle around every phase;
take numbers from a quiet machine and repeat them.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import string
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from measure import (
    PeakMemory,
    benchmark_reader,
    cpu_model,
    cpu_state,
    framework_floor,
    memory_of,
    per_process_rss,
    process_tree,
    run_load,
    wait_quiet,
)
from speed_baseline import FAQ, bench_baseline_in_child, load_faq
from speed_report import CONCURRENCY, compute_ratios, markdown, targets

from covidqa.models.loading import DEFAULT_EMBEDDER
from covidqa.paths import FAQ_FILE, data_dir

REPO = Path(__file__).resolve().parents[1]

OUT_DIR = REPO / 'benchmarks' / 'out'

# Questions a user might ask that are not verbatim FAQ questions (the load phases cycle through these and
# reworded FAQ questions).
USER_QUESTIONS = [
    'How does the coronavirus spread?', 'what are the symptoms of covid 19', 'Should I wear a face mask in public?',
    'Can my pet give me the virus?', 'How long does the virus survive on surfaces?', 'Is there a vaccine?',
    'who is at higher risk of severe illness', 'What should I do if I feel sick?',
    'How long is the incubation period?', 'Can children get COVID-19?', 'Is it safe to travel abroad?',
    'How do I clean and disinfect my home?', 'Does hand sanitizer kill the virus?',
    'Can I get infected twice?', 'What is social distancing?', 'How is COVID-19 diagnosed?',
]


# ------------------------------------------------------------------------------------------------ data
def reword(text: str) -> str:
    return text.lower().translate(str.maketrans('', '', string.punctuation)).strip()


def bench_questions(faq: FAQ, n: int) -> List[str]:
    """``n`` questions: the user questions, then reworded FAQ questions (every k-th), fixed order."""
    step = max(1, len(faq.questions) // max(1, n - len(USER_QUESTIONS)))
    reworded = [reword(q) for q in faq.questions[::step]]
    return (USER_QUESTIONS + reworded)[:n]


# ------------------------------------------------------------------------------------------------ embedding
def bench_embedding(texts: List[str], threads: int, reps: int, sweep: Sequence[int]) -> dict:
    from covidqa.embedding.encoder import Embedder
    from covidqa.embedding.pooling import pool
    from covidqa.models.onnx import OnnxEncoderRunner
    from covidqa.text.tokenization import pad_batch

    embedders = {
        'torch': Embedder(DEFAULT_EMBEDDER, backend='torch', num_threads=threads).load(),
        'onnx': Embedder(DEFAULT_EMBEDDER, backend='onnx', num_threads=threads).load(),
        'onnx_int8': Embedder(DEFAULT_EMBEDDER, backend='onnx', num_threads=threads),
    }
    embedders['onnx_int8']._runner = OnnxEncoderRunner(DEFAULT_EMBEDDER, num_threads=threads, quantize=True)
    ids = embedders['torch'].tokenizer.encode(texts)  # tokenized once, shared by every variant
    pad_id = embedders['torch'].tokenizer.pad_id

    def arrival_order(embedder, batch_size):  # no length sorting: padding to the longest of each chunk
        for begin in range(0, len(ids), batch_size):
            input_ids, mask = pad_batch(ids[begin:begin + batch_size], pad_id=pad_id)
            pool(embedder._runner(input_ids, mask), mask, 'cls')

    cases = [(name, bs, True) for name in embedders for bs in sorted(set(sweep) | {1, 32})]
    cases += [(name, 32, False) for name in embedders]
    times: Dict[tuple, List[float]] = {case: [] for case in cases}
    for name, embedder in embedders.items():  # warm-up (first calls allocate)
        embedder.embed_ids(ids[:32], batch_size=32)
    for _ in range(reps):  # interleaved, so background load hits every variant alike
        for case in cases:
            name, bs, sorted_ = case
            t0 = time.perf_counter()
            if sorted_:
                embedders[name].embed_ids(ids, batch_size=bs)
            else:
                arrival_order(embedders[name], bs)
            times[case].append(time.perf_counter() - t0)
    rows = []
    for (name, bs, sorted_), ts in times.items():
        rows.append({'backend': name, 'batch_size': bs, 'length_sorted': sorted_,
                     'docs_per_s_best': round(len(ids) / min(ts), 1),
                     'docs_per_s_median': round(len(ids) / float(np.median(ts)), 1)})
    lengths = [len(x) for x in ids]
    reference = embedders['torch'].embed_ids(ids)
    parity = {name: float(np.abs(e.embed_ids(ids) - reference).max()) for name, e in embedders.items()}

    def get(name, bs, sorted_=True, key='docs_per_s_best'):
        return next(r[key] for r in rows if r['backend'] == name and r['batch_size'] == bs
                    and r['length_sorted'] == sorted_)

    summary = {
        f'{name}_bs{bs}': get(name, bs) for name in embedders for bs in (1, 32)
    }
    summary.update({
        'onnx_over_torch_bs1': round(get('onnx', 1) / get('torch', 1), 2),
        'onnx_over_torch_bs32': round(get('onnx', 32) / get('torch', 32), 2),
        'int8_over_fp32_onnx_bs32': round(get('onnx_int8', 32) / get('onnx', 32), 2),
        'sorted_over_arrival_onnx_bs32': round(get('onnx', 32) / get('onnx', 32, False), 2),
        'sorted_over_arrival_torch_bs32': round(get('torch', 32) / get('torch', 32, False), 2),
    })
    for e in embedders.values():
        e._runner = None
    return {'docs': len(ids), 'tokens_mean': round(float(np.mean(lengths)), 1), 'tokens_max': int(max(lengths)),
            'threads': threads, 'reps': reps, 'rows': rows, 'summary': summary,
            'max_abs_diff_vs_torch': parity}


# ------------------------------------------------------------------------------------------------ quality
def cosine_top(queries: np.ndarray, docs: np.ndarray, k: int) -> np.ndarray:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    d = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    return np.argsort(-(q @ d.T), axis=1, kind='stable')[:, :k]


def bench_quality(faq: FAQ, reader_dir: Path, threads: int, reader_batch: int) -> dict:
    """fp32 vs int8 (and torch): FAQ hit@1 and the reader's F1/EM on the paragraph dev set."""
    from covidqa.data.records import read_qa_file
    from covidqa.embedding.encoder import Embedder
    from covidqa.models.onnx import OnnxEncoderRunner, OnnxQARunner
    from covidqa.reader.metrics import exact_match, f1_score
    from covidqa.reader.reader import ExtractiveReader

    out: dict = {'retrieval': {}, 'reader': {}}
    path = data_dir() / 'covid_qa_paragraphs' / 'qa_dev.json'
    records = read_qa_file(path)
    # task 1: reworded FAQ question -> its FAQ entry (what /search does); task 2 (harder, so differences show):
    # COVID-QA dev question -> the paragraph that answers it (paragraphs embedded from their first 128 tokens)
    queries = [reword(q) for q in faq.questions]
    truth = np.arange(len(faq.questions))
    paragraphs = sorted({r.context for r in records})
    para_truth = np.array([paragraphs.index(r.context) for r in records])
    tops = {}
    for name in ('torch', 'onnx', 'onnx_int8'):
        emb = Embedder(DEFAULT_EMBEDDER, backend='onnx' if name != 'torch' else 'torch', num_threads=threads)
        para = Embedder(DEFAULT_EMBEDDER, backend='onnx' if name != 'torch' else 'torch', num_threads=threads,
                        max_length=128)
        if name == 'onnx_int8':
            emb._runner = para._runner = OnnxEncoderRunner(DEFAULT_EMBEDDER, num_threads=threads, quantize=True)
        top = cosine_top(emb.embed_texts(queries), emb.embed_texts(faq.questions), 10)
        tops[name] = top
        ptop = cosine_top(emb.embed_texts([r.question for r in records]), para.embed_texts(paragraphs), 10)
        out['retrieval'][name] = {'hit_at_1': round(100 * float((top[:, 0] == truth).mean()), 2),
                                  'hit_at_3': round(100 * float((top[:, :3] == truth[:, None]).any(1).mean()), 2),
                                  'paragraph_hit_at_1': round(100 * float((ptop[:, 0] == para_truth).mean()), 2),
                                  'paragraph_hit_at_10': round(
                                      100 * float((ptop == para_truth[:, None]).any(1).mean()), 2)}
    for name in ('onnx', 'onnx_int8'):
        out['retrieval'][name]['top10_identical_to_torch_pct'] = round(
            100 * float((tops[name] == tops['torch']).all(1).mean()), 2)
    out['retrieval']['queries'] = len(queries)
    out['retrieval']['paragraph_queries'] = len(records)
    out['retrieval']['paragraphs'] = len(paragraphs)
    out['retrieval']['task'] = ('hit_at_k: reworded FAQ question (lowercase, no punctuation) -> its FAQ entry; '
                                'paragraph_hit_at_k: COVID-QA paragraph-dev question -> its paragraph')

    questions = [r.question for r in records]
    contexts = [[r.context] for r in records]
    gold = [list(r.gold_answers) or [r.answer_text] for r in records]
    runners = {
        'torch': None,
        'onnx': OnnxQARunner(reader_dir, num_threads=threads),
        'onnx_int8': OnnxQARunner(reader_dir, num_threads=threads, quantize=True),
    }
    for name, runner in runners.items():
        reader = ExtractiveReader(reader_dir, backend='torch', runner=runner, num_threads=threads,
                                  no_answer_threshold=0.0, batch_size=reader_batch).load()
        reader.read(questions[:4], contexts[:4])  # warm-up
        t0 = time.perf_counter()
        details = reader.read(questions, contexts)
        seconds = time.perf_counter() - t0
        predictions = [a[0].answer for a in details.answers]
        out['reader'][name] = {
            'f1': round(100 * float(np.mean([f1_score(p, g) for p, g in zip(predictions, gold)])), 2),
            'exact_match': round(100 * float(np.mean([exact_match(p, g) for p, g in zip(predictions, gold)])), 2),
            'windows_per_s': round(len(details.windows) / seconds, 1),
            'questions_per_s': round(len(records) / seconds, 2),
        }
        out['reader'][name]['_predictions'] = predictions
        del reader
    base = out['reader']['torch'].pop('_predictions')
    for name in ('onnx', 'onnx_int8'):
        preds = out['reader'][name].pop('_predictions')
        out['reader'][name]['same_answer_as_torch_pct'] = round(
            100 * float(np.mean([a == b for a, b in zip(preds, base)])), 2)
    out['reader']['questions'] = len(records)
    out['reader']['data'] = 'covid_qa_paragraphs/qa_dev.json'
    r, q = out['retrieval'], out['reader']
    # "within 1 point": int8 loses at most 1 point (a gain is fine) on every quality number of the two models
    losses = {
        'faq_hit_at_1': r['onnx']['hit_at_1'] - r['onnx_int8']['hit_at_1'],
        'paragraph_hit_at_1': r['onnx']['paragraph_hit_at_1'] - r['onnx_int8']['paragraph_hit_at_1'],
        'reader_f1': q['onnx']['f1'] - q['onnx_int8']['f1'],
        'reader_exact_match': q['onnx']['exact_match'] - q['onnx_int8']['exact_match'],
    }
    out['int8_loss_points'] = {k: round(v, 2) for k, v in losses.items()}
    out['int8_within_1_point'] = {
        'embedder': losses['faq_hit_at_1'] <= 1.0 and losses['paragraph_hit_at_1'] <= 1.0,
        'reader': losses['reader_f1'] <= 1.0 and losses['reader_exact_match'] <= 1.0,
    }
    return out


# ------------------------------------------------------------------------------------------------ the Flow
# a variant is the backend of the embedder, indexer and reader; 'onnx-int8' is flow.yml's (int8 dynamic quantization)
FLOW_VARIANTS = ('onnx', 'onnx-int8', 'torch')


def flow_overrides(backend: str, reader_dir: Path, threads: Optional[int], embed_batch: int,
                   reader_batch: int, embed_threads: Optional[int] = None) -> Dict[str, dict]:
    """``uses_with`` overrides for a Flow variant (a variant is a backend name). ``threads`` sets the reader's
    intra-op threads; the embedder and the indexer keep flow.yml's unless ``embed_threads`` is given."""
    embedder: Dict[str, object] = {'backend': backend, 'batch_size': embed_batch}
    indexer: Dict[str, object] = {'backend': backend}
    reader = {'backend': backend, 'model': str(reader_dir), 'batch_size': reader_batch}
    if threads:
        reader['num_threads'] = threads
    if embed_threads:
        embedder['num_threads'] = indexer['num_threads'] = embed_threads
    return {'embedder': embedder, 'indexer': indexer, 'reader': reader}


def flow_memory(root_pid: int) -> dict:
    """RSS / PSS / USS (MB) summed over the Flow's process tree now."""
    rss, pss, uss = memory_of(process_tree(root_pid))
    return {'rss_mb': round(rss / 2**20, 1), 'pss_mb': round(pss / 2**20, 1), 'uss_mb': round(uss / 2**20, 1)}


def bench_feedback_memory(flow, docs, queries: int, limit: int, settle: float = 10.0) -> dict:
    """What the labeler page does, ``queries`` times: ``/search`` a reworded FAQ question, accept its own entry
    (else the top match) and reject every other match (the page's default: unmarked matches count as rejected),
    ``/feedback``; rounds start by themselves every ``train_every`` labels. Then ``/train`` with ``wait`` (the last
    round, on every label), wait until the indexer has re-embedded with the new version, ``settle`` seconds, and
    measure the Flow's memory: training must not leave memory behind in the serving processes."""
    from covidqa.docs import DocList, MatchDoc, QADoc

    client = flow.client()
    started = time.perf_counter()
    labelled = 0
    for doc in list(docs)[:queries]:
        query = QADoc(text=reword(doc.text))
        found = client.post('/search', DocList[QADoc]([query]), parameters={'limit': limit},
                            return_type=DocList[QADoc])[0]
        if not len(found.matches):
            continue
        accepted = doc.id if any(m.id == doc.id for m in found.matches) else found.matches[0].id
        found.matches = DocList[MatchDoc]([MatchDoc(id=m.id, text=m.text,
                                                    label='accepted' if m.id == accepted else 'rejected')
                                           for m in found.matches])
        client.post('/feedback', DocList[QADoc]([found]))
        labelled += 1
    labelling_seconds = time.perf_counter() - started
    status = client.post('/train', DocList[QADoc](), parameters={'wait': True, 'timeout': 900},
                         return_responses=True)[0].parameters['__results__']
    trained = next(iter(status.values()))
    target = trained.get('target_version')
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the indexer re-embeds the store, then moves ACTIVE
        counted = client.post('/count', DocList[QADoc](), return_responses=True)[0].parameters['__results__']
        shard = next(iter(counted.values()))
        if shard.get('model_version') == target and not shard.get('reembedding'):
            break
        time.sleep(1)
    check = client.post('/search', DocList[QADoc]([QADoc(text='How does the virus spread?')]),
                        parameters={'limit': limit}, return_type=DocList[QADoc])[0]
    time.sleep(settle)
    return {'labelled_queries': labelled, 'labelling_seconds': round(labelling_seconds, 1),
            'rounds': trained.get('round'), 'target_version': target, 'last_loss': trained.get('last_loss'),
            'last_round_seconds': trained.get('last_round_seconds'), 'training_state': trained.get('training'),
            'searches_after_round': len(check.matches), 'seconds': round(time.perf_counter() - started, 1),
            'memory_after': flow_memory(flow.proc.pid), 'processes_after': per_process_rss(flow.proc.pid)}


def bench_flow(variant: str, home: Path, faq_path: Path, reader_dir: Path, questions: List[str], limit: int,
               duration: float, concurrency: Sequence[int], threads: Optional[int], embed_batch: int,
               reader_batch: int, feedback_queries: int = 0, client_kind: str = 'stub',
               embed_threads: Optional[int] = None) -> Tuple[dict, List[str]]:
    from client.flowctl import FlowProcess
    from client.grpc_stub import GrpcStub
    from covidqa.docs import DocList, QADoc
    from toydata import generate_qa

    for state in ('index', 'feedback', 'models/embedder'):  # a fresh index and labels each run; the ONNX cache stays
        shutil.rmtree(home / state, ignore_errors=True)
    overrides = flow_overrides(variant, reader_dir, threads, embed_batch, reader_batch, embed_threads)
    log_path = home / f'flow-{variant}.log'
    log_path.unlink(missing_ok=True)
    flow = FlowProcess(home=home, overrides=overrides, log_path=log_path, ready_timeout=300,
                       env={'JINA_LOG_LEVEL': 'WARNING'})
    result: dict = {'variant': variant, 'overrides': overrides, 'client': client_kind,
                    'cpu_before_start': cpu_state(0.5)}
    backend = variant
    monitor = None
    try:
        # FlowProcess.start() blocks until ready: watch its memory from a thread that waits for the PID
        holder: dict = {}

        def watch():
            while flow.proc is None and not holder.get('stop'):
                time.sleep(0.01)
            if flow.proc is not None:
                holder['monitor'] = PeakMemory(flow.proc.pid)
                holder['monitor'].start()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        flow.start()
        watcher.join(timeout=5)
        monitor = holder.get('monitor')
        result['startup_seconds'] = round(flow.startup_seconds, 2)
        rss, pss, uss = memory_of(process_tree(flow.proc.pid))
        result['rss_ready_mb'] = round(rss / 2**20, 1)
        result['pss_ready_mb'] = round(pss / 2**20, 1)
        result['uss_ready_mb'] = round(uss / 2**20, 1)
        print(f'  flow[{backend}] ready in {result["startup_seconds"]} s, RSS {result["rss_ready_mb"]} MB',
              flush=True)

        docs = generate_qa(faq_path)
        t0 = time.perf_counter()
        flow.client().post('/index', docs, request_size=64)
        result['index_seconds'] = round(time.perf_counter() - t0, 2)
        result['index_docs_per_s'] = round(len(docs) / (time.perf_counter() - t0), 1)

        def make_caller(endpoint: str, params: dict):
            def factory():
                if client_kind == 'jina':
                    client = flow.client('grpc')

                    def post(docs):
                        return client.post(endpoint, docs, parameters=params, return_type=DocList[QADoc])
                else:  # one long-lived channel per caller thread
                    stub = GrpcStub(flow.grpc_port)

                    def post(docs):
                        return stub.post(endpoint, docs, params)[0].docs

                def call(question: str):
                    got = post(DocList[QADoc]([QADoc(text=question)]))
                    if endpoint == '/search' and len(got[0].matches) != params['limit']:
                        raise RuntimeError(f'{endpoint} returned {len(got[0].matches)} matches')
                    if endpoint == '/answer' and not len(got[0].answers):
                        raise RuntimeError(f'{endpoint} returned no answer')
                    return got[0]

                return call

            return factory

        params = {'limit': limit}
        warm = make_caller('/answer', {**params, 'confidence_threshold': 0})()  # the best span, for the agreement
        answers = []
        for q in questions[:8]:
            answers.append(warm(q).answers[0].answer)
        rows: dict = {}
        for endpoint in ('/search', '/answer'):
            rows[endpoint] = []
            for c in concurrency:
                cpu = cpu_state(0.5)
                load = run_load(make_caller(endpoint, params), questions, c, duration, min_requests=max(4, c))
                load.cpu = cpu
                rows[endpoint].append(asdict(load))
                print(f'  flow[{backend}] {endpoint} c={c}: {load.qps} QPS, p50 {load.p50_ms} ms, '
                      f'p95 {load.p95_ms} ms, errors {load.errors}', flush=True)
                if load.first_error:
                    print(f'    first error: {load.first_error}', flush=True)
        result['load'] = rows
        result['processes'] = per_process_rss(flow.proc.pid)
        time.sleep(5)
        result['idle_after_load'] = flow_memory(flow.proc.pid)
        print(f"  flow[{backend}] idle after the load: PSS {result['idle_after_load']['pss_mb']} MB", flush=True)
        if feedback_queries:
            result['feedback'] = bench_feedback_memory(flow, docs, feedback_queries, limit)
            print(f"  flow[{backend}] after {result['feedback']['labelled_queries']} labelled queries and "
                  f"{result['feedback']['rounds']} feedback round(s): PSS "
                  f"{result['feedback']['memory_after']['pss_mb']} MB", flush=True)
    finally:
        if monitor is not None:
            monitor.stop()
            result['peak_rss_mb'] = round(monitor.peak_rss / 2**20, 1)
            result['peak_pss_mb'] = round(monitor.peak_pss / 2**20, 1)
            result['peak_processes'] = monitor.processes
        flow.stop()
    return result, answers


# ------------------------------------------------------------------------------------------------ main
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=str(OUT_DIR), help='output folder (speed.json, speed.md)')
    parser.add_argument('--home', default=None, help='service home of the benchmark Flow (default OUT/home)')
    parser.add_argument('--reader', default=None, help='reader checkpoint (default: the trained reader)')
    parser.add_argument('--threads', type=int, default=2,
                        help="intra-op threads per model in process and in the Flow's reader (0: library default)")
    parser.add_argument('--embed-threads', type=int, default=0,
                        help="intra-op threads of the Flow's embedder and indexer (0: flow.yml's)")
    parser.add_argument('--questions', type=int, default=48)
    parser.add_argument('--limit', type=int, default=10, help='/search and /answer matches (the Flow default)')
    parser.add_argument('--duration', type=float, default=12.0, help='seconds per load cell')
    parser.add_argument('--reps', type=int, default=7, help='embedding repetitions')
    parser.add_argument('--embed-batch', type=int, default=16, help='embedder batch size in the Flow')
    parser.add_argument('--reader-batch', type=int, default=1,
                        help='reader windows per forward pass, Flow and in-process reader')
    parser.add_argument('--flows', default='onnx,onnx-int8,torch',
                        help=f'Flow variants to run, from {sorted(FLOW_VARIANTS)}')
    parser.add_argument('--baselines', default='pipeline,reader', help="'pipeline' and/or 'reader' (batched)")
    parser.add_argument('--skip', default='', help='comma list of phases to skip: embedding,quality,baseline,flow')
    parser.add_argument('--feedback-queries', type=int, default=50,
                        help='labelled queries (labeler-style /search + /feedback, then /train) before measuring the '
                             "Flow's memory after a feedback round (0: skip)")
    parser.add_argument('--quick', action='store_true', help='short load cells and fewer repetitions')
    parser.add_argument('--client', choices=('stub', 'jina'), default='stub',
                        help="the Flow's load clients: 'stub' (client.grpc_stub.GrpcStub, one gRPC channel per "
                             "client thread) or 'jina' (jina's sync Client: an event loop and a channel per call)")
    parser.add_argument('--wait-quiet', type=float, default=120.0,
                        help='wait up to this many seconds for an idle CPU before each phase')
    args = parser.parse_args(argv)
    # `timeout`/kill sends SIGTERM: turn it into SystemExit so the running Flow is stopped by the finally blocks
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.quick:
        args.duration, args.reps = min(args.duration, 5.0), min(args.reps, 3)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    home = Path(args.home).resolve() if args.home else out_dir / 'home'
    home.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(',') if s.strip()}
    threads = args.threads or None

    reader_dir = benchmark_reader(args.reader)
    os.environ['COVIDQA_HOME'] = str(home)  # the ONNX cache of the base model and the Flow's state live here
    faq_path = data_dir() / FAQ_FILE
    faq = load_faq(faq_path)
    questions = bench_questions(faq, args.questions)
    import onnxruntime
    import torch
    import transformers

    report: dict = {
        'machine': {'cpus': os.cpu_count(), 'processor': platform.processor() or platform.machine(),
                    'python': platform.python_version(), 'torch': torch.__version__,
                    'onnxruntime': onnxruntime.__version__, 'transformers': transformers.__version__,
                    'cpu': cpu_model()},
        'config': {'reader': str(reader_dir), 'threads': threads, 'embed_threads': args.embed_threads or 'flow.yml',
                   'questions': len(questions), 'limit': args.limit, 'duration_s': args.duration,
                   'reps': args.reps, 'embed_batch': args.embed_batch, 'reader_batch': args.reader_batch,
                   'started': time.strftime('%Y-%m-%dT%H:%M:%S')},
        'cpu_start': cpu_state(),
    }

    # exports first (timed), so every later phase and the Flow start with a warm cache
    from covidqa.models.onnx import ensure_exported, export_info_dict

    exports = {}
    for model, kind, quantize in ((DEFAULT_EMBEDDER, 'encoder', False), (DEFAULT_EMBEDDER, 'encoder', True),
                                  (reader_dir, 'qa', False), (reader_dir, 'qa', True)):
        t0 = time.perf_counter()
        info, _ = ensure_exported(model, kind, quantize=quantize)
        exports[f"{kind}{'_int8' if quantize else ''}"] = {**export_info_dict(info),
                                                            'seconds_now': round(time.perf_counter() - t0, 2)}
    report['exports'] = exports

    def phase(name: str) -> bool:
        if name in skip:
            return False
        state = wait_quiet(args.wait_quiet)
        report.setdefault('cpu_before_phase', {})[name] = state
        print(f'== {name} (cpu idle {state["idle_pct"]}%, load {state["loadavg_1m"]})', flush=True)
        return True

    if phase('embedding'):
        report['embedding'] = bench_embedding(faq.questions, threads or 0, args.reps,
                                              sweep=(1, 4, 8, 16, 32, 64, 128))
        print(json.dumps(report['embedding']['summary'], indent=1), flush=True)
    if phase('quality'):
        report['quality'] = bench_quality(faq, reader_dir, threads or 0, args.reader_batch)
        print(json.dumps({k: report['quality'][k] for k in ('retrieval', 'reader', 'int8_loss_points',
                                                            'int8_within_1_point')}, indent=1), flush=True)
    baseline_answers: Dict[str, List[str]] = {}
    if phase('baseline'):
        kinds = [k.strip() for k in args.baselines.split(',') if k.strip()]
        report['baseline'], baseline_answers = bench_baseline_in_child(faq, reader_dir, questions, args.limit,
                                                                       args.duration, CONCURRENCY, kinds,
                                                                       args.reader_batch)
        gc.collect()
    report['flow'] = {}
    flow_answers: Dict[str, List[str]] = {}
    if 'flow' not in skip:
        variants = [b.strip() for b in args.flows.split(',') if b.strip()]
        unknown = sorted(set(variants) - set(FLOW_VARIANTS))
        if unknown:
            raise SystemExit(f'--flows: unknown variant(s) {unknown}; known: {sorted(FLOW_VARIANTS)}')
        for backend in variants:
            phase(f'flow-{backend}')
            report['flow'][backend], flow_answers[backend] = bench_flow(
                backend, home, faq_path, reader_dir, questions, args.limit, args.duration, CONCURRENCY, threads,
                args.embed_batch, args.reader_batch, args.feedback_queries, args.client, args.embed_threads or None)
    if baseline_answers.get('pipeline'):
        report['answer_agreement_with_pipeline_baseline_pct'] = {
            name: round(100 * float(np.mean([a == b for a, b in zip(answers, baseline_answers['pipeline'])])), 1)
            for name, answers in {**{f'flow-{k}': v for k, v in flow_answers.items()},
                                  **{f'inprocess-{k}': v for k, v in baseline_answers.items()}}.items()
        }
    report['framework_floor_per_process'] = framework_floor()
    report['cpu_end'] = cpu_state()
    report['ratios'] = compute_ratios(report)
    report['targets'] = targets(report)

    columns, rows = [], {}
    for kind, data in report.get('baseline', {}).items():
        columns.append(f'in-process {kind}')
        rows[f'in-process {kind}'] = data
    for backend, flow in report['flow'].items():
        columns.append(f'Flow {backend}')
        rows[f'Flow {backend}'] = flow.get('load', {})
    (out_dir / 'speed.json').write_text(json.dumps(report, indent=1, default=str))  # first: a report bug loses no run
    md = markdown({**report, 'columns': columns, '_rows': rows})
    (out_dir / 'speed.md').write_text(md)
    print(md)
    print(f'wrote {out_dir / "speed.json"} and {out_dir / "speed.md"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
