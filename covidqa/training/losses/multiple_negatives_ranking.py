"""Multiple-negatives ranking loss with hard negatives (in-batch softmax over cosine similarities), and its batches.

The loss (``__call__``): for each anchor (query) ``i`` the candidates are every positive of the batch plus every hard
negative of the batch; the loss is the cross-entropy of ``SCALE * cos(anchor_i, candidate_j)`` with the correct class
``j = i`` (``SCALE`` = 20, sentence-transformers' setting). The other anchors' positives act as (random) in-batch
negatives, the rejected matches as hard negatives.

Inputs:
    anchors    float tensor (B, D): query embeddings.
    positives  float tensor (B, D): ``positives[i]`` is an accepted match of ``anchors[i]``.
    negatives  optional float tensor (M, D): hard negatives (rejected matches), shared by every anchor of the batch.
    mask       optional bool tensor (B, B + M): ``True`` where a candidate must be ignored for an anchor, e.g. another
               copy of one of its own accepted documents (a false negative). Never set it on the diagonal.
Output:
    scalar tensor, the mean cross-entropy over the B anchors. ``ValueError`` for shapes that do not fit, or a mask
    that hides an anchor's own positive.

Training on labels: :meth:`~MultipleNegativesRankingLoss.usable` keeps the queries with an accepted match,
:meth:`~MultipleNegativesRankingLoss.batches` makes one (query, accepted match, up to ``max_hard_negatives`` of its
rejected matches) item per accepted match, shuffled, in batches where no query and no accepted document appears
twice (a duplicate would be a false in-batch negative), and :meth:`~MultipleNegativesRankingLoss.batch_loss` embeds
a batch and returns its loss (another copy of an anchor's own accepted document is masked).

Example::

    >>> import torch
    >>> from covidqa.training.losses import MultipleNegativesRankingLoss
    >>> loss_fn = MultipleNegativesRankingLoss()
    >>> q, p, n = torch.randn(4, 384), torch.randn(4, 384), torch.randn(6, 384)
    >>> loss = loss_fn(q, p, n)          # tensor(…) >= 0; lower when q[i] is closest to p[i]
    >>> loss.shape
    torch.Size([])
"""
import random
from typing import FrozenSet, List, Optional, Sequence, Set, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from covidqa.training.losses.labeled import Embed, LabeledQuery, embed_unique

SCALE = 20.0
Item = Tuple[str, str, List[str], FrozenSet[str]]  # (query, positive, hard negatives, all positives of the query)


class MultipleNegativesRankingLoss(nn.Module):
    name = 'mnr'
    min_batch_size = 2  # in-batch negatives: a batch of one has none

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, negatives: Optional[torch.Tensor] = None,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if anchors.ndim != 2 or anchors.shape != positives.shape:
            raise ValueError(f'anchors and positives must both be (B, D), got {tuple(anchors.shape)} and '
                             f'{tuple(positives.shape)}')
        candidates = positives if negatives is None or len(negatives) == 0 else torch.cat([positives, negatives])
        scores = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T * SCALE
        if mask is not None:
            if mask.shape != scores.shape:
                raise ValueError(f'mask must be {tuple(scores.shape)}, got {tuple(mask.shape)}')
            if mask.diagonal().any():
                raise ValueError('mask must not hide an anchor\'s own positive (the diagonal)')
            scores = scores.masked_fill(mask, float('-inf'))
        target = torch.arange(len(anchors), device=anchors.device)
        return F.cross_entropy(scores, target)

    @staticmethod
    def usable(examples: Sequence[LabeledQuery]) -> list:
        """The examples with an accepted match; ``ValueError`` when there is none."""
        usable = [ex for ex in examples if ex.positives]
        if not usable:
            raise ValueError('no accepted match in the training data: the mnr loss needs at least one accepted '
                             '(query, document) pair; label more or use loss="cosine"')
        return usable

    @staticmethod
    def batches(examples: Sequence[LabeledQuery], rng: random.Random, batch_size: int,
                max_hard_negatives: int) -> List[List[Item]]:
        """One epoch's batches (see the module docstring); ``rng`` picks the hard negatives and the order."""
        items: List[Item] = []
        for ex in examples:
            for pos in ex.positives:
                negs = list(ex.negatives)
                rng.shuffle(negs)
                items.append((ex.query, pos, negs[:max_hard_negatives], frozenset(ex.positives)))
        rng.shuffle(items)
        batches: List[List[Item]] = []
        pending = items
        while pending:
            batch: List[Item] = []
            rest: List[Item] = []
            queries: Set[str] = set()
            positives: Set[str] = set()
            for item in pending:
                if len(batch) < batch_size and item[0] not in queries and item[1] not in positives:
                    batch.append(item)
                    queries.add(item[0])
                    positives.add(item[1])
                else:
                    rest.append(item)
            batches.append(batch)
            pending = rest
        return batches

    def batch_loss(self, embed: Embed, batch: Sequence[Item]) -> torch.Tensor:
        """The loss of one batch of :meth:`batches`, its texts embedded by ``embed`` (each distinct text once)."""
        queries = [b[0] for b in batch]
        positives = [b[1] for b in batch]
        negatives = list(dict.fromkeys(n for b in batch for n in b[2]))
        vectors, index = embed_unique(embed, queries + positives + negatives)
        nq, npos = len(queries), len(positives)
        anchors = vectors[index[:nq]]
        pos = vectors[index[nq:nq + npos]]
        neg = vectors[index[nq + npos:]] if negatives else None
        candidates = positives + negatives
        mask = torch.tensor([[j != i and candidates[j] in batch[i][3] for j in range(len(candidates))]
                             for i in range(nq)], dtype=torch.bool)
        return self(anchors, pos, neg, mask=mask)
