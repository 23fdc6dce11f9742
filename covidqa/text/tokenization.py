"""Tokenize once, pad per batch.

:class:`TextTokenizer` turns texts into *unpadded* token-id arrays (truncated to ``max_length``); :func:`pad_batch`
pads a batch of them to its longest member only (dynamic padding), so a batch of short questions never pays for
``max_length``. :func:`length_sorted_batches` groups similar lengths together so padding stays small.

Example::

    tok = TextTokenizer(max_length=50)
    ids = tok.encode(['How does the virus spread?', 'What is COVID-19?'])
    input_ids, attention_mask = pad_batch(ids, pad_id=tok.pad_id)
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple, cast

import numpy as np

from covidqa.models.loading import load_tokenizer
from covidqa.paths import PathLike

DEFAULT_MAX_LENGTH = 50  # questions, as in finetuner's CovidQA example
# a literature passage (~200 tokens) is embedded whole, up to this: its first 50 tokens miss most of what it says
DEFAULT_PASSAGE_MAX_LENGTH = 256


class TextTokenizer:
    def __init__(self, model: Optional[PathLike] = None, max_length: int = DEFAULT_MAX_LENGTH):
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f'max_length must be an integer >= 2, got {max_length!r}')
        self.model = model
        self.max_length = max_length
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.model)
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def encode(self, texts: Sequence[str], max_length: Optional[int] = None) -> List[np.ndarray]:
        """Token ids (with [CLS]/[SEP]) for each text, truncated, unpadded, as int64 arrays."""
        limit = max_length or self.max_length
        enc = self.tokenizer(list(texts), truncation=True, max_length=limit, padding=False)
        return [np.asarray(ids, dtype=np.int64) for ids in enc['input_ids']]

    def encode_documents(self, texts: Sequence[str], kinds: Sequence[str],
                         passage_max_length: int = DEFAULT_PASSAGE_MAX_LENGTH,
                         max_length: Optional[int] = None) -> List[np.ndarray]:
        """Token ids of stored documents, as :meth:`encode`: a literature passage (``kinds[i] == 'literature'``)
        truncated to ``passage_max_length`` tokens, any other document (an FAQ entry: its question) to
        ``max_length`` (default the tokenizer's). Example: ``encode_documents([q, passage], ['faq', 'literature'])``."""
        if len(kinds) != len(texts):
            raise ValueError(f'{len(texts)} texts but {len(kinds)} kinds')
        out: List[Optional[np.ndarray]] = [None] * len(texts)
        for literature, limit in ((True, passage_max_length), (False, max_length or self.max_length)):
            positions = [i for i, kind in enumerate(kinds) if (kind == 'literature') == literature]
            if positions:
                for i, ids in zip(positions, self.encode([texts[i] for i in positions], max_length=limit)):
                    out[i] = ids
        return cast(List[np.ndarray], out)


def pad_batch(batch: Sequence[np.ndarray], pad_id: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Pad a batch of 1-D id arrays to the longest one. Returns ``(input_ids, attention_mask)``, both int64."""
    if len(batch) == 0:
        raise ValueError('pad_batch needs at least one sequence')
    longest = max(len(ids) for ids in batch)
    input_ids = np.full((len(batch), longest), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(batch), longest), dtype=np.int64)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[List[int]]:
    """Positions grouped into batches of similar length (longest first), so padding per batch is minimal."""
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for begin in range(0, len(order), batch_size):
        yield order[begin : begin + batch_size]
