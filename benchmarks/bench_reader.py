"""Benchmark the extractive QA reader on COVID-QA (a script, not a test).

Prints and writes (``benchmarks/out/reader.json``):

- paragraph-level dev (``covid_qa_paragraphs/qa_dev.json``, 191 questions, ~720-char contexts): EM, F1, loss;
- full-article dev (``covid_qa_deepset/covid-qa-dev.json``, 159 questions over 21 articles of ~25k characters):
  EM, F1, the reader windows the whole article (``--max-seq-length``/``--doc-stride``) and picks the best span;
- with ``--squad-dev``: SQuAD v1.1 dev (``squad_v1.1/derived/dev-v1.1.from_explorer.json``, 10,570 questions, max
  over the ~3 reference answers), the general extractive-QA measure of stage 1 (:mod:`covidqa.qa.pretrain`);
- the reader's training time (from its ``reader_training.json``, or measured when this script trains);
- answers per second for both (questions answered per second, one context each, batch of all questions).

Usage::

    python benchmarks/bench_reader.py                          # the service's reader (trained, else shipped)
    python benchmarks/bench_reader.py --squad-dev 0            # also all of SQuAD v1.1 dev (N > 0: every k-th, N)
    python benchmarks/bench_reader.py --model DIR              # evaluate another checkpoint
    python benchmarks/bench_reader.py --train '{"learning_rate": 2e-4}' --label lr2e-4   # train a variant first
    python benchmarks/bench_reader.py --train '{}' --start-from shipped --epochs 1 --label s3   # continue the shipped one
    python benchmarks/bench_reader.py --article-limit 60       # quicker: every k-th article question, 60 in all

Data root: ``$COVIDQA_DATA`` (default ``../shared/data`` next to the repo).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from covidqa.data.records import read_qa_file
from covidqa.models.shipped import shipped_model_dir
from covidqa.paths import data_dir
from covidqa.qa.api import TRAINING_META_FILE, QuestionAnswering
from covidqa.qa.pretrain import SQUAD_DEV
from covidqa.qa.recipe import ARTICLE_DEV, PARAGRAPH_DEV, train_default_reader
from covidqa.reader.options import DEFAULT_LEXICAL_WEIGHT
from covidqa.reader.runners import resolve_reader_model

REPO = Path(__file__).resolve().parents[1]


def evaluate(qa: QuestionAnswering, records, name: str) -> dict:
    result = qa.eval(records)
    row = {
        'split': name,
        'questions': result.count,
        'windows': result.windows,
        'exact_match': round(result.exact_match, 4),
        'f1': round(result.f1, 4),
        'loss': round(result.loss, 4),
        'seconds': round(result.seconds, 1),
        'answers_per_second': round(result.count / result.seconds, 2),
        'windows_per_second': round(result.windows / result.seconds, 1),
    }
    print(f'{name:>22}: EM {row["exact_match"]:.3f}  F1 {row["f1"]:.3f}  loss {row["loss"]:.3f}  '
          f'({row["questions"]} questions, {row["windows"]} windows, {row["seconds"]:.0f} s, '
          f'{row["answers_per_second"]:.2f} answers/s)', flush=True)
    return row


def every_kth(records, limit: int) -> list:
    """``limit`` records spread evenly over ``records`` (all of them when ``limit`` is 0 or larger)."""
    records = list(records)
    if not limit or limit >= len(records):
        return records
    step = len(records) / limit
    return [records[int(i * step)] for i in range(limit)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='checkpoint to evaluate (default: the default reader)')
    parser.add_argument('--train', help='train a variant first: JSON of QATrainArgs overriding the default config')
    parser.add_argument('--epochs', type=float, help='num_train_epochs for --train')
    parser.add_argument('--max-minutes', type=float, help='time budget for --train (0: none)')
    parser.add_argument('--no-articles', action='store_true', help='--train on paragraph-level data only')
    parser.add_argument('--start-from', help='--train from this reader (a directory, or "shipped": the committed '
                                             'reader) instead of the base model; adds ADAPT_ARGS')
    parser.add_argument('--article-fraction', type=float, default=1.0)
    parser.add_argument('--label', default='default', help='name of this run in the output')
    parser.add_argument('--article-limit', type=int, default=0, help='evaluate only N full-article questions')
    parser.add_argument('--skip-articles', action='store_true', help='skip the full-article evaluation')
    parser.add_argument('--skip-paragraphs', action='store_true', help='skip the paragraph-level evaluation')
    parser.add_argument('--squad-dev', type=int, default=None, metavar='N',
                        help='also evaluate SQuAD v1.1 dev: 0 = all 10,570 questions, N = every k-th question, N')
    parser.add_argument('--max-seq-length', type=int, default=384)
    parser.add_argument('--doc-stride', type=int, default=128)
    parser.add_argument('--lexical-weight', type=float, default=DEFAULT_LEXICAL_WEIGHT,
                        help='the reader\'s lexical sentence prior (0: the model alone)')
    parser.add_argument('--out', default=str(REPO / 'benchmarks' / 'out' / 'reader.json'))
    ns = parser.parse_args(argv)

    root = data_dir()
    report = {'label': ns.label, 'machine': {'cpus': os.cpu_count(), 'platform': platform.platform()}}
    model = ns.model
    if ns.train is not None:
        model = str(REPO / 'benchmarks' / 'out' / 'models' / ns.label)
        train_default_reader(model, force=True, epochs=ns.epochs, data_dir=root, max_minutes=ns.max_minutes,
                             args=json.loads(ns.train or '{}'), include_articles=not ns.no_articles,
                             article_fraction=ns.article_fraction,
                             start_from=shipped_model_dir('reader') if ns.start_from == 'shipped' else ns.start_from)
    model_dir = Path(model) if model else Path(resolve_reader_model(None))
    meta_path = model_dir / TRAINING_META_FILE
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        report['training'] = {
            'minutes': round(meta.get('train', {}).get('seconds', float('nan')) / 60, 2),
            'steps': meta.get('train', {}).get('steps'),
            'epochs': meta.get('train', {}).get('epochs'),
            'windows': meta.get('train', {}).get('windows'),
            'stopped_by_time': meta.get('train', {}).get('stopped_by_time'),
            'args': meta.get('args'),
            'data': meta.get('data'),
        }
        print(f'model {model_dir}: trained {report["training"]["minutes"]} min, {report["training"]["steps"]} steps',
              flush=True)
    else:
        print(f'model {model_dir}: no {TRAINING_META_FILE} (training time unknown)', flush=True)
    report['model'] = str(model_dir)

    qa = QuestionAnswering(str(model_dir), max_seq_length=ns.max_seq_length, doc_stride=ns.doc_stride,
                           lexical_weight=ns.lexical_weight)
    report['inference'] = {'max_seq_length': ns.max_seq_length, 'doc_stride': ns.doc_stride, 'backend': 'torch',
                           'lexical_weight': ns.lexical_weight}
    if not ns.skip_paragraphs:
        report['paragraph_dev'] = evaluate(qa, list(read_qa_file(root / PARAGRAPH_DEV)), 'paragraph dev')
    if not ns.skip_articles:
        report['article_dev'] = evaluate(qa, every_kth(read_qa_file(root / ARTICLE_DEV), ns.article_limit),
                                         'full-article dev')
    if ns.squad_dev is not None:
        report['squad_dev'] = evaluate(qa, every_kth(read_qa_file(root / SQUAD_DEV), ns.squad_dev), 'SQuAD v1.1 dev')
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
