"""Cosine siamese loss (finetuner's ``CosineSiameseLoss``): regress the cosine similarity of each labeled pair onto
its target, +1 for an accepted match and ``negative_target`` (default -1, as in finetuner) for a rejected one.

Inputs:
    left    float tensor (N, D): query embeddings.
    right   float tensor (N, D): match embeddings, ``right[i]`` labeled for ``left[i]``.
    target  float tensor (N,): 1.0 for accepted pairs, 0.0 or -1.0 for rejected ones (any value in [-1, 1]).
Output:
    scalar tensor, the mean squared error between ``cos(left_i, right_i)`` and ``target_i``.

Example::

    >>> import torch
    >>> from covidqa.training.losses import CosineSiameseLoss
    >>> loss_fn = CosineSiameseLoss()
    >>> a = torch.tensor([[1.0, 0.0], [1.0, 0.0]]); b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> loss_fn(a, b, torch.tensor([1.0, -1.0]))     # pair 0 perfect (0), pair 1 off by 1 -> mean 0.5
    tensor(0.5000)
"""
import torch
import torch.nn.functional as F
from torch import nn


class CosineSiameseLoss(nn.Module):
    def __init__(self, negative_target: float = -1.0):
        super().__init__()
        if not -1.0 <= negative_target < 1.0:
            raise ValueError(f'negative_target must be in [-1, 1), got {negative_target}')
        self.negative_target = negative_target

    def targets(self, positive: torch.Tensor) -> torch.Tensor:
        """Targets for a bool tensor of 'accepted?' flags."""
        return torch.where(positive, 1.0, self.negative_target).float()

    def forward(self, left: torch.Tensor, right: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if left.ndim != 2 or left.shape != right.shape:
            raise ValueError(f'left and right must both be (N, D), got {tuple(left.shape)} and {tuple(right.shape)}')
        if target.shape != left.shape[:1]:
            raise ValueError(f'target must be ({left.shape[0]},), got {tuple(target.shape)}')
        return F.mse_loss(F.cosine_similarity(left, right, dim=-1), target.to(left.dtype))
