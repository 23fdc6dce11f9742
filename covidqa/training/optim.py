"""The optimiser and learning-rate schedule of every training loop (:mod:`covidqa.training.loop`).

- :func:`adamw`: ``torch.optim.AdamW`` over the trainable parameters (``requires_grad``), with weight decay on the
  weight matrices only (not on biases and LayerNorm weights, :data:`NO_DECAY`).
- :func:`warmup_decay`: the schedule as a factor of the peak learning rate at ``progress`` (0 = start, 1 = end of
  training): linear warmup over the first ``warmup_ratio`` of training, then linear decay to 0.
- :func:`schedule_point`: the progress at which optimiser step ``step`` is taken: the middle of the step,
  ``(step + 0.5) / total_steps``; with a time budget the share of the time spent counts too, so a run cut by its
  budget still ends with a fully decayed learning rate.
- :func:`set_lr`: sets every group's learning rate; call it before each step.

Example::

    optimizer = adamw(model.named_parameters(), lr=2e-4, weight_decay=0.01)
    for step in range(total_steps):
        set_lr(optimizer, 2e-4 * warmup_decay(schedule_point(step, total_steps), warmup_ratio=0.1))
        loss = ...; loss.backward(); optimizer.step(); optimizer.zero_grad()
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Tuple

if TYPE_CHECKING:
    import torch

# Parameters without weight decay: every bias, and the LayerNorm weights (BERT's and other models' spelling).
NO_DECAY = ('bias', 'LayerNorm.weight', 'layer_norm.weight')


def cpu_has_native_bf16() -> bool:
    """True when this CPU runs bfloat16 matmuls natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated
    and slower than fp32, so training stays in fp32 there."""
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # an older/newer torch without these probes: stay in fp32
        return False


def decays(name: str) -> bool:
    """Whether the parameter ``name`` gets weight decay (``'encoder.layer.0.output.dense.weight'`` -> True)."""
    return not any(k in name for k in NO_DECAY)


def parameter_groups(named_parameters: Iterable[Tuple[str, 'torch.nn.Parameter']], weight_decay: float) -> List[Dict]:
    """AdamW parameter groups of the trainable parameters, in this order and without empty ones: with decay
    (``weight_decay``), without (0). Raises ``ValueError`` when no parameter is trainable."""
    params = [(n, p) for n, p in named_parameters if p.requires_grad]
    groups = []
    for decay in (True, False):
        chosen = [p for n, p in params if decays(n) == decay]
        if chosen:
            groups.append({'params': chosen, 'weight_decay': weight_decay if decay else 0.0})
    if not groups:
        raise ValueError('no trainable parameter: every parameter has requires_grad=False')
    return groups


def adamw(named_parameters: Iterable[Tuple[str, 'torch.nn.Parameter']], lr: float, weight_decay: float = 0.0,
          betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> 'torch.optim.AdamW':
    """AdamW over :func:`parameter_groups`, starting at learning rate ``lr``."""
    import torch

    return torch.optim.AdamW(parameter_groups(named_parameters, weight_decay), lr=lr, betas=betas, eps=eps)


def warmup_decay(progress: float, warmup_ratio: float) -> float:
    """The learning-rate factor in [0, 1] at ``progress`` in [0, 1]: rises linearly to 1 over ``warmup_ratio``,
    then falls linearly to 0 at ``progress = 1`` (``warmup_decay(0.05, 0.1)`` -> 0.5, ``warmup_decay(0.55, 0.1)``
    -> 0.5)."""
    if warmup_ratio > 0 and progress < warmup_ratio:
        return max(0.0, progress / warmup_ratio)
    return max(0.0, 1.0 - progress) / max(1e-9, 1.0 - warmup_ratio)


def schedule_point(step: int, total_steps: int, time_share: Optional[float] = None) -> float:
    """The progress (for :func:`warmup_decay`) of optimiser step ``step`` (0-based) of ``total_steps`` (>= 1):
    ``(step + 0.5) / total_steps``; with ``time_share`` (the share of a time budget spent) the larger of the step
    and the time share, plus half a step (``schedule_point(2, 10)`` -> 0.25, ``schedule_point(2, 10, 0.5)`` ->
    0.55)."""
    if time_share is None:
        return (step + 0.5) / total_steps
    return max(step / total_steps, time_share) + 0.5 / total_steps


def set_lr(optimizer: 'torch.optim.Optimizer', lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``."""
    for group in optimizer.param_groups:
        group['lr'] = lr


__all__ = ['NO_DECAY', 'adamw', 'cpu_has_native_bf16', 'decays', 'parameter_groups', 'schedule_point', 'set_lr', 'warmup_decay']
