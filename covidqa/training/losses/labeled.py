"""What the embedder's losses train on, and embedding a batch's texts once each.

:class:`LabeledQuery`: a query with the documents a user accepted (``positives``) and rejected (``negatives``), e.g.
:class:`covidqa.feedback.store.TrainingExample` (any object with these three attributes).

:func:`embed_unique`: ``embed`` (a function of a list of texts returning an ``(N, D)`` tensor) called once on the
distinct texts of ``texts``; returns ``(vectors, index)`` with ``vectors[index[i]]`` the vector of ``texts[i]``.

Example::

    vectors, index = embed_unique(encoder, ['a', 'b', 'a'])     # encoder(['a', 'b']); index == [0, 1, 0]
"""
from __future__ import annotations

from typing import Callable, List, Protocol, Sequence, Tuple

import torch

Embed = Callable[[Sequence[str]], torch.Tensor]


class LabeledQuery(Protocol):
    @property
    def query(self) -> str: ...

    @property
    def positives(self) -> Sequence[str]: ...

    @property
    def negatives(self) -> Sequence[str]: ...


def embed_unique(embed: Embed, texts: Sequence[str]) -> Tuple[torch.Tensor, List[int]]:
    """Embed each distinct text once; returns (vectors, index of each input text)."""
    unique = list(dict.fromkeys(texts))
    position = {t: i for i, t in enumerate(unique)}
    return embed(unique), [position[t] for t in texts]
