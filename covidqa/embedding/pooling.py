"""How token vectors become one sentence vector: ``'cls'`` (the first token's) or ``'mean'`` (over the mask).

Pure numpy / torch, no model: the encoder (:mod:`covidqa.embedding.encoder`), the finetuner and the embedder's
versions (:mod:`covidqa.embedding.versions`, which checks the pooling it saves) all pool through here.
"""
from __future__ import annotations

import numpy as np

POOLINGS = ('cls', 'mean')


def check_pooling(pooling) -> str:
    """``pooling`` if it is one of :data:`POOLINGS`, else a ``ValueError`` naming it."""
    if pooling not in POOLINGS:
        raise ValueError(f'pooling must be one of {POOLINGS}, got {pooling!r}')
    return pooling


def pool(hidden, attention_mask, pooling: str):
    """``hidden`` (batch, seq, dim) -> (batch, dim): the ``[CLS]`` (first) vector, or the mean of the vectors where
    ``attention_mask`` (batch, seq) is 1. Numpy arrays in, numpy out; torch tensors in, torch out (gradients flow).

    Example: ``pool(hidden, mask, 'mean')`` for ``hidden`` of shape (2, 7, 384) -> (2, 384).
    """
    check_pooling(pooling)
    if pooling == 'cls':
        return hidden[:, 0]
    if isinstance(hidden, np.ndarray):
        mask = attention_mask[..., None].astype(hidden.dtype)
        return (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
    mask = attention_mask[..., None].to(hidden.dtype)  # torch
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
