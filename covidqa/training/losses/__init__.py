"""The training losses, one per module (sentence-transformers style); each builds its own batches.

The embedder's, by name in :data:`LOSSES` (the finetuner's ``loss`` option):

- :class:`MultipleNegativesRankingLoss` (``'mnr'``): in-batch negatives + the rejected matches as hard negatives;
  uses (query, accepted match) pairs.
- :class:`CosineSiameseLoss` (``'cosine'``): finetuner's siamese loss, the cosine of each labeled (query, match) pair
  regressed onto +1 (accepted) / -1 (rejected); uses every labeled pair.

Both expose ``usable(examples)``, ``batches(examples, rng, batch_size, max_hard_negatives)`` and
``batch_loss(embed, batch)`` for :func:`covidqa.training.loop.train_loop`.

The reader's auxiliary loss: :class:`covidqa.training.losses.shared_norm.SharedNormLoss` (one softmax over all windows
of a question, ``QATrainArgs.shared_norm_weight``); not an embedder loss, so not in :data:`LOSSES`.

Example: ``LOSSES['mnr']()(anchors, positives)`` -> a scalar tensor.
"""
from typing import Dict, Type, Union

from covidqa.training.losses.cosine_siamese import CosineSiameseLoss
from covidqa.training.losses.multiple_negatives_ranking import MultipleNegativesRankingLoss

LOSSES: Dict[str, Type[Union[MultipleNegativesRankingLoss, CosineSiameseLoss]]] = {
    MultipleNegativesRankingLoss.name: MultipleNegativesRankingLoss,
    CosineSiameseLoss.name: CosineSiameseLoss,
}

__all__ = ['CosineSiameseLoss', 'MultipleNegativesRankingLoss', 'LOSSES']
