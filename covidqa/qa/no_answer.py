"""Stage 3 of the shipped reader's recipe: teaching the reader to say "no answer", and the held-out data that
measures it.

- :func:`squad2_parts`: the SQuAD 2.0 dev set (5,945 unanswerable questions) split **by article** into a part to
  train on (:data:`SQUAD2_TRAIN`), one to calibrate the confidence on (:data:`SQUAD2_CALIBRATE`) and one to
  evaluate on (:data:`SQUAD2_EVALUATE`); no article is in two parts;
- :func:`other_article_negatives`: COVID-QA questions paired with a paragraph of *another* article (gold: no
  answer), the "this passage does not hold it" case of a service that reads retrieved passages;
- :func:`build_no_answer_training_data`: stage 2's COVID-QA records (:func:`covidqa.qa.recipe.build_default_training_data`)
  + the SQuAD 2.0 training part + COVID-QA train questions against other articles' paragraphs;
- :func:`train_no_answer_reader`: fine-tunes a trained reader on them (:data:`NO_ANSWER_ARGS`) and saves it
  (``make reader-no-answer``).

A "no answer" record has ``answer_text == ''``: its windows are labelled ``[CLS]``
(:func:`covidqa.reader.windows.label_windows`).

Example::

    parts = squad2_parts('/data')                   # {'train': [...], 'calibrate': [...], 'evaluate': [...]}
    sum(r.answer_text == '' for r in parts['evaluate'])
    train_no_answer_reader(start_from='workspace/models/reader', max_minutes=20)
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from covidqa.data.records import QARecord, read_qa_file
from covidqa.paths import PathLike, default_reader_dir
from covidqa.paths import data_dir as default_data_dir
from covidqa.qa.recipe import DEFAULT_READER_ARGS, build_default_training_data
from covidqa.training.optim import cpu_has_native_bf16

__all__ = [
    'NO_ANSWER_ARGS',
    'SQUAD2_DEV',
    'NoAnswerTrainingData',
    'build_no_answer_training_data',
    'other_article_negatives',
    'squad2_parts',
    'train_no_answer_reader',
]

SQUAD2_DEV = 'squad_v2.0_dev/derived/dev-v2.0.from_explorer.json'
SQUAD2_TRAIN, SQUAD2_CALIBRATE, SQUAD2_EVALUATE = 'train', 'calibrate', 'evaluate'
# article i (titles sorted) -> part by i % 5: two fifths train, one fifth calibrates, two fifths evaluate
_PART_OF_REMAINDER = {0: SQUAD2_TRAIN, 1: SQUAD2_CALIBRATE, 2: SQUAD2_EVALUATE, 3: SQUAD2_TRAIN, 4: SQUAD2_EVALUATE}

# What changes in the default recipe for stage 3: a trained reader takes small steps; one pass over the data.
NO_ANSWER_ARGS: Dict[str, Any] = {
    'learning_rate': 3e-5,
    'num_train_epochs': 1.0,
    'batch_size': 8,
    'max_train_seconds': 1500.0,  # guard: 25 minutes on 2 cores; the schedule follows the clock
}
NEGATIVE_SHARE = 0.5  # COVID-QA train questions also read against another article's paragraph


def squad2_parts(data_dir: Optional[PathLike] = None) -> Dict[str, List[QARecord]]:
    """The SQuAD 2.0 dev records split by article into ``train`` / ``calibrate`` / ``evaluate`` (2/5, 1/5, 2/5 of
    the 35 articles by sorted title). Raises ``FileNotFoundError`` naming the file when it is missing."""
    path = (Path(data_dir) if data_dir else default_data_dir()) / SQUAD2_DEV
    if not path.is_file():
        raise FileNotFoundError(f'SQuAD 2.0 dev not found: {path}; set $COVIDQA_DATA or --data-dir')
    records = read_qa_file(path)
    titles = sorted({r.title or '' for r in records})
    part_of = {t: _PART_OF_REMAINDER[i % 5] for i, t in enumerate(titles)}
    parts: Dict[str, List[QARecord]] = {SQUAD2_TRAIN: [], SQUAD2_CALIBRATE: [], SQUAD2_EVALUATE: []}
    for r in records:
        parts[part_of[r.title or '']].append(r)
    return parts


def other_article_negatives(records: Sequence[QARecord], share: float = 1.0, seed: int = 0) -> List[QARecord]:
    """``share`` of ``records`` (a random choice), each question paired with the context of a record of another
    article (``title``), drawn at random: "no answer" records (``answer_text=''``, id ``<id>-other``). Needs
    records of at least two articles."""
    articles = sorted({r.title or '' for r in records})
    if len(articles) < 2:
        raise ValueError('other_article_negatives needs records of at least two articles')
    rng = np.random.default_rng(seed)
    by_article: Dict[str, List[str]] = {}
    for r in records:
        by_article.setdefault(r.title or '', [])
        if r.context not in by_article[r.title or '']:
            by_article[r.title or ''].append(r.context)
    chosen = sorted(rng.choice(len(records), size=int(round(share * len(records))), replace=False).tolist())
    out = []
    for i in chosen:
        r = records[i]
        others = [a for a in articles if a != (r.title or '')]
        article = others[int(rng.integers(len(others)))]
        contexts = by_article[article]
        context = contexts[int(rng.integers(len(contexts)))]
        out.append(QARecord(context, r.question, '', -1, id=f'{r.id}-other', title=article))
    return out


@dataclass
class NoAnswerTrainingData:
    """Stage 3's records and where they came from."""

    records: List[QARecord]
    covid_records: int
    squad2_answerable: int
    squad2_unanswerable: int
    covid_negatives: int


