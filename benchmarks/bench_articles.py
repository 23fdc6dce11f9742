"""Answers from long articles, end to end through the Flow, against BM25 + the same reader (a script, not a test).

The COVID-QA dev articles (``covid_qa_deepset/covid-qa-dev.json``: 21 articles of ~25k characters, 159 questions)
are cut into reader-sized passages (:mod:`covidqa.data.passages`: article id, title, character offsets), indexed
through the Flow's ``/index``, and every dev question is asked through ``/answer`` (``limit`` = passages retrieved,
``--top-k``; the reader reads them all and returns its best span). Rows of the report:

- **Flow (hybrid)**, **Flow (dense)**: ``flow.yml`` started with :class:`client.flowctl.FlowProcess` on free
  127.0.0.1 ports (a temporary ``$COVIDQA_HOME``), over gRPC, one question a request, once per indexer ranking
  (``--flow-retrieval``, the ``retrieval`` parameter: the default ``hybrid``, and ``dense``);
- **BM25 + reader**: :class:`PassageBM25` over the same passages, in this process, with the Flow reader's checkpoint
  and settings (``flow.yml``'s ``uses_with``, incl. the lexical prior);
- **oracle passage**: the same reader on only the passage(s) holding the gold answer (its ceiling given the split).

Measured per row: recall@1/5/20 (a hit at k: one of the top-k passages is of the question's article and holds the
gold span ``[answer_start, answer_end)`` by offsets; the Flow's matches by ``parent_id``/``offset_start``/
``offset_end``), the looser "a gold answer text occurs in the passage", MRR, EM/F1 of the top answer
(:mod:`covidqa.reader.metrics`), latency per question (p50/p95/mean). ``--retrieval-only``: no reader (``/search``).

Usage: ``.venv/bin/python benchmarks/bench_articles.py [--limit-questions 20] [--retrieval-only] [--reader DIR]``
(all 159 questions: ~5-10 min on 2 cores; ``--limit-questions 20``: every k-th question, 20 in all).

The reader: ``--reader``, else :func:`covidqa.reader.reader.resolve_reader_model` (trained into ``$COVIDQA_HOME``,
else shipped in ``models/reader/``), the same in the Flow and here. Writes ``benchmarks/out/articles.json`` (``--out``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml
from measure import benchmark_reader

from covidqa.data.passages import (
    DEFAULT_MAX_CHARS,
    ArticleQuestion,
    Passage,
    passages_holding,
    read_squad_articles,
    split_articles,
)
from covidqa.index.evaluation import scores_of_ranks
from covidqa.index.replies import indexer_reply
from covidqa.paths import data_dir
from covidqa.reader.metrics import exact_match, f1_score
from covidqa.text.lexical import BM25_B, BM25_K1, index_terms

REPO = Path(__file__).resolve().parents[1]

ARTICLE_DEV = 'covid_qa_deepset/covid-qa-dev.json'
OUT_DIR = REPO / 'benchmarks' / 'out'
RECALL_KS = (1, 5, 20)
INDEX_MAX_LENGTH = 256  # tokens of a passage the embedder sees (the Flow's default, 50, suits FAQ questions)


# ------------------------------------------------------------------------------------------------ per question
@dataclass
class Hit:
    """One retrieved passage as the judge sees it: which article, where in it, and its text."""

    article_id: Optional[str]
    start: Optional[int]
    end: Optional[int]
    text: str


@dataclass
class QuestionResult:
    id: str
    question: str
    gold: str
    offset_rank: Optional[int]  # 1-based rank of the first passage holding the gold span, None: not retrieved
    text_rank: Optional[int]  # 1-based rank of the first passage whose text contains a gold answer
    answer: Optional[str] = None
    exact_match: Optional[float] = None
    f1: Optional[float] = None
    answer_in_gold_span_article: Optional[bool] = None
    seconds: float = 0.0
    retrieve_seconds: Optional[float] = None
    read_seconds: Optional[float] = None


def judge(question: ArticleQuestion, hits: Sequence[Hit]) -> Tuple[Optional[int], Optional[int]]:
    """(rank of the first hit holding the gold span by offsets, rank of the first hit containing a gold text)."""
    offset_rank = text_rank = None
    for rank, hit in enumerate(hits, start=1):
        if offset_rank is None and hit.article_id == question.article_id and hit.start is not None \
                and hit.end is not None and hit.start <= question.answer_start and question.answer_end <= hit.end:
            offset_rank = rank
        if text_rank is None and any(g and g in hit.text for g in question.gold_answers):
            text_rank = rank
    return offset_rank, text_rank


def score_answer(result: QuestionResult, question: ArticleQuestion, answer: str) -> None:
    result.answer = answer
    result.exact_match = exact_match(answer, list(question.gold_answers))
    result.f1 = f1_score(answer, list(question.gold_answers))


def summarise(name: str, results: List[QuestionResult], top_k: int, retrieval: bool = True) -> dict:
    n = len(results)
    ks = sorted({k for k in RECALL_KS if k <= top_k} | {top_k})
    row: dict = {'system': name, 'questions': n}
    if retrieval:
        for key, attr in (('recall', 'offset_rank'), ('recall_text', 'text_rank')):
            scores = scores_of_ranks([getattr(r, attr) or None for r in results], ks)
            row[key] = {f'@{k}': round(v, 4) for k, v in scores.hit_at.items()}
            if attr == 'offset_rank':
                row['mrr'] = round(scores.mrr, 4)
    if all(r.answer is not None for r in results):
        row['exact_match'] = round(sum(r.exact_match for r in results) / n, 4)
        row['f1'] = round(sum(r.f1 for r in results) / n, 4)
        row['no_answer'] = sum(1 for r in results if not r.answer)
    seconds = [r.seconds for r in results]
    row['latency_ms'] = {'p50': round(1000 * statistics.median(seconds), 1),
                         'p95': round(1000 * sorted(seconds)[min(n - 1, int(0.95 * n))], 1),
                         'mean': round(1000 * statistics.fmean(seconds), 1)}
    for part in ('retrieve_seconds', 'read_seconds'):
        values = [getattr(r, part) for r in results if getattr(r, part) is not None]
        if values:
            row[f'{part.split("_")[0]}_ms_mean'] = round(1000 * statistics.fmean(values), 1)
    row['per_question'] = [asdict(r) for r in results]
    return row


# ------------------------------------------------------------------------------------------------ reader
def flow_reader_settings() -> dict:
    """The Flow's reader ``uses_with`` from flow.yml (backend, threads, window, stride, top_k, ...)."""
    config = yaml.safe_load((REPO / 'flow.yml').read_text())
    reader = next(e for e in config['executors'] if e['name'] == 'reader')
    return dict(reader.get('uses_with') or {})


