"""The service's default reader: its recipe, its COVID-QA training data (without dev-set leakage) and its training.

- :data:`DEFAULT_READER_ARGS`: the training arguments of ``python -m covidqa.qa default`` (``make reader``), chosen in
  ``benchmarks/READER_RESULTS.md``; :data:`ADAPT_ARGS`: what changes when it starts from an already trained reader
  (stage 1, :mod:`covidqa.qa.pretrain`);
- :func:`build_default_training_data`: the paragraph-level and full-article COVID-QA train files under the data dir
  (:data:`PARAGRAPH_TRAIN`, :data:`ARTICLE_TRAIN`), without any question of either dev set (:data:`PARAGRAPH_DEV`,
  :data:`ARTICLE_DEV`) nor any paragraph of a full-article dev article -> :class:`DefaultTrainingData`;
- :func:`train_default_reader`: trains the recipe on that data and saves the reader (default
  :func:`covidqa.paths.default_reader_dir`); :func:`covidqa.training.optim.cpu_has_native_bf16` decides whether bf16
  pays here.

Example::

    data = build_default_training_data('/data')       # DefaultTrainingData(paragraph_records=1263, ...)
    train_default_reader(force=True, max_minutes=9)   # -> TrainResult; the reader is saved
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from covidqa.data.records import QARecord, read_qa_file
from covidqa.models.loading import BASE_MODEL_NAME
from covidqa.paths import PathLike, default_reader_dir
from covidqa.paths import data_dir as default_data_dir
from covidqa.qa.api import QuestionAnswering, TrainResult
from covidqa.qa.args import QATrainArgs
from covidqa.training.optim import cpu_has_native_bf16

__all__ = [
    'ADAPT_ARGS',
    'ARTICLE_DEV',
    'ARTICLE_TRAIN',
    'DEFAULT_READER_ARGS',
    'PARAGRAPH_DEV',
    'PARAGRAPH_TRAIN',
    'DefaultTrainingData',
    'build_default_training_data',
    'train_default_reader',
]

# The configuration of `python -m covidqa.qa default` (chosen in benchmarks/READER_RESULTS.md, which has the runs).
DEFAULT_READER_ARGS = QATrainArgs(
    learning_rate=2e-4,
    weight_decay=0.01,
    # 2 epochs planned; on 2 idle cores (bf16) the 9-minute guard ends it after ~1.25-1.5
    num_train_epochs=2.0,
    batch_size=4,  # small batches win at this budget: more updates for the same windows (benchmarks/READER_RESULTS.md)
    max_seq_length=256,
    doc_stride=128,
    negatives_per_question=1,  # 2 was much worse on both dev sets
    max_positives_per_question=1,
    warmup_ratio=0.1,
    bf16=True,  # autocast; train_default_reader turns it off on CPUs without native bf16 (emulated bf16 is slower)
    freeze_layers=2,  # embeddings + 2 lowest layers fixed: with bf16 1.7x the steps/s of fp32, +3.6 F1
    question_word_type=True,  # context tokens repeating a question word get type 2: full-article F1 +10
    # one softmax over a question's windows on top of the per-window loss: seed 42, same day, paragraph F1
    # 0.512 -> 0.549, all 159 full-article dev questions 0.335 -> 0.383
    shared_norm_weight=1.0,
    seed=42,
    max_train_seconds=540.0,  # guard: stop after 9 minutes; the learning-rate schedule follows the clock
)
# Stage 2 of the shipped reader's recipe: what changes in DEFAULT_READER_ARGS when fine-tuning the SQuAD-trained
# reader of stage 1 (covidqa.qa.pretrain) on COVID-QA (`--start-from`; benchmarks/READER_RESULTS.md): a reader that
# already extracts spans adapts with HappyTransformer's default step size instead of the fresh head's 2e-4.
ADAPT_ARGS: Dict[str, Any] = {'learning_rate': 5e-5}
PARAGRAPH_TRAIN = 'covid_qa_paragraphs/qa_train.json'
PARAGRAPH_DEV = 'covid_qa_paragraphs/qa_dev.json'
ARTICLE_TRAIN = 'covid_qa_deepset/covid-qa-train.json'
ARTICLE_DEV = 'covid_qa_deepset/covid-qa-dev.json'


def _norm_text(text: str) -> str:
    return re.sub(r'\s+', ' ', text).strip().lower()


@dataclass
class DefaultTrainingData:
    """The default reader's training records and what was held out to keep both dev sets clean.

    - ``paragraph_records``/``article_records``: kept paragraph-level and full-article training records;
    - ``excluded_*``: dropped because the question is a paragraph-dev or full-article-dev question, or (paragraph
      records) the paragraph comes from a full-article dev article.
    """

    records: List[QARecord]
    questions: int  # distinct training questions (normalised text) over both files
    paragraph_records: int
    article_records: int
    excluded_paragraph_in_article_dev: int
    excluded_article_in_paragraph_dev: int
    excluded_article_in_article_dev: int
    files: List[str]


def build_default_training_data(data_dir: Optional[PathLike] = None, include_articles: bool = True,
                                article_fraction: float = 1.0, seed: int = 42,
                                question_fraction: float = 1.0) -> DefaultTrainingData:
    """Training records for the default reader from ``data_dir`` (default :func:`default_data_dir`).

    Paragraph-level COVID-QA train (``covid_qa_paragraphs/qa_train.json``) plus, with ``include_articles``, the
    full-article train split (``covid_qa_deepset/covid-qa-train.json``; windows are cut at training time). Both
    come from the same source, so overlaps with the two dev sets are removed: full-article train questions that are
    paragraph-dev (or full-article dev) questions, and paragraph train records whose question is a full-article dev
    question or whose paragraph lies in a full-article dev article. ``article_fraction`` < 1 keeps a random share
    of the full-article records (to fit a time budget). ``question_fraction`` < 1 keeps a random share of the
    distinct training questions, with all their records from both files (for learning curves:
    ``benchmarks/learning_curve.py``).
    """
    for name, value in (('article_fraction', article_fraction), ('question_fraction', question_fraction)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f'{name} must be in (0, 1], got {value!r}')
    root = Path(data_dir) if data_dir else default_data_dir()
    needed = [PARAGRAPH_TRAIN, PARAGRAPH_DEV, ARTICLE_DEV] + ([ARTICLE_TRAIN] if include_articles else [])
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f'training data not found under {root.resolve()}: missing {missing}; set $COVIDQA_DATA or --data-dir'
        )
    paragraph_dev_q = {_norm_text(r.question) for r in read_qa_file(root / PARAGRAPH_DEV)}
    article_dev = read_qa_file(root / ARTICLE_DEV)
    article_dev_q = {_norm_text(r.question) for r in article_dev}
    dev_articles = list({_norm_text(r.context) for r in article_dev})

    def in_dev_article(paragraph: str) -> bool:
        text = _norm_text(paragraph)
        probes = [text[:150], text[len(text) // 2 : len(text) // 2 + 150], text[-150:]]
        return any(p and p in article for p in probes for article in dev_articles)

    paragraphs = []
    excluded_p = 0
    for r in read_qa_file(root / PARAGRAPH_TRAIN):
        if _norm_text(r.question) in article_dev_q or in_dev_article(r.context):
            excluded_p += 1
        else:
            paragraphs.append(r)
    articles = []
    excluded_a_pdev = excluded_a_adev = 0
    if include_articles:
        for r in read_qa_file(root / ARTICLE_TRAIN):
            q = _norm_text(r.question)
            if q in paragraph_dev_q:
                excluded_a_pdev += 1
            elif q in article_dev_q:
                excluded_a_adev += 1
            else:
                articles.append(r)
        if article_fraction < 1.0:
            rng = np.random.default_rng(seed)
            keep = sorted(rng.choice(len(articles), size=int(round(article_fraction * len(articles))),
                                     replace=False).tolist())
            articles = [articles[i] for i in keep]
    if question_fraction < 1.0:
        questions = sorted({_norm_text(r.question) for r in paragraphs + articles})
        order = np.random.default_rng(seed).permutation(len(questions))  # same seed: smaller shares are nested
        kept = {questions[i] for i in order[:max(1, int(round(question_fraction * len(questions))))]}
        paragraphs = [r for r in paragraphs if _norm_text(r.question) in kept]
        articles = [r for r in articles if _norm_text(r.question) in kept]
    files = [PARAGRAPH_TRAIN] + ([ARTICLE_TRAIN] if include_articles else [])
    return DefaultTrainingData(
        records=paragraphs + articles, questions=len({_norm_text(r.question) for r in paragraphs + articles}),
        paragraph_records=len(paragraphs), article_records=len(articles),
        excluded_paragraph_in_article_dev=excluded_p, excluded_article_in_paragraph_dev=excluded_a_pdev,
        excluded_article_in_article_dev=excluded_a_adev, files=files,
    )



def train_default_reader(output: Optional[PathLike] = None, force: bool = False, epochs: Optional[float] = None,
                         data_dir: Optional[PathLike] = None, max_minutes: Optional[float] = None,
                         args: Optional[Mapping[str, Any]] = None, include_articles: bool = True,
                         article_fraction: float = 1.0, question_fraction: float = 1.0,
                         start_from: Optional[PathLike] = None) -> Optional[TrainResult]:
    """Train the service's default reader (:data:`DEFAULT_READER_ARGS`) into ``output`` (default
    :func:`covidqa.paths.default_reader_dir`); does nothing and returns ``None`` when one exists and not ``force``.
    ``epochs`` overrides ``num_train_epochs``; ``max_minutes`` the time budget (``0``: none). ``start_from``: the
    model to fine-tune (default: the packaged MiniLM with a fresh span head); any other model gets :data:`ADAPT_ARGS`
    on top of the recipe (the shipped reader starts from stage 1, :mod:`covidqa.qa.pretrain`)."""
    target = Path(output) if output else default_reader_dir()
    if (target / 'config.json').is_file() and not force:
        print(f'reader already trained at {target} (use --force to retrain)')
        return None
    config = DEFAULT_READER_ARGS.to_dict()
    config['bf16'] = config['bf16'] and cpu_has_native_bf16()  # emulated bf16 is slower than fp32
    if start_from is not None and str(start_from) != 'base':
        config.update(ADAPT_ARGS)  # a pretrained reader takes smaller steps
    config.update(args or {})
    if epochs is not None:
        config['num_train_epochs'] = epochs
        if max_minutes is None:  # more epochs were asked for: do not cut them short
            config['max_train_seconds'] = None
    if max_minutes is not None:
        config['max_train_seconds'] = max_minutes * 60 if max_minutes > 0 else None
    config['output_dir'] = None
    train_args = QATrainArgs.from_any(config)
    data = build_default_training_data(data_dir, include_articles=include_articles,
                                       article_fraction=article_fraction, seed=train_args.seed,
                                       question_fraction=question_fraction)
    print(f'training the default reader into {target}: {data.paragraph_records} paragraph + {data.article_records} '
          f'full-article records (held out for clean dev sets: {data.excluded_paragraph_in_article_dev} paragraph, '
          f'{data.excluded_article_in_paragraph_dev + data.excluded_article_in_article_dev} article records)',
          flush=True)
    print(f'config: {json.dumps({k: v for k, v in train_args.to_dict().items() if v is not None})}', flush=True)
    import torch

    torch.manual_seed(train_args.seed)  # a fresh span head is drawn from torch's generator: reproducible runs
    qa = QuestionAnswering(start_from or BASE_MODEL_NAME)
    result = qa.train(data.records, train_args)
    qa.save(target, meta={'data': {k: v for k, v in dataclasses.asdict(data).items() if k != 'records'},
                          'start_from': str(start_from or BASE_MODEL_NAME)})
    print(f'trained in {result.seconds / 60:.1f} min: {result.steps} steps, {result.epochs:.2f} epochs, '
          f'loss {result.first_loss:.3f} -> {result.final_loss:.3f}'
          f'{" (stopped by the time budget)" if result.stopped_by_time else ""}; saved to {target}', flush=True)
    return result

