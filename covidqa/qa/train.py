"""The reader's training: windows, batches and the span loss, trained by :func:`covidqa.training.loop.train_loop`.

:func:`train_span_model` fine-tunes an ``AutoModelForQuestionAnswering`` in place on labelled records
(:meth:`covidqa.qa.api.QuestionAnswering.train` calls it):

- contexts are cut into overlapping token windows (``doc_stride``) so that answers deep in a long article are not
  lost to truncation (:func:`build_training_windows`); windows holding the answer are labelled with its token span,
  up to ``negatives_per_question`` random windows without it are labelled ``[CLS]`` ("no answer here");
- length-bucketed, dynamically padded batches (:func:`bucketed_batches`; with shared normalisation a question's
  windows share a batch);
- AdamW with linear warmup and decay (:mod:`covidqa.training.optim`), gradient clipping (``max_grad_norm``), optional
  bf16 autocast, the embeddings and lowest layers optionally frozen (:func:`set_trainable`), a tqdm progress bar;
- with ``max_train_seconds`` the schedule also runs on the wall clock (progress = max(step share, time share)) so
  training ends on time with a fully decayed learning rate;
- with ``checkpoint_dir`` a resumable checkpoint (:mod:`covidqa.training.checkpoint`) every ``checkpoint_minutes``,
  at the end and on Ctrl-C; a run started again continues from it with the same batches, schedule and time budget.

Inputs: the model and its tokenizer, :class:`~covidqa.data.records.QARecord` objects with answers, checked
:class:`~covidqa.qa.args.QATrainArgs`. Output: a :class:`TrainingRun` (steps, per-step losses, window counts).

Example::

    run = train_span_model(model, tokenizer, records, QATrainArgs(num_train_epochs=1), start_model='base')
    run.steps, run.losses[-1]                 # (76, 1.93)
"""
from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from covidqa.data.records import QADataError, QARecord
from covidqa.qa.args import QATrainArgs, QATrainArgsError
from covidqa.reader.windows import QAWindows, encode_pairs, label_windows
from covidqa.text.question_match import add_question_word_type, uses_question_word_type
from covidqa.text.tokenization import pad_batch
from covidqa.training.checkpoint import TrainingCheckpoint
from covidqa.training.loop import LoopCheckpoint, Step, train_loop
from covidqa.training.optim import adamw

__all__ = ['TrainingData', 'TrainingRun', 'bucketed_batches', 'build_training_windows', 'train_span_model']

logger = logging.getLogger(__name__)
PAD_TO_MULTIPLE = 32


@dataclass
class TrainingData:
    """What a reader trained on: records used and skipped (answer longer than a window), windows kept (with and
    without the answer)."""

    records: int
    skipped_records: int
    windows: int
    positive_windows: int
    negative_windows: int


@dataclass
class TrainingRun(TrainingData):
    """What :func:`train_span_model` did: its :class:`TrainingData`, optimiser ``steps`` (of ``total_steps``;
    ``steps_per_epoch`` for epochs), ``losses`` (one per step, a resumed run's earlier steps included), ``history``
    (running means every 10 steps), whether the time budget ended it, and the loop's CPU seconds / torch threads."""

    steps: int
    total_steps: int
    steps_per_epoch: int
    stopped_by_time: bool = False
    cpu_equivalent_seconds: float = 0.0
    losses: List[float] = field(default_factory=list)
    history: List[float] = field(default_factory=list)


