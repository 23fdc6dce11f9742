"""HappyTransformer-style extractive question answering: train, eval, test and answer with our own reader.

:class:`QuestionAnswering` wraps a BERT span model (``AutoModelForQuestionAnswering``): by default the reader
trained into :func:`covidqa.paths.default_reader_dir`, else the reader shipped in ``models/reader/``
(:mod:`covidqa.shipped`), else the packaged all-MiniLM-L6-v2 with a fresh span head.

Input files are HappyTransformer CSVs (``context, question, answer_text, answer_start``; test files only
``context, question``) or SQuAD JSON (nested or flat), read by :mod:`covidqa.qa_files`.

Training is a plain torch loop: contexts are cut into overlapping token windows (``doc_stride``) so that answers
deep in a long article are not lost to truncation; windows holding the answer are labelled with its token span,
up to ``negatives_per_question`` random windows without it are labelled ``[CLS]`` ("no answer here"); AdamW with
linear warmup and decay, gradient clipping, length-bucketed dynamically padded batches and a tqdm progress bar.
With ``max_train_seconds`` the schedule also runs on the clock (progress = max(step share, time share)) so training
ends on time with a fully decayed learning rate.

Example::

    qa = QuestionAnswering()                                   # trained reader, else the shipped one
    qa.train('train.csv', {'num_train_epochs': 2, 'learning_rate': 2e-4}, eval_filepath='dev.csv')
    print(qa.eval('dev.csv'))          # EvalResult(loss=1.9, exact_match=0.31, f1=0.62, count=191, ...)
    qa.test('test.csv')[0]             # QuestionAnsweringResult(answer='...', score=0.41, start=120, end=168)
    qa.answer_question('The virus spreads through droplets.', 'How does the virus spread?')
    qa.save('workspace/models/reader')

CLI::

    python -m covidqa.qa train TRAIN.csv [--eval DEV.csv] --output DIR [--args '{"num_train_epochs": 2}']
    python -m covidqa.qa eval DEV.csv [--model DIR]
    python -m covidqa.qa test TEST.csv [--model DIR] [--output predictions.csv]
    python -m covidqa.qa default [--force] [--epochs N] [--data-dir DIR]   # the service's default reader
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from covidqa.checkpoint import TrainingCheckpoint, TrainingState
from covidqa.models import BASE_MODEL_NAME, atomic_save_pretrained, load_qa_model, load_tokenizer
from covidqa.paths import PathLike, default_reader_dir
from covidqa.paths import data_dir as default_data_dir
from covidqa.qa_files import QADataError, QARecord, read_qa_file
from covidqa.question_match import QUESTION_WORD_TYPE, add_question_word_type, uses_question_word_type
from covidqa.reader import (
    DEFAULT_LEXICAL_WEIGHT,
    DEFAULT_MAX_ANSWER_LENGTH,
    ExtractiveReader,
    QAWindows,
    TorchQARunner,
    encode_pairs,
    label_windows,
    resolve_reader_model,
)
from covidqa.shipped import ShippedReaderError
from covidqa.squad_metrics import exact_match, f1_score
from covidqa.tokenization import pad_batch

__all__ = [
    'QATrainArgs',
    'QATrainArgsError',
    'EvalResult',
    'TrainResult',
    'QuestionAnsweringResult',
    'QuestionAnswering',
    'DefaultTrainingData',
    'build_default_training_data',
    'DEFAULT_READER_ARGS',
    'TRAINING_META_FILE',
]

logger = logging.getLogger(__name__)
TRAINING_META_FILE = 'reader_training.json'
InputFiles = Union[PathLike, Sequence[PathLike], Sequence[QARecord]]


# ---------------------------------------------------------------------------------------------------------- args
class QATrainArgsError(ValueError):
    """Bad training arguments; the message names the key."""


@dataclass
class QATrainArgs:
    """Training arguments: HappyTransformer's ``QATrainArgs`` keys and defaults, plus the reader's own.

    HappyTransformer keys: ``learning_rate``, ``weight_decay``, ``adam_beta1``, ``adam_beta2``, ``adam_epsilon``,
    ``max_grad_norm``, ``num_train_epochs`` (a float: 1.5 = one and a half passes).

    Our keys:

    - ``batch_size``: windows per optimiser step;
    - ``max_seq_length``/``doc_stride``/``max_query_length``: training windows (tokens; stride = overlap);
    - ``negatives_per_question``: windows without the answer kept per question (labelled ``[CLS]``);
    - ``warmup_ratio``: share of the steps with a linearly rising learning rate (then linear decay to 0);
    - ``seed``; ``bf16``: bfloat16 autocast on CPU (faster on CPUs with AVX512-BF16/AMX);
    - ``max_train_seconds``: time budget; the schedule follows the clock and training stops on time;
    - ``budget_clock``: ``'wall'`` (default) or ``'cpu'`` (process CPU seconds / torch threads: the wall time the
      same work takes on an otherwise idle machine; for reproducible budgets on a shared CPU);
    - ``max_positives_per_question``: windows holding the answer kept per question (0 = all of them; a long
      article with a large ``doc_stride`` has several);
    - ``freeze_layers``: keep the embeddings and the lowest N transformer layers fixed (0 = train everything):
      no backward pass through them, so each step is cheaper;
    - ``freeze_word_embeddings``: keep the word-embedding table (half of MiniLM's 22.7M parameters) fixed: no dense
      30522x384 gradient and optimiser update per step (~15% faster steps); position/type embeddings still train;
    - ``head_learning_rate_scale``: the fresh span head learns at ``learning_rate`` times this;
    - ``inside_loss_weight``: weight of an auxiliary per-token "inside the answer" loss
      (:class:`covidqa.losses.span_inside.SpanInsideLoss`, training only; 0 = off);
    - ``question_word_type``: give context tokens that repeat a question word their own token type (a third row
      in the token-type embeddings, trained even when the embeddings are frozen; :mod:`covidqa.question_match`);
      the saved model keeps ``type_vocab_size=3`` and readers mark question words for it from then on;
    - ``hard_negatives``: with the question-word type, the windows without the answer kept per question are the
      ones repeating the most question words (not random ones);
    - ``shared_norm_weight``: weight of a loss normalising start/end logits over all windows of the same question
      together (:class:`covidqa.losses.shared_norm.SharedNormLoss`; a question's windows then share a batch), so
      that spans compare across the windows of a long context; 0 = off;
    - ``output_dir``: where :meth:`QuestionAnswering.train` saves the model when done (atomically; None: no save);
    - ``checkpoint_dir``: save a resumable checkpoint there every ``checkpoint_minutes`` (and when stopped by
      Ctrl-C); training with a checkpoint there continues from it: the same batches, learning-rate schedule and
      time budget as if it had never stopped (:mod:`covidqa.checkpoint`; None: no checkpoints).

    Example: ``QATrainArgs.from_any({'num_train_epochs': 2, 'learning_rate': 2e-4})``
    """

    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    num_train_epochs: float = 3.0
    batch_size: int = 16
    max_seq_length: int = 256
    doc_stride: int = 128
    max_query_length: int = 64
    negatives_per_question: int = 1
    warmup_ratio: float = 0.1
    seed: int = 42
    bf16: bool = False
    max_train_seconds: Optional[float] = None
    budget_clock: str = 'wall'
    max_positives_per_question: int = 0
    freeze_layers: int = 0
    freeze_word_embeddings: bool = False
    head_learning_rate_scale: float = 1.0
    inside_loss_weight: float = 0.0
    question_word_type: bool = False
    hard_negatives: bool = False
    shared_norm_weight: float = 0.0
    output_dir: Optional[str] = None
    checkpoint_dir: Optional[str] = None
    checkpoint_minutes: float = 5.0

    # (key, minimum, maximum, minimum inclusive)
    _RANGES = {
        'learning_rate': (0.0, 1.0, False),
        'weight_decay': (0.0, 1.0, True),
        'adam_beta1': (0.0, 1.0, True),
        'adam_beta2': (0.0, 1.0, True),
        'adam_epsilon': (0.0, 1.0, False),
        'max_grad_norm': (0.0, 1e6, False),
        'num_train_epochs': (0.0, 1e4, False),
        'batch_size': (1, 4096, True),
        'max_seq_length': (32, 512, True),
        'doc_stride': (0, 512, True),
        'max_query_length': (4, 512, True),
        'negatives_per_question': (0, 10_000, True),
        'warmup_ratio': (0.0, 1.0, True),
        'seed': (0, 2**32 - 1, True),
        'max_train_seconds': (0.0, 1e7, False),
        'max_positives_per_question': (0, 10_000, True),
        'freeze_layers': (0, 48, True),
        'head_learning_rate_scale': (0.0, 1e4, False),
        'inside_loss_weight': (0.0, 1e4, True),
        'shared_norm_weight': (0.0, 1e4, True),
        'checkpoint_minutes': (0.0, 1e5, False),
    }

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_KINDS[f.name]
            if value is None and f.name in ('max_train_seconds', 'output_dir', 'checkpoint_dir'):
                continue
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise QATrainArgsError(f'training argument {f.name!r} must be a number, got {value!r}')
                value = float(value)
            elif kind is int:
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if isinstance(value, bool) or not isinstance(value, int):
                    raise QATrainArgsError(f'training argument {f.name!r} must be an integer, got {value!r}')
            elif kind is bool:
                if not isinstance(value, bool):
                    raise QATrainArgsError(f'training argument {f.name!r} must be true or false, got {value!r}')
            elif kind is str:
                if f.name == 'budget_clock' and isinstance(value, str):
                    pass
                elif not isinstance(value, (str, os.PathLike)):
                    raise QATrainArgsError(f'training argument {f.name!r} must be a path string, got {value!r}')
                value = str(value)
            if f.name in self._RANGES:
                low, high, inclusive = self._RANGES[f.name]
                if value > high or value < low or (not inclusive and value == low):
                    op = '>=' if inclusive else '>'
                    raise QATrainArgsError(
                        f'training argument {f.name!r} must be {op} {low} and <= {high}, got {value!r}'
                    )
            setattr(self, f.name, value)
        if self.budget_clock not in ('wall', 'cpu'):
            raise QATrainArgsError(f"training argument 'budget_clock' must be 'wall' or 'cpu', got {self.budget_clock!r}")
        if self.adam_beta1 >= 1.0 or self.adam_beta2 >= 1.0:
            raise QATrainArgsError('training arguments adam_beta1/adam_beta2 must be < 1')
        if self.checkpoint_dir and self.inside_loss_weight > 0:
            raise QATrainArgsError('training argument checkpoint_dir cannot be combined with inside_loss_weight > 0 '
                                   '(the auxiliary loss head is not checkpointed)')
        if self.max_query_length + 8 >= self.max_seq_length:
            raise QATrainArgsError(
                f'training argument max_seq_length={self.max_seq_length} leaves no room for a context after '
                f'max_query_length={self.max_query_length}'
            )

    @classmethod
    def from_any(cls, args: Union[None, 'QATrainArgs', Mapping[str, Any]]) -> 'QATrainArgs':
        """``None`` -> defaults; a ``QATrainArgs`` as is; a dict -> checked (unknown keys raise, naming them)."""
        if args is None:
            return cls()
        if isinstance(args, cls):
            return dataclasses.replace(args)  # re-validates
        if not isinstance(args, Mapping):
            raise QATrainArgsError(f'training args must be a dict or QATrainArgs, got {type(args).__name__}')
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in args if k not in known)
        if unknown:
            raise QATrainArgsError(f'unknown training argument(s) {unknown}; known: {known}')
        return cls(**dict(args))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_FIELD_KINDS = {
    'learning_rate': float, 'weight_decay': float, 'adam_beta1': float, 'adam_beta2': float, 'adam_epsilon': float,
    'max_grad_norm': float, 'num_train_epochs': float, 'batch_size': int, 'max_seq_length': int, 'doc_stride': int,
    'max_query_length': int, 'negatives_per_question': int, 'warmup_ratio': float, 'seed': int, 'bf16': bool,
    'max_train_seconds': float, 'output_dir': str, 'budget_clock': str,
    'max_positives_per_question': int, 'freeze_layers': int, 'freeze_word_embeddings': bool,
    'head_learning_rate_scale': float, 'inside_loss_weight': float, 'question_word_type': bool,
    'hard_negatives': bool, 'shared_norm_weight': float, 'checkpoint_dir': str, 'checkpoint_minutes': float,
}


# ------------------------------------------------------------------------------------------------------ results
@dataclass
class EvalResult:
    """Evaluation of a labelled file: mean window loss (start/end cross-entropy, windows without the answer
    labelled ``[CLS]``), SQuAD exact match and F1 (fractions in [0, 1], max over gold answers) of the top answer."""

    loss: float
    exact_match: float
    f1: float
    count: int = 0
    windows: int = 0
    seconds: float = 0.0


@dataclass
class QuestionAnsweringResult:
    """One answer: ``context[start:end] == answer`` (character offsets); ``score`` is a probability in [0, 1]."""

    answer: str
    score: float
    start: int
    end: int


@dataclass
class TrainResult:
    """What :meth:`QuestionAnswering.train` did: data (records, skipped records, windows kept), optimisation
    (steps, epochs completed, wall seconds, the loop's CPU seconds / threads (its wall time on an idle machine), mean loss of the first and last quarter of the steps, at most 20 each) and the optional evaluation."""

    records: int
    skipped_records: int
    windows: int
    positive_windows: int
    negative_windows: int
    steps: int
    epochs: float
    seconds: float
    first_loss: float
    final_loss: float
    stopped_by_time: bool = False
    cpu_equivalent_seconds: float = 0.0
    loss_history: List[float] = field(default_factory=list)
    eval: Optional[EvalResult] = None


# ------------------------------------------------------------------------------------------------- data helpers
def _load_records(inputs: InputFiles, require_answers: bool) -> List[QARecord]:
    if isinstance(inputs, (str, os.PathLike)):
        return list(read_qa_file(inputs, require_answers=require_answers))
    inputs = list(inputs)
    if not inputs:
        raise QADataError('no training/eval input given (empty list)')
    if all(isinstance(x, QARecord) for x in inputs):
        if require_answers:
            for r in inputs:
                if r.answer_text is None:
                    raise QADataError(f'record {r.id!r} (row {r.source_row}) has no answer')
        return inputs
    records: List[QARecord] = []
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise QADataError(f'inputs must be file paths or QARecord objects, got {type(item).__name__}')
        records.extend(read_qa_file(item, require_answers=require_answers))
    return records


def _char_span(record: QARecord) -> Optional[Tuple[int, int]]:
    if not record.answer_text:
        return None
    return record.answer_start, record.answer_start + len(record.answer_text)


def build_training_windows(tokenizer, records: Sequence[QARecord], args: QATrainArgs, rng: np.random.Generator,
                           mark_question_words: bool = False):
    """Labelled training windows for ``records``: all windows holding the answer, plus up to
    ``args.negatives_per_question`` random windows without it (for a "no answer" record: that many windows, at
    least one). Returns ``(QAWindows, starts, ends, skipped_records)``; a record whose answer fits in no window
    (longer than a window) is skipped."""
    keep_ids, keep_tt, keep_off, keep_mask, keep_pair = [], [], [], [], []
    all_starts, all_ends = [], []
    skipped = 0
    chunk = 64
    for begin in range(0, len(records), chunk):
        part = records[begin : begin + chunk]
        windows = encode_pairs(tokenizer, [r.question for r in part], [r.context for r in part],
                               args.max_seq_length, args.doc_stride, args.max_query_length,
                               mark_question_words=mark_question_words)
        starts, ends = label_windows(windows, [_char_span(r) for r in part])
        by_pair: Dict[int, List[int]] = {}
        for w, p in enumerate(windows.pair):
            by_pair.setdefault(int(p), []).append(w)
        for p, ws in sorted(by_pair.items()):
            positives = [w for w in ws if starts[w] > 0]
            negatives = [w for w in ws if starts[w] == 0]
            if _char_span(part[p]) is not None and not positives:
                skipped += 1
                continue
            if args.max_positives_per_question and len(positives) > args.max_positives_per_question:
                positives = sorted(rng.choice(positives, size=args.max_positives_per_question, replace=False).tolist())
            n_neg = args.negatives_per_question if positives else max(1, args.negatives_per_question)
            if len(negatives) > n_neg and args.hard_negatives:
                # the windows without the answer that repeat the most question words: the ones a reader confuses
                overlap = [int((windows.token_type_ids[w] == QUESTION_WORD_TYPE).sum()) for w in negatives]
                order = sorted(range(len(negatives)), key=lambda i: (-overlap[i], rng.random()))
                negatives = sorted(negatives[i] for i in order[:n_neg])
            elif len(negatives) > n_neg:
                negatives = sorted(rng.choice(negatives, size=n_neg, replace=False).tolist())
            for w in positives + negatives:
                keep_ids.append(windows.input_ids[w])
                keep_tt.append(windows.token_type_ids[w])
                keep_off.append(windows.offsets[w])
                keep_mask.append(windows.context_mask[w])
                keep_pair.append(begin + p)
                all_starts.append(starts[w])
                all_ends.append(ends[w])
    kept = QAWindows(keep_ids, keep_tt, keep_off, keep_mask, np.asarray(keep_pair, dtype=np.int64))
    return kept, np.asarray(all_starts, dtype=np.int64), np.asarray(all_ends, dtype=np.int64), skipped


def _set_trainable(model, freeze_layers: int, freeze_word_embeddings: bool) -> None:
    """Train every parameter except the embeddings and the lowest ``freeze_layers`` encoder layers (0: none) and,
    with ``freeze_word_embeddings``, the word-embedding table (``requires_grad``). The token-type embeddings of a
    model with the question-word type always train: its new row starts as a copy and has to learn."""
    frozen = []
    if freeze_layers:
        base = getattr(model, model.base_model_prefix)
        blocks = base.encoder.layer
        if freeze_layers > len(blocks):
            raise QATrainArgsError(
                f'training argument freeze_layers={freeze_layers} exceeds the model\'s {len(blocks)} layers')
        frozen = [base.embeddings, *blocks[:freeze_layers]]
    if freeze_word_embeddings:
        frozen.append(model.get_input_embeddings())
    for p in model.parameters():
        p.requires_grad_(True)
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    if uses_question_word_type(model):
        getattr(model, model.base_model_prefix).embeddings.token_type_embeddings.weight.requires_grad_(True)


def _span_head_parameter_names(model) -> set:
    """Names of the parameters outside the base encoder (the span head of ``AutoModelForQuestionAnswering``)."""
    prefix = model.base_model_prefix + '.'
    return {n for n, _ in model.named_parameters() if not n.startswith(prefix)}


def _bucketed_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                      groups: Optional[Sequence[int]] = None) -> List[List[int]]:
    """Shuffled batches of similar lengths: shuffle, sort within chunks of 50 batches, cut, shuffle batches.

    With ``groups`` (the same value for windows of one question) a group's windows stay in one batch: groups are
    shuffled, sorted by their longest window within chunks, and packed whole into batches of at most ``batch_size``
    windows (a group larger than that is a batch of its own). Without, every window is a group of its own."""
    members: Dict[int, List[int]] = {}
    for i, g in enumerate(range(len(lengths)) if groups is None else groups):
        members.setdefault(int(g), []).append(i)
    units = [members[g] for g in rng.permutation(sorted(members)).tolist()]
    chunk = batch_size * 50
    batches: List[List[int]] = []
    for c in range(0, len(units), chunk):
        current: List[int] = []
        for unit in sorted(units[c : c + chunk], key=lambda u: max(lengths[i] for i in u)):
            if current and len(current) + len(unit) > batch_size:
                batches.append(current)
                current = []
            current = current + unit
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


PAD_TO_MULTIPLE = 32


def _padded_batch(windows: QAWindows, batch: Sequence[int], pad_id: int):
    """``(input_ids, attention_mask, token_type_ids)`` padded to a multiple of 32 tokens: few distinct shapes keep
    oneDNN from compiling (and caching) kernels for every sequence length, which costs time and memory in bf16."""
    input_ids, attention_mask = pad_batch([windows.input_ids[i] for i in batch], pad_id=pad_id)
    token_type_ids, _ = pad_batch([windows.token_type_ids[i] for i in batch], pad_id=0)
    extra = -input_ids.shape[1] % PAD_TO_MULTIPLE
    if extra:
        widths = ((0, 0), (0, extra))
        input_ids = np.pad(input_ids, widths, constant_values=pad_id)
        attention_mask = np.pad(attention_mask, widths)
        token_type_ids = np.pad(token_type_ids, widths)
    return input_ids, attention_mask, token_type_ids


def _padded_mask(windows: QAWindows, batch: Sequence[int], width: int) -> np.ndarray:
    """The context masks of ``batch`` padded with False to ``width`` tokens (the width of :func:`_padded_batch`)."""
    mask, _ = pad_batch([windows.context_mask[i] for i in batch], pad_id=0)
    return np.pad(mask, ((0, 0), (0, width - mask.shape[1]))).astype(bool)


def _cross_entropy(logits: np.ndarray, label: int) -> float:
    x = logits.astype(np.float64)
    m = x.max()
    return float(m + np.log(np.exp(x - m).sum()) - x[label])


# ---------------------------------------------------------------------------------------------------- main class
class QuestionAnswering:
    """HappyTransformer-style QA model: :meth:`train`, :meth:`eval`, :meth:`test`, :meth:`answer_question`,
    :meth:`save`.

    :param model: a model directory, ``'base'`` (packaged all-MiniLM-L6-v2 + fresh span head) or ``None`` (the
        trained default reader when present, else base with a warning).
    :param max_seq_length: inference window length in tokens (eval/test/answer_question).
    :param doc_stride: inference window overlap in tokens.
    :param max_answer_length: longest answer in tokens.
    :param batch_size: inference windows per forward pass.
    :param num_threads: torch intra-op threads (None: torch's default).
    :param lexical_weight: the reader's lexical sentence prior (:mod:`covidqa.lexical`; 0 = the model alone).
    """

    def __init__(
        self,
        model: Optional[PathLike] = None,
        max_seq_length: int = 384,
        doc_stride: int = 128,
        max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
        batch_size: int = 32,
        num_threads: Optional[int] = None,
        lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
    ):
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        self.model_path = resolve_reader_model(model)
        self.tokenizer = load_tokenizer(self.model_path)
        self.model = load_qa_model(self.model_path)
        self.last_train: Optional[TrainResult] = None
        self.last_train_args: Optional[QATrainArgs] = None
        self._reader = ExtractiveReader(
            model=self.model_path, runner=TorchQARunner(self.model), max_seq_length=max_seq_length,
            doc_stride=doc_stride, max_answer_length=max_answer_length, top_k=1, no_answer_threshold=0.0,
            batch_size=batch_size, lexical_weight=lexical_weight,
        )

    @property
    def reader(self) -> ExtractiveReader:
        """The :class:`ExtractiveReader` over the in-memory model (always answers: threshold 0)."""
        return self._reader

    # ------------------------------------------------------------------------------------------------ training
    def train(self, input_filepath: InputFiles, args: Union[None, QATrainArgs, Mapping[str, Any]] = None,
              eval_filepath: Optional[InputFiles] = None) -> TrainResult:
        """Fine-tune the span model in place on a labelled CSV / SQuAD JSON file (or several, or QARecords).

        :param input_filepath: training data (every record needs an answer).
        :param args: ``QATrainArgs`` or a dict of its keys (unknown keys / wrong types raise
            :class:`QATrainArgsError` naming the key).
        :param eval_filepath: optional labelled data evaluated after training (see :meth:`eval`).
        :returns: :class:`TrainResult`. With ``args.output_dir`` the model is also saved there atomically.

        Example: ``qa.train('train.csv', {'num_train_epochs': 1})``
        """
        import torch
        from tqdm.auto import tqdm

        args = QATrainArgs.from_any(args)
        if args.question_word_type:
            add_question_word_type(self.model)
        mark_question_words = uses_question_word_type(self.model)
        if args.hard_negatives and not mark_question_words:
            raise QATrainArgsError("training argument 'hard_negatives' needs question-word token types: set "
                                   "'question_word_type': true (or train a reader that has them)")
        records = _load_records(input_filepath, require_answers=True)
        if not records:
            raise QADataError(f'{input_filepath}: no training records')
        rng = np.random.default_rng(args.seed)
        torch.manual_seed(args.seed)
        started = time.perf_counter()

        windows, starts, ends, skipped = build_training_windows(self.tokenizer, records, args, rng,
                                                                mark_question_words)
        if len(windows) == 0:
            raise QADataError('no training windows: every answer is longer than a window; raise max_seq_length')
        if skipped:
            logger.warning('%d training record(s) skipped: answer longer than a %d-token window',
                           skipped, args.max_seq_length)
        lengths = [len(x) for x in windows.input_ids]
        # shared normalisation needs each question's windows in one batch
        batch_groups = windows.pair if args.shared_norm_weight > 0 else None
        steps_per_epoch = math.ceil(len(windows) / args.batch_size)
        total_steps = max(1, math.ceil(args.num_train_epochs * steps_per_epoch))
        warmup = args.warmup_ratio

        model = self.model
        _set_trainable(model, args.freeze_layers, args.freeze_word_embeddings)
        no_decay = ('bias', 'LayerNorm.weight', 'layer_norm.weight')
        head = _span_head_parameter_names(model)
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = []
        for in_head, scale in ((False, 1.0), (True, args.head_learning_rate_scale)):
            for decay in (True, False):
                chosen = [p for n, p in params
                          if (n in head) == in_head and any(k in n for k in no_decay) != decay]
                if chosen:
                    groups.append({'params': chosen, 'weight_decay': args.weight_decay if decay else 0.0,
                                   'lr_scale': scale})
        inside_loss = None
        if args.inside_loss_weight > 0:
            from covidqa.losses.span_inside import SpanInsideLoss

            inside_loss = SpanInsideLoss(model.config.hidden_size)
            groups.append({'params': list(inside_loss.parameters()), 'weight_decay': 0.0,
                           'lr_scale': args.head_learning_rate_scale})
        shared_norm = None
        if args.shared_norm_weight > 0:
            from covidqa.losses.shared_norm import SharedNormLoss

            shared_norm = SharedNormLoss()
        optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                      eps=args.adam_epsilon)
        pad_id = int(self.tokenizer.pad_token_id or 0)

        def lr_at(progress: float) -> float:
            if warmup > 0 and progress < warmup:
                return args.learning_rate * progress / warmup
            return args.learning_rate * max(0.0, 1.0 - progress) / max(1e-9, 1.0 - warmup)

        losses: List[float] = []
        history: List[float] = []
        stopped_by_time = False
        step = 0
        threads = max(1, torch.get_num_threads())

        def clock() -> float:
            return time.process_time() / threads if args.budget_clock == 'cpu' else time.perf_counter()

        checkpoint = TrainingCheckpoint(args.checkpoint_dir) if args.checkpoint_dir else None
        fingerprint = {**args.to_dict(), 'windows': len(windows), 'records': len(records),
                       'start_model': str(self.model_path)}
        resumed = checkpoint.load(fingerprint) if checkpoint else None
        loop_start = clock()
        if resumed is not None:
            model.load_state_dict(resumed.model)
            optimizer.load_state_dict(resumed.optimizer)
            torch.set_rng_state(resumed.torch_rng)
            step, losses, history = resumed.step, list(resumed.losses), list(resumed.history)
            loop_start -= resumed.elapsed  # the time budget goes on from where it stopped
            logger.info('resuming from %s at step %d of %d', checkpoint.path, step, total_steps)

        def save_checkpoint() -> None:
            checkpoint.save(TrainingState(
                step=step, elapsed=clock() - loop_start, model=model.state_dict(),
                optimizer=optimizer.state_dict(), torch_rng=torch.get_rng_state(), losses=losses, history=history,
            ), fingerprint)

        last_saved = time.perf_counter()
        cpu_start = time.process_time()
        model.train()
        bar = tqdm(total=total_steps, initial=step, desc='train reader', unit='step', mininterval=5.0,
                   file=sys.stderr)
        at_step_boundary = True
        replayed = 0  # batches of the schedule seen so far: on resume the first `step` are skipped, not trained
        try:
            while step < total_steps:
                for batch in _bucketed_batches(lengths, args.batch_size, rng, batch_groups):
                    if step >= total_steps:
                        break
                    replayed += 1
                    if replayed <= step:
                        continue
                    progress = step / total_steps
                    if args.max_train_seconds:
                        progress = max(progress, (clock() - loop_start) / args.max_train_seconds)
                        if progress >= 1.0:
                            stopped_by_time = True
                            break
                    for group in optimizer.param_groups:
                        group['lr'] = lr_at(progress + 0.5 / total_steps) * group['lr_scale']
                    input_ids, attention_mask, token_type_ids = _padded_batch(windows, batch, pad_id)
                    batch_starts, batch_ends = torch.from_numpy(starts[batch]), torch.from_numpy(ends[batch])
                    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.bf16):
                        out = model(
                            input_ids=torch.from_numpy(input_ids),
                            attention_mask=torch.from_numpy(attention_mask),
                            token_type_ids=torch.from_numpy(token_type_ids),
                            start_positions=batch_starts, end_positions=batch_ends,
                            output_hidden_states=inside_loss is not None,
                        )
                        loss = out.loss.float()
                        if inside_loss is not None or shared_norm is not None:
                            context_mask = torch.from_numpy(_padded_mask(windows, batch, input_ids.shape[1]))
                        if inside_loss is not None:
                            loss = loss + args.inside_loss_weight * inside_loss(
                                out.hidden_states[-1], context_mask, batch_starts, batch_ends)
                        if shared_norm is not None:
                            loss = loss + args.shared_norm_weight * shared_norm(
                                out.start_logits, out.end_logits, context_mask, batch_starts, batch_ends,
                                torch.from_numpy(windows.pair[batch]))
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f'training loss became {loss.item()} at step {step}; '
                                                 f'lower learning_rate (now {args.learning_rate})')
                    loss.backward()
                    if args.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    at_step_boundary = False  # weights, optimiser and `step` disagree until `step += 1`
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    losses.append(float(loss.item()))
                    step += 1
                    at_step_boundary = True
                    bar.update(1)
                    if step % 10 == 0 or step == total_steps:
                        recent = float(np.mean(losses[-10:]))
                        history.append(recent)
                        bar.set_postfix(loss=f'{recent:.3f}', lr=f'{optimizer.param_groups[0]["lr"]:.2e}')
                    if checkpoint and time.perf_counter() - last_saved >= args.checkpoint_minutes * 60:
                        save_checkpoint()
                        last_saved = time.perf_counter()
                if stopped_by_time:
                    break
            if checkpoint:
                save_checkpoint()  # a finished run: running it again trains nothing more
        except KeyboardInterrupt:
            if checkpoint and at_step_boundary:
                save_checkpoint()
                logger.warning('stopped at step %d of %d; checkpoint saved to %s: run again to resume',
                               step, total_steps, checkpoint.path)
            elif checkpoint:  # stopped inside an optimiser step: the last periodic checkpoint is the consistent one
                logger.warning('stopped inside step %d of %d; run again to resume from the last checkpoint in %s',
                               step + 1, total_steps, checkpoint.path)
            raise
        finally:
            bar.close()
            model.eval()
        if stopped_by_time:
            logger.warning('training stopped by max_train_seconds=%s after %d of %d steps',
                           args.max_train_seconds, step, total_steps)
        edge = max(1, min(20, len(losses) // 4))
        result = TrainResult(
            records=len(records) - skipped, skipped_records=skipped, windows=len(windows),
            positive_windows=int((starts > 0).sum()), negative_windows=int((starts == 0).sum()),
            steps=step, epochs=step / steps_per_epoch, seconds=time.perf_counter() - started,
            first_loss=float(np.mean(losses[:edge])) if losses else float('nan'),
            final_loss=float(np.mean(losses[-edge:])) if losses else float('nan'),
            stopped_by_time=stopped_by_time, loss_history=history,
            cpu_equivalent_seconds=(time.process_time() - cpu_start) / threads,
        )
        self.last_train, self.last_train_args = result, args
        if eval_filepath is not None:
            result.eval = self.eval(eval_filepath)
        if args.output_dir:
            self.save(args.output_dir)
        return result

    # ------------------------------------------------------------------------------------------------- evaluation
    def _predict(self, records: Sequence[QARecord], top_k: int = 1):
        return self._reader.read_many_detailed(
            [r.question for r in records], [[r.context] for r in records], top_k=top_k, no_answer_threshold=0.0)

    def eval(self, input_filepath: InputFiles) -> EvalResult:
        """Loss, SQuAD exact match and F1 of the top answer on a labelled CSV / SQuAD JSON file.

        Long contexts are windowed (``max_seq_length``/``doc_stride`` of this object) and the best span over all
        windows is the prediction. Returns :class:`EvalResult`.

        Example: ``qa.eval('dev.csv').f1`` -> ``0.71``
        """
        records = _load_records(input_filepath, require_answers=True)
        if not records:
            raise QADataError(f'{input_filepath}: no records to evaluate')
        started = time.perf_counter()
        details = self._predict(records)
        starts, ends = label_windows(details.windows, [_char_span(r) for r in records])
        total = 0.0
        for w, (s_logits, e_logits) in enumerate(details.logits):
            total += 0.5 * (_cross_entropy(s_logits, int(starts[w])) + _cross_entropy(e_logits, int(ends[w])))
        em = f1 = 0.0
        for record, answers in zip(records, details.answers):
            prediction = answers[0].answer
            gold = list(record.gold_answers) or [record.answer_text]
            em += exact_match(prediction, gold)
            f1 += f1_score(prediction, gold)
        n = len(records)
        return EvalResult(loss=total / max(1, len(details.windows)), exact_match=em / n, f1=f1 / n, count=n,
                          windows=len(details.windows), seconds=time.perf_counter() - started)

    def test(self, input_filepath: InputFiles) -> List[QuestionAnsweringResult]:
        """The best answer for every record of a CSV / SQuAD JSON file (answers not needed), in file order.

        Example: ``[r.answer for r in qa.test('test.csv')]``
        """
        records = _load_records(input_filepath, require_answers=False)
        if not records:
            return []
        details = self._predict(records)
        return [QuestionAnsweringResult(a[0].answer, a[0].score, a[0].start, a[0].end) for a in details.answers]

    def answer_question(self, context: str, question: str, top_k: int = 1) -> List[QuestionAnsweringResult]:
        """The ``top_k`` best answers to ``question`` in ``context`` (any length), best first.

        Example: ``qa.answer_question('Masks reduce spread.', 'What reduces spread?')[0].answer`` -> ``'Masks'``
        """
        if not isinstance(context, str) or not context.strip():
            raise ValueError('context must be a non-empty string')
        answers = self._reader.read(question, [context], top_k=top_k, no_answer_threshold=0.0)
        return [QuestionAnsweringResult(a.answer, a.score, a.start, a.end) for a in answers]

    # ------------------------------------------------------------------------------------------------------- save
    def save(self, path: PathLike, meta: Optional[Mapping[str, Any]] = None) -> Path:
        """Save model + tokenizer (save_pretrained format) to ``path`` atomically; a crash mid-save never
        leaves a broken model there. Training arguments and results go to ``reader_training.json``."""
        info: Dict[str, Any] = {'base_model': str(self.model_path), 'saved_at': time.strftime('%Y-%m-%dT%H:%M:%S')}
        if self.last_train_args is not None:
            info['args'] = self.last_train_args.to_dict()
        if self.last_train is not None:
            info['train'] = dataclasses.asdict(self.last_train)
        info.update(meta or {})
        return atomic_save_pretrained(self.model, self.tokenizer, path,
                                      {TRAINING_META_FILE: json.dumps(info, indent=2, default=str)})


# ------------------------------------------------------------------------------------------- the default reader
# The configuration of `python -m covidqa.qa default` (chosen in benchmarks/READER_RESULTS.md).
DEFAULT_READER_ARGS = QATrainArgs(
    learning_rate=2e-4,
    weight_decay=0.01,
    # 2 epochs planned; on 2 idle cores (bf16) the 9-minute guard ends it after ~1.25-1.5
    num_train_epochs=2.0,
    batch_size=4,  # small batches win at this budget: more updates for the same windows (benchmarks/READER_RESULTS.md)
    max_seq_length=256,
    doc_stride=128,
    negatives_per_question=1,  # 2 was much worse on both dev sets (run eM)
    max_positives_per_question=1,
    warmup_ratio=0.1,
    bf16=True,  # autocast; train_default_reader turns it off on CPUs without native bf16 (emulated bf16 is slower)
    freeze_layers=2,  # embeddings + 2 lowest layers fixed: with bf16 1.7x the steps/s of fp32, +3.6 F1 (runs eP, eR)
    question_word_type=True,  # context tokens repeating a question word get type 2: full-article F1 +10 (eV, eW)
    # one softmax over a question's windows on top of the per-window loss: seed 42, same day, paragraph F1
    # 0.512 -> 0.549, all 159 full-article dev questions 0.335 -> 0.383 (eAD -> eAB)
    shared_norm_weight=1.0,
    seed=42,
    max_train_seconds=540.0,  # guard: stop after 9 minutes; the learning-rate schedule follows the clock
)
# Stage 2 of the shipped reader's recipe: what changes in DEFAULT_READER_ARGS when fine-tuning the SQuAD-trained
# reader of stage 1 (covidqa.pretrain) on COVID-QA (`--start-from`; benchmarks/READER_RESULTS.md): a reader that
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


# ----------------------------------------------------------------------------------------------------------- CLI
def _json_arg(text: Optional[str]) -> Dict[str, Any]:
    if not text:
        return {}
    path = Path(text)
    raw = path.read_text() if text.strip()[:1] != '{' and path.is_file() else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise QATrainArgsError(f'--args is not a JSON object ({error}): {text[:80]!r}') from None
    if not isinstance(value, dict):
        raise QATrainArgsError(f'--args must be a JSON object, got {type(value).__name__}')
    return value


def _print_json(obj) -> None:
    print(json.dumps(dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj, indent=2, default=str))


def _cmd_train(ns) -> int:
    args = _json_arg(ns.args)
    if ns.epochs is not None:
        args['num_train_epochs'] = ns.epochs
    if ns.learning_rate is not None:
        args['learning_rate'] = ns.learning_rate
    args['output_dir'] = ns.output
    qa = QuestionAnswering(ns.model)
    result = qa.train(ns.files if len(ns.files) > 1 else ns.files[0], args, eval_filepath=ns.eval)
    result.loss_history = []
    _print_json(result)
    print(f'saved to {Path(ns.output).resolve()}')
    return 0


def _cmd_eval(ns) -> int:
    _print_json(QuestionAnswering(ns.model, max_seq_length=ns.max_seq_length, doc_stride=ns.doc_stride).eval(ns.file))
    return 0


def _cmd_test(ns) -> int:
    results = QuestionAnswering(ns.model, max_seq_length=ns.max_seq_length, doc_stride=ns.doc_stride).test(ns.file)
    if ns.output:
        import csv

        with open(ns.output, 'w', newline='', encoding='utf-8') as handle:
            writer = csv.writer(handle)
            writer.writerow(['answer', 'score', 'start', 'end'])
            for r in results:
                writer.writerow([r.answer, f'{r.score:.6f}', r.start, r.end])
        print(f'{len(results)} answers written to {ns.output}')
    else:
        for r in results:
            print(json.dumps(dataclasses.asdict(r)))
    return 0


def cpu_has_native_bf16() -> bool:
    """True when this CPU runs bfloat16 matmuls natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated
    and slower than fp32, so the default reader trains in fp32 there."""
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # an older/newer torch without these probes: stay in fp32
        return False


def train_default_reader(output: Optional[PathLike] = None, force: bool = False, epochs: Optional[float] = None,
                         data_dir: Optional[PathLike] = None, max_minutes: Optional[float] = None,
                         args: Optional[Mapping[str, Any]] = None, include_articles: bool = True,
                         article_fraction: float = 1.0, question_fraction: float = 1.0,
                         start_from: Optional[PathLike] = None) -> Optional[TrainResult]:
    """Train the service's default reader (:data:`DEFAULT_READER_ARGS`) into ``output`` (default
    :func:`covidqa.paths.default_reader_dir`); does nothing and returns ``None`` when one exists and not ``force``.
    ``epochs`` overrides ``num_train_epochs``; ``max_minutes`` the time budget (``0``: none). ``start_from``: the
    model to fine-tune (default: the packaged MiniLM with a fresh span head); any other model gets :data:`ADAPT_ARGS`
    on top of the recipe (the shipped reader starts from stage 1, :mod:`covidqa.pretrain`)."""
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


def _cmd_default(ns) -> int:
    args = _json_arg(ns.args)
    train_default_reader(ns.output, force=ns.force, epochs=ns.epochs, data_dir=ns.data_dir,
                         max_minutes=ns.max_minutes, args=args, include_articles=not ns.no_articles,
                         article_fraction=ns.article_fraction, start_from=ns.start_from)
    return 0


def _training_summary(model_dir: Path) -> Dict[str, Any]:
    """A model's ``reader_training.json`` without the per-step loss history."""
    path = model_dir / TRAINING_META_FILE
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.get('train', {}).pop('loss_history', None)
    return meta


def _cmd_ship(ns) -> int:
    from covidqa.shipped import SHIPPED_READER_FILE, pack_reader

    source = Path(ns.model) if ns.model else default_reader_dir()
    meta = _training_summary(source)
    start = Path(str(meta.get('start_from', '')))
    if (start / TRAINING_META_FILE).is_file():  # the stage the reader was fine-tuned from, for the model card
        meta['start_from_training'] = _training_summary(start)
    target = Path(ns.output) if ns.output else SHIPPED_READER_FILE
    digest = pack_reader(source, target, meta)
    print(f'packed {source} into {target} ({target.stat().st_size / 2**20:.1f} MiB, sha256 {digest})')
    return 0


def raise_keyboard_interrupt(signum, frame):
    """SIGTERM (and SIGINT, which a shell's background job ignores) stop training the way Ctrl-C does: the
    training loop saves its checkpoint before it exits."""
    raise KeyboardInterrupt(f'signal {signum}')


def stop_on_signals() -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, raise_keyboard_interrupt)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # On a shared CPU, OpenMP threads that spin while waiting steal time from each other and from the other
    # processes (measured 2x slower training under load); sleeping waits cost next to nothing on large matmuls.
    if 'torch' not in sys.modules:
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    parser = argparse.ArgumentParser(prog='python -m covidqa.qa', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('train', help='fine-tune a reader on labelled CSV/SQuAD files and save it')
    p.add_argument('files', nargs='+', help='training CSV / SQuAD JSON file(s)')
    p.add_argument('--output', required=True, help='directory to save the trained model to (atomically)')
    p.add_argument('--model', default=BASE_MODEL_NAME, help="starting checkpoint (default: 'base')")
    p.add_argument('--eval', help='labelled file evaluated after training')
    p.add_argument('--args', help='QATrainArgs as a JSON object (or a JSON file)')
    p.add_argument('--epochs', type=float, help='num_train_epochs')
    p.add_argument('--learning-rate', type=float, help='learning_rate')
    p.set_defaults(func=_cmd_train)

    for name, helptext in (('eval', 'EM/F1/loss on a labelled file'), ('test', 'answer every row of a file')):
        p = sub.add_parser(name, help=helptext)
        p.add_argument('file')
        p.add_argument('--model', default=None, help='model directory (default: the trained default reader)')
        p.add_argument('--max-seq-length', type=int, default=384)
        p.add_argument('--doc-stride', type=int, default=128)
        if name == 'test':
            p.add_argument('--output', help='write answers to this CSV instead of printing JSON lines')
        p.set_defaults(func=_cmd_eval if name == 'eval' else _cmd_test)

    p = sub.add_parser('default', help='train the default reader into the service home if there is none')
    p.add_argument('--force', action='store_true', help='retrain even if a reader exists')
    p.add_argument('--epochs', type=float, help='num_train_epochs (also lifts the time budget)')
    p.add_argument('--max-minutes', type=float, help='training time budget in minutes (0: none)')
    p.add_argument('--data-dir', help='COVID-QA data root (default: $COVIDQA_DATA or ../shared/data)')
    p.add_argument('--output', help='model directory (default: the service default reader dir)')
    p.add_argument('--args', help='extra QATrainArgs as a JSON object')
    p.add_argument('--no-articles', action='store_true', help='paragraph-level data only')
    p.add_argument('--article-fraction', type=float, default=1.0, help='share of full-article records to use')
    p.add_argument('--start-from', help='model to fine-tune, e.g. stage 1 of the recipe (covidqa.pretrain); '
                                        'adds ADAPT_ARGS to the default recipe (default: base)')
    p.set_defaults(func=_cmd_default)

    p = sub.add_parser('ship', help='pack a trained reader into the one file committed to the repository')
    p.add_argument('--model', help='reader directory (default: the service default reader dir)')
    p.add_argument('--output', help='target file (default: models/reader/covidqa-reader.fp16.safetensors)')
    p.set_defaults(func=_cmd_ship)

    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    stop_on_signals()
    try:
        return ns.func(ns)
    except (QADataError, QATrainArgsError, FileNotFoundError, ValueError, ShippedReaderError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('stopped', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
