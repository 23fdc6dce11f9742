"""The embedding settings, declared once (:class:`EmbedOptions`): the tokenizer and embedder Executors take them from
``uses_with``, ``/index``, ``/update``, ``/search`` and ``/answer`` requests override them (:mod:`executors.parameters`),
with the same bounds.

Example: ``EmbedOptions(max_length=64).with_overrides(batch_size=8)``
"""
from __future__ import annotations

from typing import Annotated

from covidqa.options import Options, integer
from covidqa.text.tokenization import DEFAULT_MAX_LENGTH, DEFAULT_PASSAGE_MAX_LENGTH

DEFAULT_EMBED_BATCH_SIZE = 32


class EmbedOptions(Options):
    """How texts become vectors: how many tokens of a text are embedded, and how many texts a forward pass takes."""

    max_length: Annotated[int, integer(1, 512, 'tokens embedded per text (queries and documents)')] = DEFAULT_MAX_LENGTH
    passage_max_length: Annotated[int, integer(1, 512, "tokens embedded per literature passage (a document of kind "
                                                       "'literature'; FAQ entries and queries: max_length)")
                                  ] = DEFAULT_PASSAGE_MAX_LENGTH
    batch_size: Annotated[int, integer(1, 1024, 'texts per forward pass of the embedder')] = DEFAULT_EMBED_BATCH_SIZE