def in_process_reader(model: str, settings: dict):
    from covidqa.reader.options import ReadOptions
    from covidqa.reader.reader import ExtractiveReader

    accepted = {'backend', 'num_threads'} | set(ReadOptions.model_fields)
    return ExtractiveReader(model, **{k: v for k, v in settings.items() if k in accepted}).load()


def read_passages(reader, question: str, passages: Sequence[Passage], read_args: dict):
    """The reader's best answer over ``passages`` (None when there are none)."""
    return reader.read([question], [[p.text for p in passages]], [[p.id for p in passages]], top_k=1,
                       **read_args).answers[0][0] if passages else None


# ------------------------------------------------------------------------------------------------ the Flow
def run_flow(passages: List[Passage], questions: List[ArticleQuestion], reader_model: str, top_k: int,
             index_max_length: int, retrieval_only: bool, read_args: dict,
             retrievals: Sequence[str] = ('hybrid',)) -> dict:
    """Index the passages once, then ask every question once per indexer ``retrieval`` (a request parameter).
    Returns ``{'results': {retrieval: [QuestionResult]}, 'info': {...}}``."""
    from client.flowctl import FlowProcess
    from covidqa.docs import DocList, QADoc

    docs = DocList[QADoc]([
        QADoc(id=p.id, text=p.text, title=p.title, source='COVID-QA dev article', parent_id=p.article_id,
              offset_start=p.start, offset_end=p.end) for p in passages])
    endpoint = '/search' if retrieval_only else '/answer'
    params: dict = {'limit': top_k} if retrieval_only else {'limit': top_k, 'top_k': 1, **read_args}
    info: dict = {'endpoint': endpoint, 'parameters': params, 'index_max_length': index_max_length}
    with tempfile.TemporaryDirectory(prefix='covidqa-articles-') as home:
        overrides = {'reader': {'model': reader_model}} if reader_model else None
        flow = FlowProcess(home=home, overrides=overrides, ready_timeout=600,
                           env={'JINA_LOG_LEVEL': os.environ.get('JINA_LOG_LEVEL', 'WARNING')})
        with flow:
            info['startup_seconds'] = round(flow.startup_seconds, 1)
            print(f'Flow ready in {info["startup_seconds"]} s (gRPC {flow.grpc_port}, HTTP {flow.http_port})',
                  flush=True)
            client = flow.client()
            t0 = time.perf_counter()
            client.post('/index', docs, request_size=32, parameters={'max_length': index_max_length}, timeout=600)
            info['index_seconds'] = round(time.perf_counter() - t0, 1)
            counted = client.post('/count', DocList[QADoc](), return_responses=True)[0].parameters['__results__']
            info['indexed'] = indexer_reply(counted)['count']
            print(f'indexed {info["indexed"]} passages in {info["index_seconds"]} s', flush=True)
            if info['indexed'] != len(passages):
                raise RuntimeError(f'/count says {info["indexed"]} documents, {len(passages)} were indexed')
            client.post(endpoint, DocList[QADoc]([QADoc(text='What is the incubation period?')]),
                        parameters=params, timeout=300)  # warm-up (first ONNX runs)
            by_retrieval = {}
            for retrieval in retrievals:
                by_retrieval[retrieval] = ask_flow(flow, client, endpoint, dict(params, retrieval=retrieval),
                                                   questions, top_k, len(passages), retrieval_only)
    return {'results': by_retrieval, 'info': info}