def build_training_windows(tokenizer, records: Sequence[QARecord], args: QATrainArgs, rng: np.random.Generator,
                           mark_question_words: bool = False):
    """Labelled training windows for ``records``: all windows holding the answer (at most
    ``args.max_positives_per_question``, 0 = all), plus up to ``args.negatives_per_question`` random windows
    without it (for a "no answer" record: that many windows, at least one). Returns ``(QAWindows, starts, ends,
    skipped_records)``; a record whose answer fits in no window (longer than a window) is skipped."""
    keep_ids, keep_tt, keep_off, keep_mask, keep_pair = [], [], [], [], []
    all_starts, all_ends = [], []
    skipped = 0
    chunk = 64
    for begin in range(0, len(records), chunk):
        part = records[begin : begin + chunk]
        windows = encode_pairs(tokenizer, [r.question for r in part], [r.context for r in part],
                               args.max_seq_length, args.doc_stride, args.max_query_length,
                               mark_question_words=mark_question_words)
        starts, ends = label_windows(windows, [r.answer_span for r in part])
        by_pair: Dict[int, List[int]] = {}
        for w, p in enumerate(windows.pair):
            by_pair.setdefault(int(p), []).append(w)
        for p, ws in sorted(by_pair.items()):
            positives = [w for w in ws if starts[w] > 0]
            negatives = [w for w in ws if starts[w] == 0]
            if part[p].answer_span is not None and not positives:
                skipped += 1
                continue
            if args.max_positives_per_question and len(positives) > args.max_positives_per_question:
                positives = sorted(rng.choice(positives, size=args.max_positives_per_question, replace=False).tolist())
            n_neg = args.negatives_per_question if positives else max(1, args.negatives_per_question)
            if len(negatives) > n_neg:
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


def set_trainable(model, freeze_layers: int) -> None:
    """Train every parameter except the embeddings and the lowest ``freeze_layers`` encoder layers (0: none;
    ``requires_grad``). The token-type embeddings of a model with the question-word type always train: its new row
    starts as a copy and has to learn."""
    for p in model.parameters():
        p.requires_grad_(True)
    if freeze_layers:
        base = getattr(model, model.base_model_prefix)
        blocks = base.encoder.layer
        if freeze_layers > len(blocks):
            raise QATrainArgsError(
                f'training argument freeze_layers={freeze_layers} exceeds the model\'s {len(blocks)} layers')
        for module in (base.embeddings, *blocks[:freeze_layers]):
            for p in module.parameters():
                p.requires_grad_(False)
    if uses_question_word_type(model):
        getattr(model, model.base_model_prefix).embeddings.token_type_embeddings.weight.requires_grad_(True)


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
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


def padded_batch(windows: QAWindows, batch: Sequence[int], pad_id: int):
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


def padded_mask(windows: QAWindows, batch: Sequence[int], width: int) -> np.ndarray:
    """The context masks of ``batch`` padded with False to ``width`` tokens (the width of :func:`padded_batch`)."""
    mask, _ = pad_batch([windows.context_mask[i] for i in batch], pad_id=0)
    return np.pad(mask, ((0, 0), (0, width - mask.shape[1]))).astype(bool)


class _SpanObjective:
    """The reader's objective for :func:`covidqa.training.loop.train_loop`: each epoch's :func:`bucketed_batches` of
    the windows (a question's windows together with shared normalisation), and a batch's span loss (plus
    ``shared_norm_weight`` times :class:`~covidqa.training.losses.shared_norm.SharedNormLoss`), in bf16 autocast
    when ``args.bf16``."""

    def __init__(self, model, windows: QAWindows, starts: np.ndarray, ends: np.ndarray, args: QATrainArgs,
                 pad_id: int, rng: np.random.Generator):
        self.model, self.windows, self.starts, self.ends, self.args = model, windows, starts, ends, args
        self.pad_id, self.rng = pad_id, rng
        self.lengths = [len(x) for x in windows.input_ids]
        self.groups: Optional[Sequence[int]] = windows.pair.tolist() if args.shared_norm_weight > 0 else None
        self.shared_norm = None
        if args.shared_norm_weight > 0:
            from covidqa.training.losses.shared_norm import SharedNormLoss

            self.shared_norm = SharedNormLoss()

    def batches(self, epoch: int) -> List[List[int]]:
        return bucketed_batches(self.lengths, self.args.batch_size, self.rng, self.groups)

    def loss(self, batch: List[int]):
        import torch

        windows = self.windows
        input_ids, attention_mask, token_type_ids = padded_batch(windows, batch, self.pad_id)
        batch_starts, batch_ends = torch.from_numpy(self.starts[batch]), torch.from_numpy(self.ends[batch])
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.args.bf16):
            out = self.model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
                token_type_ids=torch.from_numpy(token_type_ids),
                start_positions=batch_starts, end_positions=batch_ends,
            )
            loss = out.loss.float()
            if self.shared_norm is not None:
                context_mask = torch.from_numpy(padded_mask(windows, batch, input_ids.shape[1]))
                loss = loss + self.args.shared_norm_weight * self.shared_norm(
                    out.start_logits, out.end_logits, context_mask, batch_starts, batch_ends,
                    torch.from_numpy(windows.pair[batch]))
        return loss


