"""Speed on a CPU: ONNX Runtime vs torch, and the Flow vs an in-process baseline, in one run (a script, not a test).

On the same FAQ documents (``covid_faq_deepset/faq_covidbert.csv``: the FAQ question is embedded, its answer is the
reader's context) and the same questions, it measures:

1. **Embedding** docs/s, torch vs ONNX Runtime (fp32 and int8), at batch 1 and 32 (plus a batch-size sweep and
   length-sorted vs arrival-order batches), interleaved repetitions, best and median.
2. **Quality of int8** vs fp32: FAQ hit@1 (reworded FAQ questions -> their entry), top-10 agreement, and the
   reader's SQuAD F1 / EM on ``covid_qa_paragraphs/qa_dev.json``; reader windows/s per backend.
3. **In-process baseline**: numpy cosine search over torch embeddings + the reader checkpoint run the way
   transformers 4's ``pipeline("question-answering")`` runs it (transformers 5 removed that pipeline: see
   :class:`PipelineQA`), and the same with the project's batched :class:`~covidqa.reader.ExtractiveReader`
   (torch). ``/search`` and ``/answer``-equivalent latency p50/p95 and QPS at 1, 4 and 16 concurrent callers.
4. **The Flow** (``flow.yml``, started as a subprocess with :class:`client.flowctl.FlowProcess`, stopped by PID):
   start-up time to ready (exports already cached), ``/index`` of the FAQ, ``/search`` and ``/answer`` latency
   p50/p95 and QPS over gRPC at 1, 4 and 16 concurrent clients, peak RSS (and PSS) summed over the Flow's process
   tree, for each variant in ``--flows`` (``onnx``, ``onnx-int8``, ``torch``).
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from covidqa.paths import data_dir

REPO = Path(__file__).resolve().parents[1]

OUT_DIR = REPO / 'benchmarks' / 'out'
CONCURRENCY = (1, 4, 16)

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


# ------------------------------------------------------------------------------------------------ machine state
def cpu_state(seconds: float = 1.0) -> dict:
    """Load average and the share of idle CPU over ``seconds`` (a busy machine makes timings unreliable)."""
    def snap():
        parts = Path('/proc/stat').read_text().splitlines()[0].split()[1:]
        values = list(map(int, parts))
        return sum(values), values[3] + values[4]

    total0, idle0 = snap()
    time.sleep(seconds)
    total1, idle1 = snap()
    load = os.getloadavg()
    return {'loadavg_1m': round(load[0], 2), 'idle_pct': round(100.0 * (idle1 - idle0) / max(1, total1 - total0), 1)}


def wait_quiet(max_seconds: float, idle_pct: float = 85.0) -> dict:
    """Wait (up to ``max_seconds``) until the CPU is mostly idle; returns the last state seen."""
    deadline = time.monotonic() + max_seconds
    state = cpu_state()
    while state['idle_pct'] < idle_pct and time.monotonic() < deadline:
        time.sleep(2)
        state = cpu_state()
    state['quiet'] = state['idle_pct'] >= idle_pct
    return state


def process_tree(root: int) -> List[int]:
    """``root`` and all its descendants (from every /proc/<pid>/stat, so children of any thread count)."""
    children: Dict[int, List[int]] = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(')') + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        out.append(pid)
        frontier.extend(children.get(pid, []))
    return out


def memory_of(pids: Sequence[int]) -> Tuple[int, int, int]:
    """(sum of RSS, sum of PSS, sum of USS) in bytes. RSS counts a shared page in every process that maps it;
    PSS splits it between them; USS counts private pages only."""
    rss = pss = uss = 0
    for pid in pids:
        try:
            for line in Path(f'/proc/{pid}/smaps_rollup').read_text().splitlines():
                key, _, rest = line.partition(':')
                if key in ('Rss', 'Pss', 'Private_Clean', 'Private_Dirty'):
                    value = int(rest.split()[0]) * 1024
                    if key == 'Rss':
                        rss += value
                    elif key == 'Pss':
                        pss += value
                    else:
                        uss += value
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss, uss


class PeakMemory(threading.Thread):
    """Samples the memory of a process tree every ``interval`` seconds; keeps the peaks."""

    def __init__(self, root_pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self.peak_rss = self.peak_pss = 0
        self.processes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = process_tree(self.root_pid)
            rss, pss, _ = memory_of(pids)
            if rss > self.peak_rss:
                self.peak_rss, self.processes = rss, len(pids)
            self.peak_pss = max(self.peak_pss, pss)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def framework_floor() -> dict:
    """Memory of a bare Python process that imports jina (docarray imports torch when it is installed): every
    process of the Flow pays this before it loads any model."""
    import subprocess

    code = ('import jina, re; s = open("/proc/self/smaps_rollup").read(); '
            'g = lambda k: int(re.search(k + r":\\s+(\\d+)", s).group(1)); '
            'import sys; print(g("Rss"), g("Pss"), g("Private_Clean") + g("Private_Dirty"), "torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120).stdout.split()
    if len(out) != 4:
        return {}
    return {'rss_mb': round(int(out[0]) / 1024, 1), 'pss_mb': round(int(out[1]) / 1024, 1),
            'uss_mb': round(int(out[2]) / 1024, 1), 'imports_torch': out[3] == 'True'}


def per_process_rss(root_pid: int) -> List[dict]:
    """Memory of each process of the tree, with which inference libraries it has loaded."""
    rows = []
    for pid in process_tree(root_pid):
        rss, pss, uss = memory_of([pid])
        try:
            maps = Path(f'/proc/{pid}/maps').read_text()
        except OSError:
            maps = ''
        rows.append({'pid': pid, 'rss_mb': round(rss / 2**20, 1), 'pss_mb': round(pss / 2**20, 1),
                     'uss_mb': round(uss / 2**20, 1), 'torch_loaded': 'libtorch_cpu' in maps,
                     'onnxruntime_loaded': 'onnxruntime_pybind11' in maps})
    return rows


# ------------------------------------------------------------------------------------------------ data
@dataclass
class FAQ:
    questions: List[str]
    answers: List[str]
    ids: List[str]


def load_faq(path: Path) -> FAQ:
    from toydata import generate_qa

    docs = generate_qa(path)
    return FAQ(list(docs.text), list(docs.answer), list(docs.id))


def reword(text: str) -> str:
    return text.lower().translate(str.maketrans('', '', string.punctuation)).strip()


def bench_questions(faq: FAQ, n: int) -> List[str]:
    """``n`` questions: the user questions, then reworded FAQ questions (every k-th), fixed order."""
    step = max(1, len(faq.questions) // max(1, n - len(USER_QUESTIONS)))
    reworded = [reword(q) for q in faq.questions[::step]]
    return (USER_QUESTIONS + reworded)[:n]


# ------------------------------------------------------------------------------------------------ timing helpers
def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float('nan')


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    qps: float
    p50_ms: float
    p95_ms: float
    mean_ms: float
    cpu: dict = field(default_factory=dict)
    first_error: Optional[str] = None


def run_load(make_caller: Callable[[], Callable[[str], object]], questions: Sequence[str], concurrency: int,
             duration: float, min_requests: int, max_seconds: Optional[float] = None) -> LoadResult:
    """``concurrency`` threads, each with its own caller, send one question per call back to back for
    ``duration`` seconds (continuing until ``min_requests`` calls completed, but never starting one after
    ``max_seconds``, default ``4 * duration + 30``). QPS = completed calls / elapsed."""
    callers = [make_caller() for _ in range(concurrency)]
    latencies: List[float] = []
    errors: List[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)
    counter = iter(range(10**9))
    started = [0.0]
    deadline = [0.0]
    hard_deadline = [0.0]

    def worker(call):
        barrier.wait()
        while True:
            with lock:
                k = next(counter)
                done = len(latencies) + len(errors)
            now = time.perf_counter()
            if (now >= deadline[0] and done >= min_requests) or now >= hard_deadline[0]:
                return
            question = questions[k % len(questions)]
            t0 = time.perf_counter()
            try:
                call(question)
            except Exception as exc:  # keep going: a failed request counts as an error
                with lock:
                    errors.append(f'{type(exc).__name__}: {str(exc)[:300]}')
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in callers]
    for t in threads:
        t.start()
    started[0] = time.perf_counter()
    deadline[0] = started[0] + duration
    hard_deadline[0] = started[0] + (max_seconds if max_seconds is not None else 4 * duration + 30)
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started[0]
    ms = [1000 * x for x in latencies]
    return LoadResult(concurrency=concurrency, requests=len(latencies), errors=len(errors), seconds=round(elapsed, 2),
                      qps=round(len(latencies) / elapsed, 2), p50_ms=round(percentile(ms, 50), 1),
                      p95_ms=round(percentile(ms, 95), 1), mean_ms=round(float(np.mean(ms)) if ms else float('nan'), 1),
                      first_error=errors[0] if errors else None)


# ------------------------------------------------------------------------------------------------ embedding
def bench_embedding(texts: List[str], threads: int, reps: int, sweep: Sequence[int]) -> dict:
    from covidqa.embedding import Embedder, pool
    from covidqa.onnx_backend import OnnxEncoderRunner
    from covidqa.tokenization import pad_batch

    embedders = {
        'torch': Embedder('base', backend='torch', num_threads=threads).load(),
        'onnx': Embedder('base', backend='onnx', num_threads=threads).load(),
        'onnx_int8': Embedder('base', backend='onnx', num_threads=threads),
    }
    embedders['onnx_int8']._runner = OnnxEncoderRunner('base', num_threads=threads, quantize=True)
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
    from covidqa.embedding import Embedder
    from covidqa.onnx_backend import OnnxEncoderRunner, OnnxQARunner
    from covidqa.qa_files import read_qa_file
    from covidqa.reader import ExtractiveReader
    from covidqa.squad_metrics import exact_match, f1_score

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
        emb = Embedder('base', backend='onnx' if name != 'torch' else 'torch', num_threads=threads)
        para = Embedder('base', backend='onnx' if name != 'torch' else 'torch', num_threads=threads, max_length=128)
        if name == 'onnx_int8':
            emb._runner = para._runner = OnnxEncoderRunner('base', num_threads=threads, quantize=True)
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
        reader.read_many(questions[:4], contexts[:4])  # warm-up
        t0 = time.perf_counter()
        details = reader.read_many_detailed(questions, contexts)
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


# ------------------------------------------------------------------------------------------------ baseline
class PipelineQA:
    """transformers 4.x ``pipeline("question-answering")``, as it computed answers (transformers 5 removed the
    task: ``pipeline('question-answering')`` raises ``KeyError: 'The task question-answering has been removed'``).

    Per (question, context): windows of ``max_seq_len`` tokens with ``doc_stride`` overlap (``truncation=
    'only_second'``), one forward pass per window (the pipeline's default ``batch_size=1``), logits outside the
    context masked, softmax, best ``p_start * p_end`` span of at most ``max_answer_len`` tokens (upper band of the
    outer product); the best span over all windows and contexts wins.
    """

    def __init__(self, model_dir: Path, max_seq_len: int = 384, doc_stride: int = 128, max_answer_len: int = 64):
        from covidqa.models import load_qa_model, load_tokenizer

        self.tokenizer = load_tokenizer(model_dir)
        self.model = load_qa_model(model_dir)
        self.max_seq_len, self.doc_stride, self.max_answer_len = max_seq_len, doc_stride, max_answer_len

    def __call__(self, question: str, contexts: Sequence[str]) -> Tuple[str, float, int]:
        import torch

        best = ('', -1.0, -1)
        for ci, context in enumerate(contexts):
            enc = self.tokenizer(question, context, truncation='only_second', max_length=self.max_seq_len,
                                 stride=min(self.doc_stride, self.max_seq_len // 2), return_overflowing_tokens=True,
                                 return_offsets_mapping=True, return_token_type_ids=True, padding=False)
            for w in range(len(enc['input_ids'])):
                with torch.inference_mode():
                    out = self.model(input_ids=torch.tensor([enc['input_ids'][w]]),
                                     attention_mask=torch.tensor([enc['attention_mask'][w]]),
                                     token_type_ids=torch.tensor([enc['token_type_ids'][w]]))
                mask = np.array([s == 1 for s in enc.sequence_ids(w)])
                start = np.where(mask, out.start_logits[0].numpy(), -10000.0)
                end = np.where(mask, out.end_logits[0].numpy(), -10000.0)
                p_start = np.exp(start - start.max())
                p_start /= p_start.sum()
                p_end = np.exp(end - end.max())
                p_end /= p_end.sum()
                outer = np.triu(np.tril(np.outer(p_start, p_end), self.max_answer_len - 1))
                s, e = np.unravel_index(int(outer.argmax()), outer.shape)
                score = float(outer[s, e])
                if score > best[1]:
                    offsets = enc['offset_mapping'][w]
                    best = (context[offsets[s][0]:offsets[e][1]], score, ci)
        return best


class InProcessBaseline:
    """numpy cosine search over torch [CLS] embeddings + a reader, all in this process."""

    def __init__(self, faq: FAQ, reader_dir: Path, limit: int, reader_kind: str, reader_batch: int = 1):
        from covidqa.embedding import Embedder
        from covidqa.reader import ExtractiveReader

        self.faq, self.limit = faq, limit
        self.embedder = Embedder('base', backend='torch').load()
        vectors = self.embedder.embed_texts(faq.questions)
        self.doc_vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        if reader_kind == 'pipeline':
            self.pipeline = PipelineQA(reader_dir)
            self.reader = None
        else:
            self.pipeline = None
            self.reader = ExtractiveReader(reader_dir, backend='torch', top_k=1, batch_size=reader_batch).load()

    def search(self, question: str) -> List[int]:
        q = self.embedder.embed_texts([question])[0]
        scores = self.doc_vectors @ (q / np.linalg.norm(q))
        top = np.argpartition(-scores, self.limit - 1)[:self.limit]
        return [int(i) for i in top[np.argsort(-scores[top], kind='stable')]]

    def answer(self, question: str) -> str:
        found = self.search(question)
        contexts = [self.faq.answers[i] for i in found]
        if self.pipeline is not None:
            return self.pipeline(question, contexts)[0]
        return self.reader.read(question, contexts)[0].answer


def bench_baseline(faq: FAQ, reader_dir: Path, questions: List[str], limit: int, duration: float,
                   concurrency: Sequence[int], kinds: Sequence[str],
                   reader_batch: int = 1) -> Tuple[dict, Dict[str, List[str]]]:
    results: dict = {}
    answers: Dict[str, List[str]] = {}
    for kind in kinds:
        baseline = InProcessBaseline(faq, reader_dir, limit, kind, reader_batch)
        answers[kind] = [baseline.answer(q) for q in questions[:8]]  # warm-up, and the answers to compare
        rows = {'/search': [], '/answer': []} if kind == 'pipeline' else {'/answer': []}
        for endpoint in rows:
            call = baseline.search if endpoint == '/search' else baseline.answer
            for c in concurrency:
                cpu = cpu_state(0.5)
                result = run_load(lambda: call, questions, c, duration, min_requests=max(4, c))
                result.cpu = cpu
                rows[endpoint].append(asdict(result))
                print(f'  baseline[{kind}] {endpoint} c={c}: {result.qps} QPS, p50 {result.p50_ms} ms, '
                      f'p95 {result.p95_ms} ms', flush=True)
        results[kind] = rows
        del baseline
        gc.collect()
    return results, answers


# ------------------------------------------------------------------------------------------------ the Flow
# a variant is the backend of the embedder, indexer and reader; 'onnx-int8' is flow.yml's (int8 dynamic quantization)
FLOW_VARIANTS = ('onnx', 'onnx-int8', 'torch')


def flow_overrides(backend: str, reader_dir: Path, threads: Optional[int], embed_batch: int,
                   reader_batch: int) -> Dict[str, dict]:
    """``uses_with`` overrides for a Flow variant (a variant is a backend name)."""
    embedder = {'backend': backend, 'batch_size': embed_batch}
    reader = {'backend': backend, 'model': str(reader_dir), 'batch_size': reader_batch}
    if threads:
        embedder['num_threads'] = threads
        reader['num_threads'] = threads
    return {'embedder': embedder, 'indexer': {'backend': backend}, 'reader': reader}


def bench_flow(variant: str, home: Path, faq_path: Path, reader_dir: Path, questions: List[str], limit: int,
               duration: float, concurrency: Sequence[int], threads: Optional[int], embed_batch: int,
               reader_batch: int) -> Tuple[dict, List[str]]:
    from client.flowctl import FlowProcess
    from covidqa.docs import DocList, QADoc
    from toydata import generate_qa

    shutil.rmtree(home / 'index', ignore_errors=True)  # a fresh index each run; the ONNX cache stays
    overrides = flow_overrides(variant, reader_dir, threads, embed_batch, reader_batch)
    log_path = home / f'flow-{variant}.log'
    log_path.unlink(missing_ok=True)
    flow = FlowProcess(home=home, overrides=overrides, log_path=log_path, ready_timeout=300,
                       env={'JINA_LOG_LEVEL': 'WARNING'})
    result: dict = {'variant': variant, 'overrides': overrides,
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
                client = flow.client('grpc')

                def call(question: str):
                    got = client.post(endpoint, DocList[QADoc]([QADoc(text=question)]), parameters=params,
                                      return_type=DocList[QADoc])
                    if endpoint == '/search' and len(got[0].matches) != params['limit']:
                        raise RuntimeError(f'{endpoint} returned {len(got[0].matches)} matches')
                    if endpoint == '/answer' and not len(got[0].answers):
                        raise RuntimeError(f'{endpoint} returned no answer')
                    return got[0]

                return call

            return factory

        params = {'limit': limit}
        warm = make_caller('/answer', params)()
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
    finally:
        if monitor is not None:
            monitor.stop()
            result['peak_rss_mb'] = round(monitor.peak_rss / 2**20, 1)
            result['peak_pss_mb'] = round(monitor.peak_pss / 2**20, 1)
            result['peak_processes'] = monitor.processes
        flow.stop()
    return result, answers


# ------------------------------------------------------------------------------------------------ reader setup
def resolve_reader(arg: Optional[str], home: Path) -> Tuple[Path, bool]:
    """(reader checkpoint, trained?): ``--reader``, else the service's reader (trained into ``$COVIDQA_HOME``, else
    the shipped one: :func:`covidqa.reader.resolve_reader_model`, unpacked under ``home``)."""
    from covidqa.reader import resolve_reader_model

    if arg:
        if not (Path(arg) / 'config.json').is_file():
            raise SystemExit(f'--reader {arg}: no model there (expected a save_pretrained directory)')
        return Path(arg).resolve(), True
    model = resolve_reader_model(None)
    if str(model) == 'base':
        raise SystemExit('no trained reader and no shipped one: pass --reader DIR, or restore models/reader/ from git')
    return Path(model).resolve(), True


# ------------------------------------------------------------------------------------------------ report
def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 2) if a and b else None


def find_row(rows: List[dict], c: int) -> Optional[dict]:
    return next((r for r in rows if r['concurrency'] == c), None)


def compute_ratios(report: dict) -> dict:
    out = {}
    base = report.get('baseline', {}).get('pipeline', {})
    batched = report.get('baseline', {}).get('reader', {})
    for backend, flow in report.get('flow', {}).items():
        for endpoint in ('/search', '/answer'):
            for c in CONCURRENCY:
                f = find_row(flow.get('load', {}).get(endpoint, []), c)
                b = find_row(base.get(endpoint, []), c)
                if f and b:
                    out[f'{backend}{endpoint}@{c}'] = {
                        'qps_flow_over_baseline': ratio(f['qps'], b['qps']),
                        'p50_flow_over_baseline': ratio(f['p50_ms'], b['p50_ms']),
                    }
                r = find_row(batched.get(endpoint, []), c)
                if f and r:
                    out[f'{backend}{endpoint}@{c}']['qps_flow_over_inprocess_reader'] = ratio(f['qps'], r['qps'])
    return out


def targets(report: dict) -> dict:
    emb = report.get('embedding', {}).get('summary', {})
    out = {
        'embedding onnx/torch at batch 32 >= 2.5 (fp32)': {'value': emb.get('onnx_over_torch_bs32'),
                                                          'met': (emb.get('onnx_over_torch_bs32') or 0) >= 2.5},
    }
    if emb.get('onnx_int8_bs32') and emb.get('torch_bs32'):
        value = round(emb['onnx_int8_bs32'] / emb['torch_bs32'], 2)
        out['embedding onnx/torch at batch 32 >= 2.5 (int8)'] = {'value': value, 'met': value >= 2.5}
    for variant, flow in report.get('flow', {}).items():
        answer4 = report.get('ratios', {}).get(f'{variant}/answer@4', {}).get('qps_flow_over_baseline')
        out[f'[{variant}] /answer QPS Flow/baseline at 4 clients >= 1.5'] = {'value': answer4,
                                                                           'met': (answer4 or 0) >= 1.5}
        out[f'[{variant}] Flow peak RSS MB <= 1536'] = {'value': flow.get('peak_rss_mb'),
                                                       'met': (flow.get('peak_rss_mb') or 1e9) <= 1536}
        out[f'[{variant}] Flow ready seconds <= 15'] = {'value': flow.get('startup_seconds'),
                                                       'met': (flow.get('startup_seconds') or 1e9) <= 15}
    return out


def markdown(report: dict) -> str:
    lines = [f"Speed on {report['machine']['cpus']} CPU cores ({report['machine']['processor']}); "
             f"{report.get('embedding', {}).get('docs', 213)} FAQ docs, {report['config']['questions']} questions, "
             f"/answer reads the top {report['config']['limit']} FAQ answers; reader "
             f"{'trained' if report['config']['reader_trained'] else 'UNTRAINED (seeded head)'}; "
             f"{report['config']['threads'] or 'default'} threads per model.", '']
    emb = report.get('embedding', {}).get('summary', {})
    if emb:
        lines += ['| Embedding (docs/s, best of reps) | batch 1 | batch 32 |', '|---|---:|---:|']
        for name in ('torch', 'onnx', 'onnx_int8'):
            lines.append(f"| {name} | {emb.get(f'{name}_bs1')} | {emb.get(f'{name}_bs32')} |")
        lines.append(f"| onnx / torch | {emb.get('onnx_over_torch_bs1')}x | {emb.get('onnx_over_torch_bs32')}x |")
        lines += ['', f"Length-sorted vs arrival-order batches of 32: onnx {emb.get('sorted_over_arrival_onnx_bs32')}x, "
                      f"torch {emb.get('sorted_over_arrival_torch_bs32')}x.", '']
    q = report.get('quality')
    if q:
        lines += ['| Quality | torch | onnx fp32 | onnx int8 |', '|---|---:|---:|---:|']
        r, a = q['retrieval'], q['reader']
        lines.append(f"| FAQ hit@1 (reworded, {r['queries']}) | {r['torch']['hit_at_1']} | {r['onnx']['hit_at_1']} | "
                     f"{r['onnx_int8']['hit_at_1']} |")
        lines.append(f"| paragraph hit@1 (COVID-QA dev, {r['paragraph_queries']}) | {r['torch']['paragraph_hit_at_1']} | "
                     f"{r['onnx']['paragraph_hit_at_1']} | {r['onnx_int8']['paragraph_hit_at_1']} |")
        lines.append(f"| reader F1 (paragraph dev, {a['questions']}) | {a['torch']['f1']} | {a['onnx']['f1']} | "
                     f"{a['onnx_int8']['f1']} |")
        lines.append(f"| reader EM | {a['torch']['exact_match']} | {a['onnx']['exact_match']} | "
                     f"{a['onnx_int8']['exact_match']} |")
        lines.append(f"| reader windows/s | {a['torch']['windows_per_s']} | {a['onnx']['windows_per_s']} | "
                     f"{a['onnx_int8']['windows_per_s']} |")
        lines.append('')
    header = '| Endpoint | clients | ' + ' | '.join(
        f'{name} QPS | {name} p50/p95 ms' for name in report.get('columns', [])) + ' |'
    if report.get('columns'):
        lines += [header, '|---|---:|' + '---:|---:|' * len(report['columns'])]
        for endpoint in ('/search', '/answer'):
            for c in CONCURRENCY:
                cells = []
                for name in report['columns']:
                    row = find_row(report['_rows'].get(name, {}).get(endpoint, []), c)
                    cells += [f"{row['qps']}" if row else '-',
                              f"{row['p50_ms']:.0f}/{row['p95_ms']:.0f}" if row else '-']
                lines.append(f'| {endpoint} | {c} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    for backend, flow in report.get('flow', {}).items():
        lines.append(f"Flow ({backend}): ready in {flow.get('startup_seconds')} s, peak RSS {flow.get('peak_rss_mb')} MB "
                     f"(PSS {flow.get('peak_pss_mb')} MB) over {flow.get('peak_processes')} processes, "
                     f"/index {flow.get('index_docs_per_s')} docs/s.")
    floor = report.get('framework_floor_per_process') or {}
    if floor:
        lines.append(f"Every Flow process imports jina (docarray imports torch: {floor.get('imports_torch')}), "
                     f"{floor.get('rss_mb')} MB RSS / {floor.get('uss_mb')} MB private before any model is loaded.")
    lines.append('')
    for name, t in report.get('targets', {}).items():
        lines.append(f"- target {name}: {t['value']} -> {'met' if t['met'] else 'NOT met'}")
    return '\n'.join(lines) + '\n'


# ------------------------------------------------------------------------------------------------ main
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=str(OUT_DIR), help='output folder (speed.json, speed.md)')
    parser.add_argument('--home', default=None, help='service home of the benchmark Flow (default OUT/home)')
    parser.add_argument('--reader', default=None, help='reader checkpoint (default: the trained reader)')
    parser.add_argument('--threads', type=int, default=2, help='intra-op threads per model (0: library default)')
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
    parser.add_argument('--quick', action='store_true', help='short load cells and fewer repetitions')
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

    reader_dir, trained = resolve_reader(args.reader, home)
    os.environ['COVIDQA_HOME'] = str(home)  # the ONNX cache of the base model and the Flow's state live here
    faq_path = data_dir() / 'covid_faq_deepset' / 'faq_covidbert.csv'
    faq = load_faq(faq_path)
    questions = bench_questions(faq, args.questions)
    import onnxruntime
    import torch
    import transformers

    report: dict = {
        'machine': {'cpus': os.cpu_count(), 'processor': platform.processor() or platform.machine(),
                    'python': platform.python_version(), 'torch': torch.__version__,
                    'onnxruntime': onnxruntime.__version__, 'transformers': transformers.__version__},
        'config': {'reader': str(reader_dir), 'reader_trained': trained, 'threads': threads,
                   'questions': len(questions), 'limit': args.limit, 'duration_s': args.duration,
                   'reps': args.reps, 'embed_batch': args.embed_batch, 'reader_batch': args.reader_batch,
                   'started': time.strftime('%Y-%m-%dT%H:%M:%S')},
        'cpu_start': cpu_state(),
    }

    # exports first (timed), so every later phase and the Flow start with a warm cache
    from covidqa.onnx_backend import ensure_exported, export_info_dict

    exports = {}
    for model, kind, quantize in (('base', 'encoder', False), ('base', 'encoder', True),
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
        report['baseline'], baseline_answers = bench_baseline(faq, reader_dir, questions, args.limit,
                                                              args.duration, CONCURRENCY, kinds, args.reader_batch)
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
                args.embed_batch, args.reader_batch)
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
    md = markdown({**report, 'columns': columns, '_rows': rows})
    (out_dir / 'speed.json').write_text(json.dumps(report, indent=1, default=str))
    (out_dir / 'speed.md').write_text(md)
    print(md)
    print(f'wrote {out_dir / "speed.json"} and {out_dir / "speed.md"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