def ask_flow(flow, client, endpoint: str, params: dict, questions: List[ArticleQuestion], top_k: int,
             passages: int, retrieval_only: bool) -> List[QuestionResult]:
    from covidqa.docs import DocList, QADoc

    if endpoint == '/answer':  # the passages read, with the answers
        params = {**params, 'return_matches': True}
    results = []
    for i, q in enumerate(questions):
        t0 = time.perf_counter()
        try:
            got = client.post(endpoint, DocList[QADoc]([QADoc(text=q.question)]), parameters=params,
                              return_type=DocList[QADoc], timeout=300)
        except ConnectionError:  # see tests/integration/test_flow.py: a fresh client once
            client = flow.client()
            got = client.post(endpoint, DocList[QADoc]([QADoc(text=q.question)]), parameters=params,
                              return_type=DocList[QADoc], timeout=300)
        seconds = time.perf_counter() - t0
        matches = got[0].matches
        if len(matches) != min(top_k, passages):
            raise RuntimeError(f'{endpoint} returned {len(matches)} matches, expected {top_k}')
        missing = [m.id for m in matches if m.parent_id is None or m.offset_start is None]
        if missing:
            raise RuntimeError(f'{endpoint}: matches {missing[:3]} came back without parent_id/offsets')
        hits = [Hit(m.parent_id, m.offset_start, m.offset_end, m.text) for m in matches]
        result = QuestionResult(q.id, q.question, q.answer_text, *judge(q, hits), seconds=seconds)
        if not retrieval_only:
            top = got[0].answers[0]
            score_answer(result, q, top.answer)
            by_id = {m.id: m for m in matches}
            source = by_id.get(top.context_id)
            result.answer_in_gold_span_article = bool(source and source.parent_id == q.article_id)
        results.append(result)
        if (i + 1) % 20 == 0:
            print(f'  Flow ({params["retrieval"]}): {i + 1}/{len(questions)} questions', flush=True)
    return results


