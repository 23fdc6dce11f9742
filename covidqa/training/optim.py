"""The optimiser and learning-rate schedule of both training loops (the reader's and the embedder's).

- :func:`adamw`: ``torch.optim.AdamW`` over the trainable parameters (``requires_grad``), with weight decay on the
  weight matrices only (not on biases and LayerNorm weights, :data:`NO_DECAY`); parameters named in ``head`` form
  their own groups, learning at ``head_lr_scale`` times the base rate. Every group carries its ``lr_scale``.
- :func:`warmup_decay`: the schedule as a factor of the peak learning rate at ``progress`` (0 = start, 1 = end of
  training): linear warmup over the first ``warmup_ratio`` of training, then linear decay to 0. Progress may come
  from steps (``(step + 0.5) / total_steps``) or from a clock (a time-budgeted run), so the schedule is a function of
  progress, not of the step count.
- :func:`set_lr`: sets every group's learning rate to ``lr`` times its ``lr_scale``; call it before each step.

Example::

    optimizer = adamw(model.named_parameters(), lr=2e-4, weight_decay=0.01)
    for step in range(total_steps):
        set_lr(optimizer, 2e-4 * warmup_decay((step + 0.5) / total_steps, warmup_ratio=0.1))
        loss = ...; loss.backward(); optimizer.step(); optimizer.zero_grad()
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Collection, Dict, Iterable, List, Tuple

if TYPE_CHECKING:
    import torch

# Parameters without weight decay: every bias, and the LayerNorm weights (BERT's and other models' spelling).
NO_DECAY = ('bias', 'LayerNorm.weight', 'layer_norm.weight')


def decays(name: str) -> bool:
    """Whether the parameter ``name`` gets weight decay (``'encoder.layer.0.output.dense.weight'`` -> True)."""
    return not any(k in name for k in NO_DECAY)


def parameter_groups(named_parameters: Iterable[Tuple[str, 'torch.nn.Parameter']], weight_decay: float,
                     head: Collection[str] = (), head_lr_scale: float = 1.0) -> List[Dict]:
    """AdamW parameter groups of the trainable parameters, in this order and without empty ones: body with decay,
    body without, head with decay, head without. Each group has ``params``, ``weight_decay`` and ``lr_scale``
    (1 for the body, ``head_lr_scale`` for the parameters named in ``head``)."""
    params = [(n, p) for n, p in named_parameters if p.requires_grad]
    groups = []
    for in_head, scale in ((False, 1.0), (True, head_lr_scale)):
        for decay in (True, False):
            chosen = [p for n, p in params if (n in head) == in_head and decays(n) == decay]
            if chosen:
                groups.append({'params': chosen, 'weight_decay': weight_decay if decay else 0.0, 'lr_scale': scale})
    if not groups:
        raise ValueError('no trainable parameter: every parameter has requires_grad=False')
    return groups


def adamw(named_parameters: Iterable[Tuple[str, 'torch.nn.Parameter']], lr: float, weight_decay: float = 0.0,
          betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, head: Collection[str] = (),
          head_lr_scale: float = 1.0) -> 'torch.optim.AdamW':
    """AdamW over :func:`parameter_groups` (starting at learning rate ``lr``, scaled per group)."""
    import torch

    groups = parameter_groups(named_parameters, weight_decay, head, head_lr_scale)
    for group in groups:
        group['lr'] = lr * group['lr_scale']
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def warmup_decay(progress: float, warmup_ratio: float) -> float:
    """The learning-rate factor in [0, 1] at ``progress`` in [0, 1]: rises linearly to 1 over ``warmup_ratio``,
    then falls linearly to 0 at ``progress = 1`` (``warmup_decay(0.05, 0.1)`` -> 0.5, ``warmup_decay(0.55, 0.1)``
    -> 0.5)."""
    if warmup_ratio > 0 and progress < warmup_ratio:
        return max(0.0, progress / warmup_ratio)
    return max(0.0, 1.0 - progress) / max(1e-9, 1.0 - warmup_ratio)


def set_lr(optimizer: 'torch.optim.Optimizer', lr: float) -> None:
    """Set every parameter group's learning rate to ``lr`` times its ``lr_scale`` (1 when it has none)."""
    for group in optimizer.param_groups:
        group['lr'] = lr * group.get('lr_scale', 1.0)


__all__ = ['NO_DECAY', 'adamw', 'decays', 'parameter_groups', 'set_lr', 'warmup_decay']
