"""Training checkpoints: a long training run survives being stopped and resumes where it left off.

:class:`TrainingCheckpoint` keeps one file, ``<dir>/checkpoint.pt``, with everything the training loop needs to
continue exactly: the model and optimiser state, the step reached, the clock seconds spent (so a time-budgeted
schedule goes on from the same point), the loss history, torch's random state, and a fingerprint of the run (its
training arguments and the number of training windows). The file is written atomically (temporary file +
``os.replace``), so a crash while saving leaves the previous checkpoint intact.

Resuming with other arguments or other data would silently train a different schedule, so :meth:`load` refuses a
checkpoint whose fingerprint differs (:class:`CheckpointMismatch`) and names the keys that differ; a checkpoint
written with training arguments this code no longer has is refused naming those, and cannot be resumed.

Example::

    ckpt = TrainingCheckpoint('workspace/checkpoints/reader-pretrain')
    state = ckpt.load(fingerprint)          # None when there is none yet
    ...
    ckpt.save(TrainingState(step=..., ...), fingerprint)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from covidqa.paths import PathLike
from covidqa.runtime.atomic import atomic_path

CHECKPOINT_FILE = 'checkpoint.pt'
# Keys that may change between the pieces of one run: where things go, how long a piece may take, and how long the
# whole run is. Raising `num_train_epochs` or `max_train_seconds` extends a run (even a finished one): it goes on
# with the batches it has not seen yet, and the learning rate picks up where the longer schedule stands.
RESUMABLE_CHANGES = ('output_dir', 'checkpoint_dir', 'checkpoint_minutes', 'max_train_seconds', 'num_train_epochs')


class CheckpointMismatch(ValueError):
    """The checkpoint belongs to another run (other arguments or other data); the message names the difference."""


@dataclass
class TrainingState:
    """Where a training run stands: ``step`` optimiser steps done, ``elapsed`` clock seconds spent on them,
    ``losses`` (one per step) and ``history`` (the progress bar's running means), plus the model, optimiser and
    torch random-number states."""

    step: int
    elapsed: float
    model: Dict[str, Any]
    optimizer: Dict[str, Any]
    torch_rng: Any
    losses: List[float] = field(default_factory=list)
    history: List[float] = field(default_factory=list)


class TrainingCheckpoint:
    """One resumable checkpoint in ``directory`` (created when first saved)."""

    def __init__(self, directory: PathLike):
        self.directory = Path(directory)
        self.path = self.directory / CHECKPOINT_FILE

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: TrainingState, fingerprint: Mapping[str, Any]) -> Path:
        """Write ``state`` atomically; the previous checkpoint stays until the new one is complete."""
        import torch

        with atomic_path(self.path) as tmp:
            torch.save({'fingerprint': dict(fingerprint), 'state': state.__dict__}, tmp)
        return self.path

    def load(self, fingerprint: Mapping[str, Any]) -> Optional[TrainingState]:
        """The saved state, or ``None`` when there is no checkpoint. Raises :class:`CheckpointMismatch` when the
        file cannot be read, was written with keys ``fingerprint`` does not have (arguments that have left the code),
        or with other training arguments or data (keys in :data:`RESUMABLE_CHANGES` may differ)."""
        if not self.exists():
            return None
        import torch

        try:
            saved = torch.load(self.path, map_location='cpu', weights_only=False)
        except Exception as error:  # a file cut short by a full disk, or not a checkpoint at all
            raise CheckpointMismatch(f'checkpoint {self.path} cannot be read ({type(error).__name__}: {error}); '
                                     f'delete it to start over') from None
        old = saved['fingerprint']
        unknown = sorted(k for k in old if k not in fingerprint)
        if unknown:
            detail = ', '.join(f'{k}={old[k]!r}' for k in unknown)
            raise CheckpointMismatch(
                f'checkpoint {self.path} was written with training arguments this code no longer has ({detail}); '
                f'it cannot be resumed: delete the checkpoint directory to start over')
        differing = sorted(
            k for k in set(old) | set(fingerprint) if k not in RESUMABLE_CHANGES and old.get(k) != fingerprint.get(k)
        )
        if differing:
            detail = ', '.join(f'{k}: {old.get(k)!r} -> {fingerprint.get(k)!r}' for k in differing)
            raise CheckpointMismatch(
                f'checkpoint {self.path} belongs to another run ({detail}); resume with the same arguments and '
                f'data, or delete the checkpoint directory to start over')
        return TrainingState(**saved['state'])