# ------------------------------------------------------------------------------------------------ in-process rows
class PassageBM25:
    """Okapi BM25 over ``passages`` (the words, k1 and b of :mod:`covidqa.text.lexical`; IDF ``log(1 + (N - df +
    0.5) / (df + 0.5))``): :meth:`search` gives the ``limit`` best for a question, best first (ties in passage order;
    passages sharing no word with it left out)."""

    def __init__(self, passages: Sequence[Passage]):
        self.passages = list(passages)
        counts = [Counter(index_terms(p.text)) for p in self.passages]
        self.lengths = [sum(c.values()) for c in counts]
        self.avg_length = max(1e-9, sum(self.lengths) / len(self.lengths))
        self.postings: Dict[str, List[Tuple[int, int]]] = defaultdict(list)  # word -> [(passage, frequency)]
        for i, c in enumerate(counts):
            for word, freq in c.items():
                self.postings[word].append((i, freq))
        self.idf = {w: math.log(1.0 + (len(counts) - len(p) + 0.5) / (len(p) + 0.5)) for w, p in self.postings.items()}

    def search(self, question: str, limit: int) -> List[Passage]:
        scores: Dict[int, float] = defaultdict(float)
        for word in set(index_terms(question)):
            for i, freq in self.postings.get(word, ()):
                norm = BM25_K1 * (1.0 - BM25_B + BM25_B * self.lengths[i] / self.avg_length)
                scores[i] += self.idf[word] * freq * (BM25_K1 + 1.0) / (freq + norm)
        return [self.passages[i] for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def run_bm25(bm25: PassageBM25, questions: List[ArticleQuestion], reader, top_k: int,
             read_args: dict) -> List[QuestionResult]:
    results = []
    for q in questions:
        t0 = time.perf_counter()
        read = bm25.search(q.question, limit=top_k)
        t1 = time.perf_counter()
        hits = [Hit(p.article_id, p.start, p.end, p.text) for p in read]
        result = QuestionResult(q.id, q.question, q.answer_text, *judge(q, hits), retrieve_seconds=t1 - t0)
        if reader is not None:
            answer = read_passages(reader, q.question, read, read_args)
            score_answer(result, q, answer.answer if answer else '')
            source = read[answer.context_index] if answer is not None and answer.context_index >= 0 else None
            result.answer_in_gold_span_article = bool(source and source.article_id == q.article_id)
            result.read_seconds = time.perf_counter() - t1
        result.seconds = time.perf_counter() - t0
        results.append(result)
    return results


def run_oracle(passages: List[Passage], questions: List[ArticleQuestion], reader,
               read_args: dict) -> List[QuestionResult]:
    results = []
    for q in questions:
        gold = passages_holding(passages, q.article_id, q.answer_start, q.answer_end)
        t0 = time.perf_counter()
        answer = read_passages(reader, q.question, gold, read_args).answer
        result = QuestionResult(q.id, q.question, q.answer_text, None, None, seconds=time.perf_counter() - t0)
        score_answer(result, q, answer)
        results.append(result)
    return results


# ------------------------------------------------------------------------------------------------ report
def print_table(rows: List[dict], top_k: int) -> None:
    ks = sorted({k for k in RECALL_KS if k <= top_k} | {top_k})
    head = f'{"system":<22}' + ''.join(f'{"R@" + str(k):>8}' for k in ks) + f'{"R@" + str(top_k) + " text":>11}' \
        + f'{"MRR":>7}{"EM":>7}{"F1":>7}{"p50 ms":>9}{"p95 ms":>9}'
    print(head)
    print('-' * len(head))
    for row in rows:
        recall = row.get('recall', {})
        line = f'{row["system"]:<22}' + ''.join(
            f'{recall[f"@{k}"]:>8.3f}' if f'@{k}' in recall else f'{"-":>8}' for k in ks)
        text = row.get('recall_text', {}).get(f'@{top_k}')
        line += f'{text:>11.3f}' if text is not None else f'{"-":>11}'
        line += f'{row["mrr"]:>7.3f}' if 'mrr' in row else f'{"-":>7}'
        for key in ('exact_match', 'f1'):
            line += f'{row[key]:>7.3f}' if key in row else f'{"-":>7}'
        line += f'{row["latency_ms"]["p50"]:>9.1f}{row["latency_ms"]["p95"]:>9.1f}'
        print(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reader', help='reader checkpoint directory (default: the service\'s default reader)')
    parser.add_argument('--top-k', type=int, default=20, help='passages retrieved per question (/answer `limit`)')
    parser.add_argument('--limit-questions', type=int, default=0, help='ask only N questions (every k-th one)')
    parser.add_argument('--data-dir', help='data root (default $COVIDQA_DATA, else ../shared/data)')
    parser.add_argument('--max-chars', type=int, default=DEFAULT_MAX_CHARS, help='passage size limit (characters)')
    parser.add_argument('--index-max-length', type=int, default=INDEX_MAX_LENGTH,
                        help='tokens of a passage the Flow embeds (/index `max_length`)')
    parser.add_argument('--lexical-weight', type=float, default=None,
                        help="the reader's lexical prior for every row (default: the Flow reader's own)")
    parser.add_argument('--no-answer-threshold', type=float, default=None,
                        help="the reader's no-answer threshold for every row (default: the Flow reader's own; "
                             "0 = always answer, e.g. to check the mechanics with an untrained reader)")
    parser.add_argument('--retrieval-only', action='store_true', help='recall only: no reader (Flow /search)')
    parser.add_argument('--skip-flow', action='store_true', help='in-process rows only (BM25, oracle)')
    parser.add_argument('--flow-retrieval', default='hybrid,dense',
                        help="the indexer's rankings to ask the Flow with, comma list (the `retrieval` parameter: "
                             "hybrid, dense, lexical)")
    parser.add_argument('--out', default=str(OUT_DIR / 'articles.json'))
    ns = parser.parse_args(argv)
    if ns.top_k < 1 or ns.top_k > 100:
        parser.error('--top-k must be between 1 and 100')
    # ONNX exports of the packaged embedder survive between runs (a temporary $COVIDQA_HOME would redo them)
    os.environ.setdefault('COVIDQA_ONNX_CACHE', str(OUT_DIR / 'onnx-cache'))

    path = data_dir(ns.data_dir) / ARTICLE_DEV
    if not path.is_file():
        raise SystemExit(f'no {path}: set --data-dir or COVIDQA_DATA to the folder that holds {ARTICLE_DEV}')
    articles = read_squad_articles(path)
    passages = split_articles(articles, max_size=ns.max_chars)
    questions = [q for a in articles for q in a.questions]
    if ns.limit_questions and ns.limit_questions < len(questions):
        step = len(questions) / ns.limit_questions
        questions = [questions[int(i * step)] for i in range(ns.limit_questions)]
    crossing = sum(1 for q in questions
                   if len(passages_holding(passages, q.article_id, q.answer_start, q.answer_end)) != 1)
    print(f'{len(articles)} articles -> {len(passages)} passages (<= {ns.max_chars} chars, mean '
          f'{statistics.fmean(len(p.text) for p in passages):.0f}); {len(questions)} questions, {crossing} with the '
          f'gold span across a passage boundary', flush=True)

    settings = flow_reader_settings()
    # the same reading overrides for every row: /answer parameters for the Flow, read() arguments in-process
    # (confidence_threshold 0: every row scores its best answer, even one the reader would not trust)
    read_args = {'confidence_threshold': 0.0, **{k: v for k, v in (('lexical_weight', ns.lexical_weight),
                                                                    ('no_answer_threshold', ns.no_answer_threshold))
                                                 if v is not None}}
    reader_model = None if ns.retrieval_only else str(benchmark_reader(ns.reader))
    report: dict = {
        'data': ARTICLE_DEV, 'articles': len(articles), 'passages': len(passages), 'max_chars': ns.max_chars,
        'questions': len(questions), 'all_questions': sum(len(a.questions) for a in articles),
        'gold_span_across_passages': crossing, 'top_k': ns.top_k, 'retrieval_only': ns.retrieval_only,
        'reader': reader_model, 'reader_settings': settings, 'read_overrides': read_args,
        'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(),
                    'loadavg_1m_at_start': round(os.getloadavg()[0], 2)},
    }
    rows: List[dict] = []
    if not ns.skip_flow:
        retrievals = [r.strip() for r in ns.flow_retrieval.split(',') if r.strip()]
        flow = run_flow(passages, questions, reader_model, ns.top_k, ns.index_max_length, ns.retrieval_only,
                        read_args, retrievals)
        report['flow'] = flow['info']
        for retrieval, results in flow['results'].items():
            rows.append(summarise(f'Flow ({retrieval})' if ns.retrieval_only else f'Flow ({retrieval} + reader)',
                                  results, ns.top_k))

    t0 = time.perf_counter()
    bm25 = PassageBM25(passages)
    report['bm25_build_seconds'] = round(time.perf_counter() - t0, 2)
    reader = None if ns.retrieval_only else in_process_reader(reader_model, settings)
    if reader is not None:
        reader.read(['What is the incubation period?'], [[passages[0].text]])  # warm-up
    rows.append(summarise('BM25' if ns.retrieval_only else 'BM25 + reader',
                          run_bm25(bm25, questions, reader, ns.top_k, read_args), ns.top_k))
    if reader is not None:
        rows.append(summarise('oracle passage', run_oracle(passages, questions, reader, read_args), ns.top_k,
                              retrieval=False))
    report['rows'] = rows
    report['machine']['loadavg_1m_at_end'] = round(os.getloadavg()[0], 2)

    print()
    print_table(rows, ns.top_k)
    (out := Path(ns.out)).parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
