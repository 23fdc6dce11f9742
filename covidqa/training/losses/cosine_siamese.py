"""Cosine siamese loss (finetuner's ``CosineSiameseLoss``): regress the cosine similarity of each labeled pair onto
its target, +1 for an accepted match and -1 for a rejected one (finetuner's setting), and its batches.

The loss (``__call__``):

Inputs:
    left    float tensor (N, D): query embeddings.
    right   float tensor (N, D): match embeddings, ``right[i]`` labeled for ``left[i]``.
    target  float tensor (N,): 1.0 for accepted pairs, -1.0 for rejected ones (any value in [-1, 1] works).
Output:
    scalar tensor, the mean squared error between ``cos(left_i, right_i)`` and ``target_i``. ``ValueError`` for
    shapes that do not fit.

Training on labels: :meth:`~CosineSiameseLoss.usable` keeps the queries with any label,
:meth:`~CosineSiameseLoss.batches` makes one (query, document, accepted?) item per labeled pair, shuffled and cut
into batches of ``batch_size`` (every rejected match is a pair of its own: ``max_hard_negatives`` does not apply),
and :meth:`~CosineSiameseLoss.batch_loss` embeds a batch and returns its loss.

Example::

    >>> import torch
    >>> from covidqa.training.losses import CosineSiameseLoss
    >>> loss_fn = CosineSiameseLoss()
    >>> a = torch.tensor([[1.0, 0.0], [1.0, 0.0]]); b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> loss_fn(a, b, torch.tensor([1.0, -1.0]))     # pair 0 perfect (0), pair 1 off by 1 -> mean 0.5
    tensor(0.5000)
"""
import random
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from covidqa.training.losses.labeled import Embed, LabeledQuery, embed_unique

NEGATIVE_TARGET = -1.0
Item = Tuple[str, str, bool]  # (query, document, accepted?)


class CosineSiameseLoss(nn.Module):
    name = 'cosine'
    min_batch_size = 1

    @staticmethod
    def targets(positive: torch.Tensor) -> torch.Tensor:
        """Targets for a bool tensor of 'accepted?' flags: 1.0 where accepted, -1.0 where rejected."""
        return torch.where(positive, 1.0, NEGATIVE_TARGET).float()

    def forward(self, left: torch.Tensor, right: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if left.ndim != 2 or left.shape != right.shape:
            raise ValueError(f'left and right must both be (N, D), got {tuple(left.shape)} and {tuple(right.shape)}')
        if target.shape != left.shape[:1]:
            raise ValueError(f'target must be ({left.shape[0]},), got {tuple(target.shape)}')
        return F.mse_loss(F.cosine_similarity(left, right, dim=-1), target.to(left.dtype))

    @staticmethod
    def usable(examples: Sequence[LabeledQuery]) -> list:
        """The examples with an accepted or a rejected match; ``ValueError`` when there is none."""
        usable = [ex for ex in examples if ex.positives or ex.negatives]
        if not usable:
            raise ValueError('no labeled pair in the training data')
        return usable

    @staticmethod
    def batches(examples: Sequence[LabeledQuery], rng: random.Random, batch_size: int,
                max_hard_negatives: int) -> List[List[Item]]:
        """One epoch's batches (see the module docstring); ``rng`` shuffles the pairs."""
        pairs = [(ex.query, d, True) for ex in examples for d in ex.positives]
        pairs += [(ex.query, d, False) for ex in examples for d in ex.negatives]
        rng.shuffle(pairs)
        return [pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size)]

    def batch_loss(self, embed: Embed, batch: Sequence[Item]) -> torch.Tensor:
        """The loss of one batch of :meth:`batches`, its texts embedded by ``embed`` (each distinct text once)."""
        vectors, index = embed_unique(embed, [b[0] for b in batch] + [b[1] for b in batch])
        n = len(batch)
        target = self.targets(torch.tensor([b[2] for b in batch]))
        return self(vectors[index[:n]], vectors[index[n:]], target)
