"""The open-corpus benchmark, through the Flow: every COVID-QA article and the FAQ in one service (a script, not a
test; ``make bench-corpus``).

What it does:

1. reads every COVID-QA full-article file (``covid_qa_deepset/covid-qa-{train,dev,test}.json``: ~145 articles) and
   the deepset FAQ with :func:`covidqa.data.documents.load_documents`, as ``python -m client index`` does (articles
   cut into sentence-aligned passages with overlap, each with its document id and offsets; FAQ entries as they are);
2. starts ``flow.yml`` (:class:`client.flowctl.FlowProcess`, free 127.0.0.1 ports, a temporary ``$COVIDQA_HOME``) and
   indexes everything through ``/index`` over gRPC: indexing throughput in passages a second;
3. asks the dev and test article questions (159 + 305) and reworded FAQ questions (a FAQ question lowercased without
   punctuation, ``--faq-questions`` of them) through the Flow, one question a request:

   - retrieval: ``/search`` with ``collection: literature`` (article questions) or ``faq``, ranked as ``/answer``
     ranks (``hybrid``), ``limit`` 20: recall@1/5/20 and MRR of the right passage (of the question's article and
     holding the gold span by offsets) or the right FAQ entry;
   - answers: ``/answer`` with the Flow's defaults (``collection: auto``: the FAQ when the reader trusts an entry,
     else the literature): EM/F1 of the best span (the first answer that is not "no answer") against the gold
     answers, the share where the reader said "no answer" first, the share answered from the FAQ, and p50/p95
     latency. For FAQ questions: the share whose best span comes from the asked entry.

A public point of reference: on MTEB's CovidQA retrieval task (the same articles, cut otherwise) all-MiniLM-L6-v2
alone gets recall@1/5/20 0.428/0.743/0.949.

Usage: ``.venv/bin/python benchmarks/bench_corpus.py [--limit-questions 40] [--faq-questions 100]`` (~15 min on 2
cores); writes ``benchmarks/out/corpus.json`` (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from covidqa.data.documents import load_documents
from covidqa.data.passages import ArticleQuestion, read_squad_articles
from covidqa.index.evaluation import scores_of_ranks
from covidqa.index.replies import indexer_reply
from covidqa.paths import FAQ_FILE, data_dir
from covidqa.reader.metrics import exact_match, f1_score

REPO = Path(__file__).resolve().parents[1]
SPLITS = ('train', 'dev', 'test')
KS = (1, 5, 20)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def every_kth(items: list, n: Optional[int]) -> list:
    if not n or n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def passage_rank(question: ArticleQuestion, matches) -> Optional[int]:
    for rank, m in enumerate(matches, start=1):
        if m.parent_id == question.article_id and m.offset_start is not None and \
                m.offset_start <= question.answer_start and question.answer_end <= m.offset_end:
            return rank
    return None


def ask(client, endpoint: str, text: str, parameters: dict):
    from covidqa.docs import DocList, QADoc

    started = time.perf_counter()
    reply = client.post(endpoint, DocList[QADoc]([QADoc(text=text)]), parameters=parameters,
                        return_type=DocList[QADoc], timeout=300)[0]
    return reply, time.perf_counter() - started


def best_span(reply):
    return next((a for a in reply.answers if not a.no_answer), None)


def summary(name: str, ranks: List[Optional[int]], seconds: List[float], rows: List[dict]) -> dict:
    scores = scores_of_ranks(ranks, KS)
    out: dict = {'set': name, 'questions': len(ranks),
                 'recall': {f'@{k}': round(v, 4) for k, v in scores.hit_at.items()}, 'mrr': round(scores.mrr, 4),
                 'answer_p50_ms': round(1000 * statistics.median(seconds), 1),
                 'answer_p95_ms': round(1000 * percentile(seconds, 0.95), 1),
                 'no_answer_first': round(sum(r['no_answer_first'] for r in rows) / len(rows), 4),
                 'from_faq': round(sum(r['kind'] == 'faq' for r in rows) / len(rows), 4)}
    if all('f1' in r for r in rows):
        out['exact_match'] = round(statistics.fmean(r['em'] for r in rows), 4)
        out['f1'] = round(statistics.fmean(r['f1'] for r in rows), 4)
    if all('right_entry' in r for r in rows):
        out['answered_from_the_asked_entry'] = round(statistics.fmean(r['right_entry'] for r in rows), 4)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-dir', help='data root (default $COVIDQA_DATA, else ../shared/data)')
    parser.add_argument('--limit-questions', type=int, help='every k-th article question of each split, this many')
    parser.add_argument('--faq-questions', type=int, default=100, help='reworded FAQ questions asked')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'out' / 'corpus.json')
    args = parser.parse_args(argv)
    root = Path(args.data_dir) if args.data_dir else data_dir()
    files = [root / 'covid_qa_deepset' / f'covid-qa-{split}.json' for split in SPLITS] + [root / FAQ_FILE]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f'error: missing data file(s) {missing}', file=sys.stderr)
        return 2

    from client.flowctl import FlowProcess
    from covidqa.docs import DocList, QADoc

    started = time.perf_counter()
    loaded = load_documents(files)
    read_seconds = time.perf_counter() - started
    if loaded.problems:
        print(f'error: {loaded.problems[:3]}', file=sys.stderr)
        return 2
    docs = loaded.docs
    passages = [d for d in docs if d.kind == 'literature']
    faq = [d for d in docs if d.kind == 'faq']
    print(f'{loaded.summary()} (read in {read_seconds:.1f} s)', flush=True)
    questions = {split: every_kth(list(q for a in read_squad_articles(files[i]) for q in a.questions),
                                  args.limit_questions) for i, split in enumerate(SPLITS) if split != 'train'}
    known = {d.parent_id for d in passages}
    unknown = {q.article_id for qs in questions.values() for q in qs} - known
    if unknown:
        raise RuntimeError(f'questions about articles that were not read: {sorted(unknown)[:3]}')
    plain = str.maketrans('', '', string.punctuation)
    faq_questions = random.Random(0).sample(faq, min(args.faq_questions, len(faq)))

    report: Dict = {'machine': {'platform': platform.platform(), 'cpus': os.cpu_count()},
                    'documents': {'articles': len(known), 'passages': len(passages), 'faq_entries': len(faq)},
                    'sets': []}
    with tempfile.TemporaryDirectory(prefix='covidqa-corpus-') as home:
        with FlowProcess(home=home, ready_timeout=600,
                         env={'JINA_LOG_LEVEL': os.environ.get('JINA_LOG_LEVEL', 'WARNING')}) as flow:
            client = flow.client()
            t0 = time.perf_counter()
            client.post('/index', docs, request_size=32, timeout=3600)
            seconds = time.perf_counter() - t0
            count = indexer_reply(client.post('/count', DocList[QADoc](), return_responses=True)[0]
                                  .parameters['__results__'])['count']
            report['indexing'] = {'documents': count, 'seconds': round(seconds, 1),
                                  'per_second': round(count / seconds, 1)}
            print(f'indexed {count} documents in {seconds:.0f} s ({count / seconds:.1f} a second)', flush=True)
            ask(client, '/answer', 'What is the incubation period?', {})  # warm-up
            for split, qs in questions.items():
                ranks, latencies, rows = [], [], []
                for q in qs:
                    found, _ = ask(client, '/search', q.question,
                                   {'collection': 'literature', 'retrieval': 'hybrid', 'limit': 20})
                    ranks.append(passage_rank(q, found.matches))
                    reply, took = ask(client, '/answer', q.question, {})
                    latencies.append(took)
                    span = best_span(reply)
                    answer = span.answer if span else ''
                    rows.append({'id': q.id, 'no_answer_first': bool(reply.answers and reply.answers[0].no_answer),
                                 'kind': span.kind if span else None, 'answer': answer,
                                 'em': exact_match(answer, list(q.gold_answers)),
                                 'f1': f1_score(answer, list(q.gold_answers))})
                report['sets'].append(summary(f'articles-{split}', ranks, latencies, rows))
                print(json.dumps(report['sets'][-1]), flush=True)
            ranks, latencies, rows = [], [], []
            for entry in faq_questions:
                text = entry.text.lower().translate(plain).strip()
                found, _ = ask(client, '/search', text, {'collection': 'faq', 'retrieval': 'hybrid', 'limit': 20})
                ranks.append(next((r for r, m in enumerate(found.matches, 1) if m.id == entry.id), None))
                reply, took = ask(client, '/answer', text, {})
                latencies.append(took)
                span = best_span(reply)
                rows.append({'id': entry.id, 'no_answer_first': bool(reply.answers and reply.answers[0].no_answer),
                             'kind': span.kind if span else None, 'right_entry': bool(span and
                                                                                     span.context_id == entry.id)})
            report['sets'].append(summary('faq-reworded', ranks, latencies, rows))
            print(json.dumps(report['sets'][-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print('\n| set | questions | recall@1 | @5 | @20 | MRR | EM | F1 | no answer first | from FAQ | p50 ms | p95 ms |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for s in report['sets']:
        r = s['recall']
        print(f"| {s['set']} | {s['questions']} | {r['@1']:.3f} | {r['@5']:.3f} | {r['@20']:.3f} | {s['mrr']:.3f} | "
              f"{s.get('exact_match', float('nan')):.3f} | {s.get('f1', float('nan')):.3f} | "
              f"{s['no_answer_first']:.2f} | {s['from_faq']:.2f} | {s['answer_p50_ms']:.0f} | {s['answer_p95_ms']:.0f} |")
    print(f"indexing: {report['indexing']['per_second']} documents a second; written {args.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
