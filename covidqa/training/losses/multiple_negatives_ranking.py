"""Multiple-negatives ranking loss with hard negatives (in-batch softmax over cosine similarities).

For each anchor (query) ``i`` the candidates are every positive of the batch plus every hard negative of the batch;
the loss is the cross-entropy of ``scale * cos(anchor_i, candidate_j)`` with the correct class ``j = i``. The other
anchors' positives act as (random) in-batch negatives, the rejected matches as hard negatives. With
``symmetric=True`` the other direction is added too (each positive must pick its own anchor among the batch's
anchors), and the two cross-entropies are averaged.

Inputs:
    anchors    float tensor (B, D): query embeddings.
    positives  float tensor (B, D): ``positives[i]`` is an accepted match of ``anchors[i]``.
    negatives  optional float tensor (M, D): hard negatives (rejected matches), shared by every anchor of the batch.
    mask       optional bool tensor (B, B + M): ``True`` where a candidate must be ignored for an anchor, e.g. another
               copy of one of its own accepted documents (a false negative). Never set it on the diagonal.
Output:
    scalar tensor, the mean cross-entropy over the B anchors.

Example::

    >>> import torch
    >>> from covidqa.training.losses import MultipleNegativesRankingLoss
    >>> loss_fn = MultipleNegativesRankingLoss(scale=20.0)
    >>> q, p, n = torch.randn(4, 384), torch.randn(4, 384), torch.randn(6, 384)
    >>> loss = loss_fn(q, p, n)          # tensor(…) >= 0; lower when q[i] is closest to p[i]
    >>> loss.shape
    torch.Size([])
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class MultipleNegativesRankingLoss(nn.Module):
    def __init__(self, scale: float = 20.0, symmetric: bool = False):
        super().__init__()
        if scale <= 0:
            raise ValueError(f'scale must be > 0, got {scale}')
        self.scale = scale
        self.symmetric = symmetric

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, negatives: Optional[torch.Tensor] = None,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if anchors.ndim != 2 or anchors.shape != positives.shape:
            raise ValueError(f'anchors and positives must both be (B, D), got {tuple(anchors.shape)} and '
                             f'{tuple(positives.shape)}')
        candidates = positives if negatives is None or len(negatives) == 0 else torch.cat([positives, negatives])
        scores = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T * self.scale
        if mask is not None:
            if mask.shape != scores.shape:
                raise ValueError(f'mask must be {tuple(scores.shape)}, got {tuple(mask.shape)}')
            if mask.diagonal().any():
                raise ValueError('mask must not hide an anchor\'s own positive (the diagonal)')
            scores = scores.masked_fill(mask, float('-inf'))
        target = torch.arange(len(anchors), device=anchors.device)
        loss = F.cross_entropy(scores, target)
        if self.symmetric:
            backward = scores[:, :len(anchors)].T  # positive i -> anchors; the mask is symmetric for duplicates
            loss = (loss + F.cross_entropy(backward, target)) / 2
        return loss
