"""Losses for finetuning the embedder from feedback, one per module (sentence-transformers style).

- :class:`MultipleNegativesRankingLoss` (``'mnr'``): in-batch negatives + the rejected matches as hard negatives;
  uses (query, accepted match) pairs.
- :class:`CosineSiameseLoss` (``'cosine'``): finetuner's siamese loss, the cosine of each labeled (query, match) pair
  regressed onto +1 (accepted) / -1 (rejected); uses every labeled pair.

``get_loss(name, **kwargs)`` builds one by name.

The reader's training has its own auxiliary loss here too: :class:`covidqa.training.losses.shared_norm.SharedNormLoss`
(one softmax over all windows of a question, ``QATrainArgs.shared_norm_weight``); it is not an embedder loss, so
not in ``LOSSES``.
"""
from covidqa.training.losses.cosine_siamese import CosineSiameseLoss
from covidqa.training.losses.multiple_negatives_ranking import MultipleNegativesRankingLoss

LOSSES = {
    'mnr': MultipleNegativesRankingLoss,
    'cosine': CosineSiameseLoss,
}


def get_loss(name: str, **kwargs):
    if name not in LOSSES:
        raise ValueError(f'unknown loss {name!r}; known losses: {sorted(LOSSES)}')
    return LOSSES[name](**kwargs)


__all__ = ['CosineSiameseLoss', 'MultipleNegativesRankingLoss', 'LOSSES', 'get_loss']
