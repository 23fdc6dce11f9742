"""Callables over the cached ONNX export of a checkpoint: the sentence encoder's and the extractive reader's graphs.

:class:`OnnxEncoderRunner` and :class:`OnnxQARunner` take ``model`` (a ``save_pretrained`` directory or ``'base'``),
``num_threads`` (intra-op threads; ``None``: ONNX Runtime's default) and ``quantize`` (``True``: the int8 graph,
2-3x faster and 4x smaller, not bit-identical to fp32; ``False``: fp32). Building one gets the export from
:func:`covidqa.models.onnx_cache.ensure_exported` (exporting first when needed) and raises what it raises; calling it
takes integer arrays of one ``(batch, seq)`` shape and raises ``ValueError`` for an empty or mismatched one.

Example::

    enc = OnnxEncoderRunner('base', num_threads=2)
    hidden = enc(input_ids, attention_mask)              # (batch, seq, 384) float32
    qa = OnnxQARunner('workspace/models/reader', quantize=True)
    start_logits, end_logits = qa(input_ids, attention_mask, token_type_ids)
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from covidqa.models.onnx_cache import ensure_exported
from covidqa.models.onnx_export import OUTPUTS
from covidqa.paths import PathLike

__all__ = ['OnnxEncoderRunner', 'OnnxQARunner']


def _as_int64(name: str, array, ndim: int = 2) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=np.int64)
    if out.ndim != ndim or out.shape[0] == 0 or out.shape[1] == 0:
        raise ValueError(f'{name} must be a non-empty (batch, seq) array, got shape {out.shape}')
    return out


class _OnnxRunner:
    """A session on the cached export of checkpoint ``model_dir``: fp32 unless ``quantize=True`` (int8)."""

    kind = ''

    def __init__(self, model_dir: Optional[PathLike], num_threads: Optional[int] = None, quantize: bool = False):
        if not isinstance(quantize, bool):
            raise ValueError(f'quantize must be True or False, got {quantize!r}')
        self.quantize = quantize
        self.num_threads = num_threads
        self.info, self.session = ensure_exported(model_dir, self.kind, quantize=quantize, num_threads=num_threads)
        self._output_names = list(OUTPUTS[self.kind])

    @property
    def path(self) -> Path:
        return self.info.path

    def _run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        shape = None
        for name, value in feeds.items():
            if shape is None:
                shape = value.shape
            elif value.shape != shape:
                raise ValueError(f'{name} has shape {value.shape}, input_ids has {shape}')
        return self.session.run(self._output_names, feeds)


class OnnxEncoderRunner(_OnnxRunner):
    """``(input_ids, attention_mask) -> last_hidden_state`` (batch, seq, hidden) float32, like the torch encoder
    called with ``token_type_ids = 0``."""

    kind = 'encoder'

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (hidden,) = self._run({'input_ids': _as_int64('input_ids', input_ids),
                               'attention_mask': _as_int64('attention_mask', attention_mask)})
        return hidden


class OnnxQARunner(_OnnxRunner):
    """``(input_ids, attention_mask, token_type_ids) -> (start_logits, end_logits)``, each (batch, seq) float32."""

    kind = 'qa'

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        start, end = self._run({'input_ids': _as_int64('input_ids', input_ids),
                                'attention_mask': _as_int64('attention_mask', attention_mask),
                                'token_type_ids': _as_int64('token_type_ids', token_type_ids)})
        return start, end