def build_no_answer_training_data(data_dir: Optional[PathLike] = None, seed: int = 42) -> NoAnswerTrainingData:
    """Stage 2's COVID-QA training records, the SQuAD 2.0 ``train`` part (:func:`squad2_parts`) and
    :data:`NEGATIVE_SHARE` of the COVID-QA paragraph-train questions against another article's paragraph. Neither
    COVID-QA dev set nor the SQuAD 2.0 calibrate/evaluate parts are touched."""
    root = Path(data_dir) if data_dir else default_data_dir()
    covid = build_default_training_data(root, seed=seed)
    squad2 = squad2_parts(root)[SQUAD2_TRAIN]
    paragraphs = covid.records[:covid.paragraph_records]  # build_default_training_data lists them first
    negatives = other_article_negatives(paragraphs, NEGATIVE_SHARE, seed)
    return NoAnswerTrainingData(
        records=covid.records + squad2 + negatives, covid_records=len(covid.records),
        squad2_answerable=sum(1 for r in squad2 if r.answer_text), squad2_unanswerable=sum(
            1 for r in squad2 if r.answer_text == ''), covid_negatives=len(negatives))


def train_no_answer_reader(start_from: Optional[PathLike] = None, output: Optional[PathLike] = None,
                           data_dir: Optional[PathLike] = None, max_minutes: Optional[float] = None,
                           args: Optional[Mapping[str, Any]] = None):
    """Fine-tune ``start_from`` (default: the reader the service serves, :func:`covidqa.reader.runners.resolve_reader_model`)
    on :func:`build_no_answer_training_data` with the default recipe plus :data:`NO_ANSWER_ARGS`, and save it to
    ``output`` (default :func:`covidqa.paths.default_reader_dir`). Returns the :class:`covidqa.qa.api.TrainResult`."""
    from covidqa.qa.api import QuestionAnswering
    from covidqa.qa.args import QATrainArgs
    from covidqa.reader.runners import resolve_reader_model

    start = start_from or resolve_reader_model(None)
    target = Path(output) if output else default_reader_dir()
    config = DEFAULT_READER_ARGS.to_dict()
    config['bf16'] = config['bf16'] and cpu_has_native_bf16()
    config.update(NO_ANSWER_ARGS)
    config.update(args or {})
    if max_minutes is not None:
        config['max_train_seconds'] = max_minutes * 60 if max_minutes > 0 else None
    config['output_dir'] = None
    train_args = QATrainArgs.from_any(config)
    data = build_no_answer_training_data(data_dir, seed=train_args.seed)
    print(f'stage 3 (no answer) from {start} into {target}: {data.covid_records} COVID-QA records, SQuAD 2.0 '
          f'{data.squad2_answerable} answerable + {data.squad2_unanswerable} unanswerable, {data.covid_negatives} '
          f'COVID-QA questions against another article', flush=True)
    print(f'config: {json.dumps({k: v for k, v in train_args.to_dict().items() if v is not None})}', flush=True)
    import torch

    torch.manual_seed(train_args.seed)
    qa = QuestionAnswering(start)
    result = qa.train(data.records, train_args)
    qa.save(target, meta={'data': {k: v for k, v in dataclasses.asdict(data).items() if k != 'records'},
                          'start_from': str(start), 'stage': 'no-answer'})
    print(f'trained in {result.seconds / 60:.1f} min: {result.steps} steps, loss {result.first_loss:.3f} -> '
          f'{result.final_loss:.3f}; saved to {target}', flush=True)
    return result
