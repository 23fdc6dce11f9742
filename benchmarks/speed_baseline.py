"""The in-process baseline of ``bench_speed.py``: what the Flow is compared with.

- :class:`FAQ`, :func:`load_faq`: the FAQ documents both sides serve;
- :class:`PipelineQA`: the reader checkpoint run the way transformers 4's ``pipeline("question-answering")`` ran it
  (transformers 5 removed the pipeline), one question and context at a time;
- :class:`InProcessBaseline`: numpy cosine search over torch embeddings, with either reader;
- :func:`bench_baseline`: ``/search``- and ``/answer``-equivalent load at each concurrency.
"""
from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from measure import cpu_state, run_load


@dataclass
class FAQ:
    questions: List[str]
    answers: List[str]
    ids: List[str]


def load_faq(path: Path) -> FAQ:
    from toydata import generate_qa

    docs = generate_qa(path)
    return FAQ(list(docs.text), list(docs.answer), list(docs.id))


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
        from covidqa.models.loading import load_qa_model, load_tokenizer

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
        from covidqa.embedding.encoder import Embedder
        from covidqa.reader.reader import ExtractiveReader

        self.faq, self.limit = faq, limit
        self.embedder = Embedder('base', backend='torch').load()
        vectors = self.embedder.embed_texts(faq.questions)
        self.doc_vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        if reader_kind == 'pipeline':
            self.pipeline = PipelineQA(reader_dir)
            self.reader = None
        else:
            self.pipeline = None
            self.reader = ExtractiveReader(reader_dir, backend='torch', top_k=1, batch_size=reader_batch,
                                           confidence_threshold=0.0).load()

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
        return self.reader.read([question], [contexts]).answers[0][0].answer


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


def bench_baseline_in_child(faq: FAQ, reader_dir: Path, questions: List[str], limit: int, duration: float,
                            concurrency: Sequence[int], kinds: Sequence[str], reader_batch: int = 1
                            ) -> Tuple[dict, Dict[str, List[str]]]:
    """:func:`bench_baseline` in a fresh process that exits when done, so that its models, torch and thread pools do
    not stay in the benchmark's process, which then loads the Flow with its client threads: measured, the Flow's
    one-client /search p50 was ~23 ms after an in-process baseline and ~19 ms without one, same machine."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context('spawn')) as pool:
        return pool.submit(bench_baseline, faq, reader_dir, questions, limit, duration, concurrency, kinds,
                           reader_batch).result()