def train_span_model(model, tokenizer, records: Sequence[QARecord], args: QATrainArgs,
                     start_model: str = '') -> TrainingRun:
    """Fine-tune ``model`` (an ``AutoModelForQuestionAnswering``) in place on ``records`` (every one with an
    answer) with ``args``; leaves it in eval mode. ``start_model`` names the weights it started from (part of the
    checkpoint's fingerprint: a checkpoint of another start model is refused). Raises :class:`QADataError` when no
    record fits a window, :class:`QATrainArgsError` for arguments the model cannot take, ``FloatingPointError`` when
    the loss stops being finite, and :class:`covidqa.training.checkpoint.CheckpointMismatch` for a checkpoint of
    another run."""
    import torch
    from tqdm.auto import tqdm

    if args.question_word_type:
        add_question_word_type(model)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    windows, starts, ends, skipped = build_training_windows(tokenizer, records, args, rng,
                                                            uses_question_word_type(model))
    if len(windows) == 0:
        raise QADataError('no training windows: every answer is longer than a window; raise max_seq_length')
    if skipped:
        logger.warning('%d training record(s) skipped: answer longer than a %d-token window',
                       skipped, args.max_seq_length)
    steps_per_epoch = math.ceil(len(windows) / args.batch_size)
    total_steps = max(1, math.ceil(args.num_train_epochs * steps_per_epoch))

    set_trainable(model, args.freeze_layers)
    optimizer = adamw(model.named_parameters(), lr=args.learning_rate, weight_decay=args.weight_decay,
                      betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)
    objective = _SpanObjective(model, windows, starts, ends, args, int(tokenizer.pad_token_id or 0), rng)
    checkpoint = None
    if args.checkpoint_dir:
        fingerprint = {**args.to_dict(), 'windows': len(windows), 'records': len(records), 'start_model': start_model}
        checkpoint = LoopCheckpoint(TrainingCheckpoint(args.checkpoint_dir), fingerprint, args.checkpoint_minutes * 60)
    threads = max(1, torch.get_num_threads())
    bar = tqdm(total=total_steps, desc='train reader', unit='step', mininterval=5.0, file=sys.stderr)

    def progress(done: Step) -> None:
        if bar.n == 0 and done.step > 1:  # resumed: the bar starts where the checkpoint left off
            bar.update(done.step - 1)
        bar.update(1)
        if done.running is not None:
            bar.set_postfix(loss=f'{done.running:.3f}', lr=f'{done.lr:.2e}')

    try:
        run = train_loop(model, optimizer, objective, total_steps=total_steps, learning_rate=args.learning_rate,
                         warmup_ratio=args.warmup_ratio, max_grad_norm=args.max_grad_norm, max_steps=total_steps,
                         max_seconds=args.max_train_seconds, on_step=progress, checkpoint=checkpoint)
    finally:
        bar.close()
    if run.stopped_by_time:
        logger.warning('training stopped by max_train_seconds=%s after %d of %d steps',
                       args.max_train_seconds, run.steps, total_steps)
    return TrainingRun(
        records=len(records) - skipped, skipped_records=skipped, windows=len(windows),
        positive_windows=int((starts > 0).sum()), negative_windows=int((starts == 0).sum()), steps=run.steps,
        total_steps=total_steps, steps_per_epoch=steps_per_epoch, stopped_by_time=run.stopped_by_time,
        cpu_equivalent_seconds=run.cpu_seconds / threads, losses=run.losses, history=run.history,
    )
