"""The embedder finetuning settings, declared once (:class:`FinetuneOptions`): :func:`covidqa.feedback.finetune.train_encoder`
and :func:`~covidqa.feedback.finetune.fit` take them as keyword arguments, feedback rounds
(:class:`covidqa.feedback.rounds.FeedbackRounds`) and the Finetuner Executor's ``uses_with`` hand them on, and the
``python -m covidqa.feedback.finetune`` command line offers them with the same bounds.

Example: ``FinetuneOptions(loss='cosine', epochs=2)``; ``FinetuneOptions(lr=0)`` raises naming ``lr``.
"""
from __future__ import annotations

from typing import Annotated

from covidqa.embedding.pooling import POOLINGS
from covidqa.options import Options, choice, integer, number
from covidqa.text.tokenization import DEFAULT_MAX_LENGTH

# the keys of covidqa.training.losses.LOSSES, for processes without torch (that package imports it)
LOSS_NAMES = ('cosine', 'mnr')


class FinetuneOptions(Options):
    """How a feedback round trains the embedder on the labels (``mnr``: in-batch negatives plus rejected matches as
    hard negatives; ``cosine``: cosine similarity to +1 / -1 per label)."""

    loss: Annotated[str, choice(LOSS_NAMES, "the loss: 'mnr' (multiple negatives ranking) or 'cosine' (siamese)")
                    ] = 'mnr'
    epochs: Annotated[int, integer(1, 1000, 'passes over the labels')] = 8
    lr: Annotated[float, number(0.0, 1.0, 'peak learning rate', exclusive_minimum=True)] = 5e-5
    batch_size: Annotated[int, integer(1, 1024, 'labelled pairs per step')] = 8
    max_length: Annotated[int, integer(1, 512, 'tokens of a query or document')] = DEFAULT_MAX_LENGTH
    pooling: Annotated[str, choice(POOLINGS, 'how the trained embedder pools its token vectors')] = 'cls'
    max_hard_negatives: Annotated[int, integer(0, 1000, "rejected matches per query used as hard negatives (mnr)")
                                  ] = 4
    weight_decay: Annotated[float, number(0.0, 1.0, 'AdamW weight decay')] = 0.01
    warmup_ratio: Annotated[float, number(0.0, 1.0, 'share of the steps with a rising learning rate')] = 0.1
    seed: Annotated[int, integer(0, 2**32 - 1, 'random seed')] = 0
