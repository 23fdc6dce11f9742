"""Sentence vectors from a BERT encoder: the ``[CLS]`` vector of the last hidden state (default) or the mean of
the token vectors (``pooling='mean'``). :func:`pool` is the one definition of both, for numpy arrays (here) and
torch tensors (the finetuner, :mod:`covidqa.feedback.finetune`, with gradients).

An embedder version (a directory written by :meth:`covidqa.embedding.versions.ModelVersions.save_new`) embeds with the pooling
saved with it; asking it for another raises ``ValueError``. The base model embeds with the configured pooling.

Inputs are unpadded token-id arrays (see :mod:`covidqa.text.tokenization`); batches are formed from similar lengths and
padded to their longest member only. Two backends compute the same thing:

- ``torch``: transformers ``AutoModel`` under ``torch.inference_mode``;
- ``onnx``: the same encoder exported with ``torch.onnx.export`` and run by ONNX Runtime
  (see :mod:`covidqa.models.onnx`);
- ``onnx-int8``: that export with int8 dynamic quantization (2-3x faster; FAQ hit@1 unchanged, see
  ``benchmarks/bench_speed.py``).

Example::

    emb = Embedder()                      # packaged all-MiniLM-L6-v2, CLS pooling, torch
    vectors = emb.embed_texts(['How does the virus spread?'])   # (1, 384) float32
    Embedder('workspace/models/embedder/v0002').pooling         # the version's saved pooling, e.g. 'cls'
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, cast

import numpy as np

from covidqa.embedding.pooling import check_pooling, pool
from covidqa.embedding.versions import saved_pooling
from covidqa.models.loading import load_encoder, resolve_model_path
from covidqa.paths import PathLike
from covidqa.runtime.torch_gate import require_torch
from covidqa.text.tokenization import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_PASSAGE_MAX_LENGTH,
    TextTokenizer,
    length_sorted_batches,
    pad_batch,
)

BACKENDS = ('torch', 'onnx', 'onnx-int8')


def resolve_pooling(model: Optional[PathLike], pooling: Optional[str] = None) -> str:
    """The pooling to embed with checkpoint ``model``: the one saved with an embedder version
    (:func:`covidqa.embedding.versions.saved_pooling`), else ``pooling``, else ``'cls'``.

    Raises ``ValueError`` when ``pooling`` is given and the version was trained with another one (its vectors
    would silently differ from what it learned). Example: ``resolve_pooling('base', 'mean')`` -> ``'mean'``.
    """
    if pooling is not None:
        check_pooling(pooling)
    saved = saved_pooling(model)
    if saved is None:
        return pooling or 'cls'
    check_pooling(saved)
    if pooling is not None and pooling != saved:
        raise ValueError(f'the embedder version {model} was trained with pooling={saved!r} (its version.json) and '
                         f'cannot embed with pooling={pooling!r}: configure pooling {saved!r} (or leave it unset)')
    return saved


EncoderRunner = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(input_ids, attention_mask) -> (batch, seq, dim)`` last hidden states (:class:`_TorchRunner`, ONNX runner)."""


class _TorchRunner:
    def __init__(self, model_dir, num_threads: Optional[int] = None):
        require_torch("the embedder's torch backend")
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = load_encoder(model_dir)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
                token_type_ids=torch.zeros_like(torch.from_numpy(input_ids)),
            )
        return out.last_hidden_state.numpy()


class Embedder:
    """Embeds texts or pre-tokenized ids. Heavy loading happens on first use (or :meth:`load`).

    ``pooling``: ``'cls'`` or ``'mean'``; ``None`` (default): the pooling saved with an embedder version, ``'cls'``
    for the base model. A version asked for another pooling than its own raises ``ValueError``
    (:func:`resolve_pooling`).
    """

    def __init__(
        self,
        model: Optional[PathLike] = None,
        pooling: Optional[str] = None,
        backend: str = 'torch',
        batch_size: int = 32,
        max_length: int = DEFAULT_MAX_LENGTH,
        num_threads: Optional[int] = None,
        passage_max_length: int = DEFAULT_PASSAGE_MAX_LENGTH,
    ):
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
        self.model = model
        self.pooling = resolve_pooling(model, pooling)
        self.backend = backend
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.tokenizer = TextTokenizer(model, max_length=max_length)
        self.passage_max_length = passage_max_length
        self._runner: Optional[EncoderRunner] = None

    def load(self) -> 'Embedder':
        if self._runner is None:
            model_dir = resolve_model_path(self.model)
            if self.backend.startswith('onnx'):
                from covidqa.models.onnx import OnnxEncoderRunner

                self._runner = OnnxEncoderRunner(model_dir, num_threads=self.num_threads,
                                                 quantize=self.backend == 'onnx-int8')
            else:
                self._runner = _TorchRunner(model_dir, num_threads=self.num_threads)
        return self

    @property
    def dim(self) -> int:
        return 384

    def embed_ids(self, ids: Sequence[np.ndarray], batch_size: Optional[int] = None) -> np.ndarray:
        """(n, dim) float32 vectors for n unpadded id arrays, in input order."""
        self.load()
        runner = self._runner
        assert runner is not None  # set by load()
        out: List[Optional[np.ndarray]] = [None] * len(ids)
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        for positions in length_sorted_batches([len(x) for x in ids], batch_size or self.batch_size):
            input_ids, attention_mask = pad_batch([ids[p] for p in positions], pad_id=self.tokenizer.pad_id)
            hidden = runner(input_ids, attention_mask)
            vectors = pool(hidden, attention_mask, self.pooling)
            for p, v in zip(positions, vectors):
                out[p] = v
        return np.stack(cast(List[np.ndarray], out)).astype(np.float32)  # every position filled above

    def embed_texts(self, texts: Sequence[str], batch_size: Optional[int] = None) -> np.ndarray:
        """(n, dim) vectors of ``texts`` (queries; each truncated to ``max_length`` tokens)."""
        return self.embed_ids(self.tokenizer.encode(texts), batch_size=batch_size)

    def embed_documents(self, texts: Sequence[str], kinds: Sequence[str], batch_size: Optional[int] = None
                        ) -> np.ndarray:
        """(n, dim) vectors of stored documents: a literature passage (``kinds[i] == 'literature'``) truncated to
        ``passage_max_length`` tokens, anything else (an FAQ entry's question) to ``max_length``, as the tokenizer
        Executor cuts them at ``/index`` (:meth:`TextTokenizer.encode_documents`)."""
        if len(kinds) != len(texts):
            raise ValueError(f'{len(texts)} texts but {len(kinds)} kinds')
        return self.embed_ids(self.tokenizer.encode_documents(texts, kinds, self.passage_max_length),
                              batch_size=batch_size)
