"""The indexer's rankings side by side: dense (cosine of the Flow's int8 ``[CLS]`` vectors), lexical (BM25, SQLite
FTS5) and hybrid (both fused, at several ``bm25_weight``), through the real :class:`covidqa.index.store.DocumentStore`
(a script, not a test; in process, no Flow: the Flow's ranking is this code, see ``make bench-articles`` for it
end to end).

Tasks (data from ``$COVIDQA_DATA``):

- ``articles-dev`` / ``articles-test``: the COVID-QA dev (21 articles, 159 questions) and test articles cut into
  passages (:mod:`covidqa.data.passages`); a hit is a passage holding the gold span;
- ``paragraphs``: COVID-QA paragraph-dev question -> its paragraph (191 questions);
- ``community``: an xhlulu community question's body (first 300 characters) -> an entry with its accepted answer
  (entries: title as text, accepted answer as ``answer``; 500 questions, seed 0): what ``/search`` does for a user;
- ``faq-reworded``: a deepset FAQ question lowercased without punctuation -> its entry.

Passages are embedded from their first 256 tokens, questions from 50, as the Flow does. Prints recall@k and MRR
per task and ranking, and the milliseconds a query of the store's search (one process, 2 threads for ONNX).

Usage::

    .venv/bin/python benchmarks/bench_retrieval.py            # ~3 min on 2 cores (make bench-retrieval)
    .venv/bin/python benchmarks/bench_retrieval.py --weights 0.5,0.7 --out benchmarks/out/retrieval.json
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Sequence, Set

from covidqa.data.passages import read_squad_articles, split_articles
from covidqa.data.records import read_qa_file
from covidqa.docs import DocList, StoredDoc
from covidqa.embedding.encoder import Embedder
from covidqa.index import hybrid
from covidqa.index.evaluation import retrieval_scores
from covidqa.index.hybrid import DEFAULT_CANDIDATES
from covidqa.index.store import DocumentStore
from covidqa.models.loading import DEFAULT_EMBEDDER
from covidqa.paths import FAQ_FILE, data_dir

REPO = Path(__file__).resolve().parents[1]


def int8_embedder(spec: str, max_length: int, threads: int) -> Embedder:
    """An int8 ONNX embedder from ``spec`` = ``MODEL[:POOLING]`` (default: the Flow's, the shipped ``[CLS]``
    embedder; ``base:mean`` is all-MiniLM-L6-v2 as it was trained, ``base:cls`` its ``[CLS]`` vector)."""
    model, _, pooling = spec.partition(':')
    return Embedder(model or DEFAULT_EMBEDDER, backend='onnx-int8', pooling=pooling or None, num_threads=threads,
                    max_length=max_length)


class Task:
    def __init__(self, name: str, texts: Sequence[str], queries: Sequence[str], right: Sequence[Set[int]],
                 answers: Sequence = (), ks: Sequence[int] = (1, 5, 20)):
        self.name, self.texts, self.queries, self.right = name, list(texts), list(queries), list(right)
        self.answers, self.ks = list(answers), tuple(ks)


def tasks(root: Path) -> List[Task]:
    out = []
    for split in ('dev', 'test'):
        articles = read_squad_articles(root / 'covid_qa_deepset' / f'covid-qa-{split}.json')
        passages = split_articles(articles)
        questions = [q for a in articles for q in a.questions]
        out.append(Task(f'articles-{split}', [p.text for p in passages], [q.question for q in questions],
                        [{i for i, p in enumerate(passages) if p.holds(q.article_id, q.answer_start, q.answer_end)}
                         for q in questions]))
    records = read_qa_file(root / 'covid_qa_paragraphs' / 'qa_dev.json')
    paragraphs = sorted({r.context for r in records})
    out.append(Task('paragraphs', paragraphs, [r.question for r in records],
                    [{paragraphs.index(r.context)} for r in records]))
    with open(root / 'covidqa_xhlulu_community' / 'community.csv', newline='', encoding='utf-8') as f:
        community = [r for r in csv.DictReader(f) if r['title'].strip() and r['question'].strip()]
    same_answer: dict = {}
    for i, r in enumerate(community):
        same_answer.setdefault(r['answer'].strip(), set()).add(i)
    asked = list(range(len(community)))
    random.Random(0).shuffle(asked)
    asked = asked[:500]
    out.append(Task('community', [r['title'].strip() for r in community],
                    [community[i]['question'][:300] for i in asked],
                    [same_answer[community[i]['answer'].strip()] for i in asked],
                    answers=[r['answer'].strip() for r in community], ks=(1, 3, 10)))
    with open(root / FAQ_FILE, newline='', encoding='utf-8') as f:
        faq = [r for r in csv.DictReader(f) if r['question'].strip() and r['answer'].strip()]
    plain = str.maketrans('', '', string.punctuation)
    out.append(Task('faq-reworded', [r['question'].strip() for r in faq],
                    [r['question'].lower().translate(plain).strip() for r in faq], [{i} for i in range(len(faq))],
                    answers=[r['answer'].strip() for r in faq], ks=(1, 3, 10)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', help='data root (default $COVIDQA_DATA, else ../shared/data)')
    parser.add_argument('--weights', default='0.3,0.5,0.7,0.8', help='bm25_weight values of the hybrid rows')
    parser.add_argument('--candidates', type=int, default=DEFAULT_CANDIDATES)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--embedders', default=DEFAULT_EMBEDDER,
                        help='comma-separated MODEL[:POOLING] to compare, e.g. shipped-embedder,base:mean,base:cls '
                             '(default: the Flow\'s)')
    parser.add_argument('--out', default=str(REPO / 'benchmarks' / 'out' / 'retrieval.json'))
    ns = parser.parse_args(argv)
    weights = [float(w) for w in ns.weights.split(',') if w.strip()]
    specs = [s.strip() for s in ns.embedders.split(',') if s.strip()]
    rows = []
    all_tasks = tasks(data_dir(ns.data_dir))
    for number, spec in enumerate(specs):
        queries_embedder, passages_embedder = (int8_embedder(spec, 50, ns.threads),
                                               int8_embedder(spec, 256, ns.threads))
        rankings = [('dense', None)] + [('lexical', None)] * (number == 0) + [('hybrid', w) for w in weights]
        for task in all_tasks:
            rows += run_task(task, spec, queries_embedder, passages_embedder, rankings, ns.candidates)
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'candidates': ns.candidates, 'rows': rows}, indent=1))
    print(f'wrote {out}')
    return 0


def run_task(task: Task, spec: str, queries_embedder: Embedder, passages_embedder: Embedder, rankings,
             candidates: int) -> List[dict]:
    """One task's rows: each ranking of ``rankings`` ((retrieval, bm25_weight) pairs) over one fresh store."""
    rows = []
    store = DocumentStore(tempfile.mkdtemp(prefix='covidqa-retrieval-'), synchronous='NORMAL')
    try:
        vectors = passages_embedder.embed_texts(task.texts)
        store.upsert(DocList[StoredDoc]([
            StoredDoc(id=str(i), text=t, answer=task.answers[i] if task.answers else None, embedding=v)
            for i, (t, v) in enumerate(zip(task.texts, vectors))]))
        query_vectors = queries_embedder.embed_texts(task.queries)
        depth = max(task.ks)
        for retrieval, weight in rankings:
            options = {} if weight is None else {'bm25_weight': weight}
            started = time.perf_counter()
            found = hybrid.search(store, query_vectors, depth, texts=task.queries, retrieval=retrieval,
                                  candidates=candidates, **options)
            ms = 1000 * (time.perf_counter() - started) / len(task.queries)
            ranks = [[int(d.id) for d in docs] for docs, _ in found]
            scores = retrieval_scores(ranks, task.right, task.ks)
            row = {'task': task.name, 'embedder': None if retrieval == 'lexical' else spec,
                   'documents': len(task.texts), 'queries': len(task.queries), 'retrieval': retrieval,
                   'bm25_weight': weight, 'ms_per_query': round(ms, 2),
                   'mrr': round(scores.mrr, 3), **{f'recall@{k}': round(v, 3) for k, v in scores.hit_at.items()}}
            rows.append(row)
            recalls = ' '.join(f'R@{k} {row[f"recall@{k}"]:.3f}' for k in task.ks)
            label = retrieval if weight is None else f'{retrieval} {weight}'
            who = '' if retrieval == 'lexical' else spec
            print(f'{task.name:14s} {who:18s} {label:11s} {recalls}  MRR {row["mrr"]:.3f}  {ms:.2f} ms/query',
                  flush=True)
    finally:
        store.close()
    return rows


if __name__ == '__main__':
    sys.exit(main())
