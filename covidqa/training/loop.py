"""The training loop of the reader and of the embedder: epochs over batches, forward and loss, backward, clipping,
an optimiser step at the scheduled learning rate, with an optional time budget, progress callback, cancelling and
resumable checkpoints.

:func:`train_loop` names no model and no loss: an :class:`Objective` gives each epoch's batches and each batch's
loss (the reader's span windows, :mod:`covidqa.qa.train`; the embedder's labeled pairs through the losses of
:mod:`covidqa.training.losses`, :mod:`covidqa.feedback.finetune`).

Per step: the learning rate is set to ``learning_rate * warmup_decay(schedule_point(step, total_steps, time_share),
warmup_ratio)`` (:mod:`covidqa.training.optim`), the batch's loss is computed and checked (a loss that is not finite
raises ``FloatingPointError``), back-propagated, the gradients clipped to ``max_grad_norm`` (0: no clipping), the
optimiser stepped and the gradients cleared. The loop ends after ``max_epochs`` epochs or ``max_steps`` steps
(whichever comes first; at least one of them must be given), when ``max_seconds`` have been spent (the time share
then also drives the schedule, so the learning rate is fully decayed on time), or raises :class:`TrainingCancelled`
when ``stop_event`` is set. The model is in train mode during the loop and in eval mode after it, whatever happens.

Checkpoints (``checkpoint``, a :class:`LoopCheckpoint`): with a saved state of the same run (its ``fingerprint``;
another run's raises :class:`covidqa.training.checkpoint.CheckpointMismatch`) the loop restores the model, the
optimiser, torch's random state, the step, the losses and the clock, then regenerates the epochs' batches from the
start (the objective's random generator must be in the state it had when the saved run began) and skips the batches
already trained, so the rest is the batches and schedule the run would have had. It saves every ``every_seconds``,
at the end, and on Ctrl-C when that comes between two steps (inside a step the previous checkpoint stays, since the
weights and the step count disagree there).

Example::

    result = train_loop(model, optimizer, objective, total_steps=100, learning_rate=2e-4, warmup_ratio=0.1,
                        max_grad_norm=1.0, max_steps=100, max_seconds=540.0)
    result.steps, result.losses[-1], result.stopped_by_time
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Protocol, Sequence, TypeVar

import numpy as np

from covidqa.training.checkpoint import TrainingCheckpoint, TrainingState
from covidqa.training.optim import schedule_point, set_lr, warmup_decay

__all__ = ['LoopCheckpoint', 'LoopResult', 'Objective', 'Step', 'TrainingCancelled', 'train_loop']

logger = logging.getLogger(__name__)
HISTORY_EVERY = 10  # steps per running mean in LoopResult.history
Batch = TypeVar('Batch')


class TrainingCancelled(RuntimeError):
    """``stop_event`` was set during :func:`train_loop`."""


class Objective(Protocol[Batch]):
    """What the loop trains on: ``batches(epoch)`` (a fresh sequence of batches for each epoch, drawn from the
    objective's own random generator) and ``loss(batch)`` (a scalar tensor with gradients)."""

    def batches(self, epoch: int) -> Sequence[Batch]: ...

    def loss(self, batch: Batch) -> Any: ...


@dataclass(frozen=True)
class Step:
    """One finished optimiser step, for ``on_step``: ``epoch`` (0-based), ``step`` (steps done, 1-based),
    ``steps`` (the schedule's ``total_steps``), its ``loss``, the learning rate it was taken at, and ``running``:
    the mean of the last 10 losses when this step added one to the history, else ``None``."""

    epoch: int
    step: int
    steps: int
    loss: float
    lr: float
    running: Optional[float]


@dataclass
class LoopCheckpoint:
    """Where the loop keeps its resumable state, the ``fingerprint`` of the run it belongs to, and how often to save."""

    store: TrainingCheckpoint
    fingerprint: Mapping[str, Any]
    every_seconds: float


@dataclass
class LoopResult:
    """What :func:`train_loop` did: ``steps`` done (a resumed run's earlier ones included), ``losses`` (one per
    step, likewise), ``history`` (running means every 10 steps and at the last step), ``epoch_losses`` (the mean loss
    of each epoch this call trained in), whether the time budget ended it, and this call's process CPU seconds."""

    steps: int
    losses: List[float] = field(default_factory=list)
    history: List[float] = field(default_factory=list)
    epoch_losses: List[float] = field(default_factory=list)
    stopped_by_time: bool = False
    cpu_seconds: float = 0.0


def train_loop(model, optimizer, objective: Objective, *, total_steps: int, learning_rate: float,
               warmup_ratio: float, max_grad_norm: float, max_steps: Optional[int] = None,
               max_epochs: Optional[int] = None, max_seconds: Optional[float] = None,
               on_step: Optional[Callable[[Step], None]] = None, stop_event: Optional[threading.Event] = None,
               checkpoint: Optional[LoopCheckpoint] = None) -> LoopResult:
    """Train ``model`` (a torch module) with ``optimizer`` on ``objective`` (see the module docstring).

    ``total_steps`` (>= 1) is the length of the learning-rate schedule; ``max_steps`` / ``max_epochs`` end the loop.
    Raises ``ValueError`` when neither is given, ``FloatingPointError`` for a loss that is not finite,
    :class:`TrainingCancelled` when ``stop_event`` is set, and ``CheckpointMismatch`` for another run's checkpoint.
    """
    import torch

    if max_steps is None and max_epochs is None:
        raise ValueError('train_loop needs max_steps or max_epochs')
    if total_steps < 1:
        raise ValueError(f'total_steps must be >= 1, got {total_steps!r}')
    step = 0
    losses: List[float] = []
    history: List[float] = []
    resumed = checkpoint.store.load(checkpoint.fingerprint) if checkpoint else None
    loop_start = time.perf_counter()
    if resumed is not None:
        assert checkpoint is not None  # resumed comes from the checkpoint
        model.load_state_dict(resumed.model)
        optimizer.load_state_dict(resumed.optimizer)
        torch.set_rng_state(resumed.torch_rng)
        step, losses, history = resumed.step, list(resumed.losses), list(resumed.history)
        loop_start -= resumed.elapsed  # the time budget goes on from where it stopped
        logger.info('resuming from %s at step %d of %d', checkpoint.store.path, step, total_steps)
    start_step = step

    def save() -> None:
        assert checkpoint is not None  # called only with a checkpoint
        checkpoint.store.save(TrainingState(
            step=step, elapsed=time.perf_counter() - loop_start, model=model.state_dict(),
            optimizer=optimizer.state_dict(), torch_rng=torch.get_rng_state(), losses=losses, history=history,
        ), checkpoint.fingerprint)

    result = LoopResult(steps=step)
    last_saved = time.perf_counter()
    cpu_start = time.process_time()
    at_step_boundary = True
    seen = 0  # batches of the schedule met so far: on resume the first `start_step` are skipped, not trained
    epoch = 0
    model.train()
    try:
        while (max_epochs is None or epoch < max_epochs) and (max_steps is None or step < max_steps):
            running: List[float] = []
            for batch in objective.batches(epoch):
                if max_steps is not None and step >= max_steps:
                    break
                seen += 1
                if seen <= start_step:
                    continue
                if stop_event is not None and stop_event.is_set():
                    raise TrainingCancelled('training cancelled')
                time_share = None
                if max_seconds:
                    time_share = (time.perf_counter() - loop_start) / max_seconds
                    if time_share >= 1.0:
                        result.stopped_by_time = True
                        break
                lr = learning_rate * warmup_decay(schedule_point(step, total_steps, time_share), warmup_ratio)
                set_lr(optimizer, lr)
                loss = objective.loss(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f'training loss became {loss.item()} at step {step}; lower the '
                                             f'learning rate (now {learning_rate})')
                loss.backward()
                if max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                at_step_boundary = False  # weights, optimiser and `step` disagree until `step += 1`
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.item()))
                running.append(losses[-1])
                step += 1
                at_step_boundary = True
                recent = None
                if step % HISTORY_EVERY == 0 or step == total_steps:
                    recent = float(np.mean(losses[-HISTORY_EVERY:]))
                    history.append(recent)
                if on_step is not None:
                    on_step(Step(epoch=epoch, step=step, steps=total_steps, loss=losses[-1], lr=lr, running=recent))
                if checkpoint and time.perf_counter() - last_saved >= checkpoint.every_seconds:
                    save()
                    last_saved = time.perf_counter()
            if running:
                result.epoch_losses.append(sum(running) / len(running))
            if result.stopped_by_time:
                break
            epoch += 1
        if checkpoint:
            save()  # a finished run: running it again trains nothing more
    except KeyboardInterrupt:
        if checkpoint and at_step_boundary:
            save()
            logger.warning('stopped at step %d of %d; checkpoint saved to %s: run again to resume',
                           step, total_steps, checkpoint.store.path)
        elif checkpoint:
            logger.warning('stopped inside step %d of %d; run again to resume from the last checkpoint in %s',
                           step + 1, total_steps, checkpoint.store.path)
        raise
    finally:
        model.eval()
    result.steps, result.losses, result.history = step, losses, history
    result.cpu_seconds = time.process_time() - cpu_start
    return result
