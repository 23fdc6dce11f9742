"""Does the service say "no answer" when there is none, and answer when there is one? (a script, not a test)

``make bench-abstain`` prints one table and writes ``benchmarks/out/abstain.json``. Every question is from the
``evaluate`` half of :func:`covidqa.qa.calibrate.held_out_sets`: the reader's calibration (``make reader-calibrate``)
never saw it, and stage 3 of its training (:mod:`covidqa.qa.no_answer`) took another part of SQuAD 2.0.

- **SQuAD 2.0 dev, held-out articles**: HasAns F1 (an abstention scores 0), NoAns accuracy (share of unanswerable
  questions answered "no answer"), overall F1 (SQuAD 2.0's: a right abstention scores 1), for the served reader at
  its default threshold and, with ``--baseline DIR``, another reader as served (e.g. the previous shipped one:
  no calibration, ``no_answer_threshold`` 0.01) on the same questions;
- **COVID-QA paragraph dev, held-out articles**: questions against their own paragraph (answer rate, F1) and
  against another article's paragraph (abstention rate);
- **through a running Flow with the FAQ indexed** (``flow.yml`` on free 127.0.0.1 ports, a temporary
  ``$COVIDQA_HOME``, one question a gRPC ``/answer`` request): reworded FAQ questions (covered; right = the answer
  comes from the question's own entry) against questions the FAQ does not cover (COVID-QA article questions,
  SQuAD v1.1 and SQuADShifts questions): ROC-AUC of the answer's confidence (covered vs not), the answer rate on
  each side at the default threshold, the precision of the answers given, ``/answer`` latency, and the size of an
  HTTP reply with and without ``return_matches``;
- the expected calibration error of the answers' scores over all of it (each question's best answer, given or
  not).

Usage::

    .venv/bin/python benchmarks/bench_abstain.py                       # the served reader (trained, else shipped)
    .venv/bin/python benchmarks/bench_abstain.py --baseline ~/.cache/covidqa/home/models/shipped-reader-97a23a74728f
    .venv/bin/python benchmarks/bench_abstain.py --squad2-limit 500 --skip-flow   # quicker

Data root: ``$COVIDQA_DATA`` (default ``../shared/data`` next to the repository).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from covidqa.paths import data_dir
from covidqa.qa.calibrate import Outcome, faq_questions, faq_rows, held_out_sets, read_set
from covidqa.qa.no_answer import SQUAD2_EVALUATE
from covidqa.reader.confidence import expected_calibration_error

REPO = Path(__file__).resolve().parents[1]


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """The probability that a positive scores above a negative (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float('nan')
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def squad2_row(name: str, outcomes: List[Outcome]) -> Dict:
    has = [o for o in outcomes if o.answerable]
    no = [o for o in outcomes if not o.answerable]
    has_f1 = [0.0 if o.abstained else o.f1 for o in has]
    return {'reader': name, 'questions': len(outcomes), 'has_answer': len(has), 'no_answer': len(no),
            'has_f1': round(statistics.mean(has_f1), 4),
            'has_f1_always_answering': round(statistics.mean(o.f1 for o in has), 4),
            'no_answer_accuracy': round(statistics.mean(o.abstained for o in no), 4),
            'overall_f1': round((sum(has_f1) + sum(o.abstained for o in no)) / len(outcomes), 4)}


def paragraph_row(outcomes: List[Outcome]) -> Dict:
    own = [o for o in outcomes if o.answerable]
    other = [o for o in outcomes if not o.answerable]
    return {'own_paragraph': len(own), 'own_answered': round(statistics.mean(not o.abstained for o in own), 4),
            'own_f1': round(statistics.mean(0.0 if o.abstained else o.f1 for o in own), 4),
            'own_f1_always_answering': round(statistics.mean(o.f1 for o in own), 4),
            'other_article': len(other), 'other_abstained': round(statistics.mean(o.abstained for o in other), 4)}


def through_flow(root: Path, questions) -> Dict:
    """Index the FAQ into a fresh Flow and ask ``questions`` (``(text, gold entry id or None, kind)``)."""
    import requests

    from client.flowctl import FlowProcess
    from covidqa.docs import AnswerReply, DocList, QADoc

    faq = faq_rows(root)
    rows, latencies = [], []
    with tempfile.TemporaryDirectory(prefix='covidqa-abstain-') as home:
        with FlowProcess(home=home, ready_timeout=600) as flow:
            client = flow.client('grpc')
            client.post('/index', DocList[QADoc]([QADoc(id=str(i), text=r['question'], answer=r['answer'],
                                                        source=r.get('source') or None, url=r.get('link') or None)
                                                  for i, r in enumerate(faq)]), request_size=32, timeout=600)
            client.post('/answer', DocList[QADoc]([QADoc(text='warm up')]), return_type=DocList[AnswerReply])
            for text, gold, kind in questions:
                started = time.perf_counter()
                reply = client.post('/answer', DocList[QADoc]([QADoc(text=text)]),
                                    return_type=DocList[AnswerReply])[0]
                latencies.append(time.perf_counter() - started)
                answers = list(reply.answers)
                best = next((a for a in answers if not a.no_answer), None)
                rows.append({'kind': kind, 'covered': gold is not None, 'answered': not answers[0].no_answer,
                             'confidence': best.score if best is not None else 0.0,
                             'right': best is not None and gold is not None and best.context_id == gold})
            sizes = {}
            for flag in (False, True):
                body = {'data': [{'text': 'How does the virus spread?'}], 'parameters': {'return_matches': flag}}
                sizes['with_matches' if flag else 'lean'] = len(requests.post(f'{flow.http_url}/answer', json=body,
                                                                            timeout=60).content)
    covered = [r for r in rows if r['covered']]
    uncovered = [r for r in rows if not r['covered']]
    given = [r for r in rows if r['answered']]
    return {
        'covered': len(covered), 'uncovered': len(uncovered),
        'roc_auc': round(roc_auc([r['confidence'] for r in rows], [r['covered'] for r in rows]), 4),
        'roc_auc_right': round(roc_auc([r['confidence'] for r in rows], [r['right'] for r in rows]), 4),
        'covered_answered': round(statistics.mean(r['answered'] for r in covered), 4),
        'uncovered_answered': round(statistics.mean(r['answered'] for r in uncovered), 4),
        'covered_right': round(statistics.mean(r['right'] for r in covered), 4),
        'precision': round(sum(r['right'] for r in given) / len(given), 4) if given else None,
        'answer_p50_ms': round(1000 * statistics.median(latencies), 1),
        'reply_bytes': sizes,
        'per_kind': {k: round(statistics.mean(r['answered'] for r in rows if r['kind'] == k), 4)
                     for k in sorted({r['kind'] for r in rows})},
        'outcomes': rows,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='reader directory (default: the served one, trained else shipped)')
    parser.add_argument('--baseline', help='another reader directory, read as served (its own calibration if any)')
    parser.add_argument('--squad2-limit', type=int, default=0, help='SQuAD 2.0 questions (0: the whole half)')
    parser.add_argument('--skip-flow', action='store_true', help='no Flow: SQuAD 2.0 and COVID-QA only')
    parser.add_argument('--backend', default='onnx-int8', help="the reader's backend (the Flow's: onnx-int8)")
    parser.add_argument('--out', default=str(REPO / 'benchmarks' / 'out' / 'abstain.json'))
    ns = parser.parse_args(argv)

    from covidqa.reader.reader import ExtractiveReader

    root = data_dir()
    sets = {s.name: s for s in held_out_sets(SQUAD2_EVALUATE, root, faq=False, squad2_limit=ns.squad2_limit or None)}
    reader = ExtractiveReader(ns.model, backend=ns.backend).load()
    if reader.calibrator is None:
        print(f'warning: {reader.model_path} has no calibration: scores are span scores', file=sys.stderr)
    report: Dict = {'machine': {'cpus': os.cpu_count(), 'platform': platform.platform()},
                    'model': str(reader.model_path),
                    'threshold': reader.calibrator.threshold if reader.calibrator else None}
    squad = read_set(reader, sets['squad2'])
    paragraphs = read_set(reader, sets['covid-paragraphs'])
    report['squad2'] = [squad2_row('served', squad)]
    if ns.baseline:
        baseline = ExtractiveReader(ns.baseline, backend=ns.backend).load()
        report['squad2'].append(squad2_row(f'baseline {Path(ns.baseline).name}', read_set(baseline, sets['squad2'])))
        report['baseline_paragraphs'] = paragraph_row(read_set(baseline, sets['covid-paragraphs']))
    report['paragraphs'] = paragraph_row(paragraphs)
    scored = {'squad2': ([o.score for o in squad], [o.right for o in squad]),
              'covid-paragraphs': ([o.score for o in paragraphs], [o.right for o in paragraphs])}
    if not ns.skip_flow:
        flow = through_flow(root, faq_questions(root, SQUAD2_EVALUATE))
        report['faq_flow'] = {k: v for k, v in flow.items() if k != 'outcomes'}
        scored['faq'] = ([r['confidence'] for r in flow['outcomes']], [r['right'] for r in flow['outcomes']])
    probabilities = [p for ps, _ in scored.values() for p in ps]
    right = [r for _, rs in scored.values() for r in rs]
    report['ece'] = round(expected_calibration_error(probabilities, right), 4)
    report['ece_answers'] = len(probabilities)
    report['ece_per_set'] = {name: round(expected_calibration_error(ps, rs), 4) for name, (ps, rs) in scored.items()}

    print(f"\nreader {report['model']} (threshold {report['threshold']})")
    print('| set | measure | value |\n|---|---|---:|')
    for row in report['squad2']:
        print(f"| SQuAD 2.0 dev, held-out half ({row['questions']} q), {row['reader']} | HasAns F1 / NoAns accuracy / "
              f"overall F1 | {row['has_f1']:.3f} / {row['no_answer_accuracy']:.3f} / {row['overall_f1']:.3f} |")
    for name, p in (('served', report['paragraphs']), ('baseline', report.get('baseline_paragraphs'))):
        if p:
            print(f"| COVID-QA paragraph dev, held-out half, {name} | own paragraph ({p['own_paragraph']}): answered "
                  f"/ F1; other article ({p['other_article']}): no answer | {p['own_answered']:.3f} / "
                  f"{p['own_f1']:.3f}; {p['other_abstained']:.3f} |")
    if 'faq_flow' in report:
        f = report['faq_flow']
        print(f"| FAQ through the Flow: {f['covered']} covered vs {f['uncovered']} uncovered | ROC-AUC | "
              f"{f['roc_auc']:.3f} |")
        print(f"| | answered: covered / uncovered | {f['covered_answered']:.3f} / {f['uncovered_answered']:.3f} |")
        print(f"| | precision of the answers given | {f['precision']} |")
        print(f"| | /answer p50 (gRPC, one question) | {f['answer_p50_ms']} ms |")
        print(f"| | HTTP reply bytes: lean / return_matches | {f['reply_bytes']['lean']} / "
              f"{f['reply_bytes']['with_matches']} |")
    per_set = ', '.join(f'{name} {value:.3f}' for name, value in report['ece_per_set'].items())
    print(f"| all of the above ({report['ece_answers']} answers) | expected calibration error | {report['ece']:.3f} "
          f"({per_set}) |")
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
