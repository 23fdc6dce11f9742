"""ONNX Runtime backends of the sentence encoder and the extractive QA reader: the names callers import.

A checkpoint (any ``save_pretrained`` directory, or ``'base'``) is exported once and the result cached; later loads
only read the cached ``.onnx`` file (no torch model is built, no export runs). The work is split by concern:

- :mod:`covidqa.models.onnx_export`: the graphs (:data:`KINDS`, their inputs and outputs) and the export itself
  (TorchScript exporter, opset 17, optional int8 with ``quantize_dynamic``); :func:`export_paths` is the
  ``export-onnx`` child-process job of :mod:`covidqa.jobs`;
- :mod:`covidqa.models.onnx_cache`: where exports live, when they are stale, :func:`ensure_exported`;
- :mod:`covidqa.models.onnx_session`: :func:`make_session` (CPU, all graph optimisations, no spinning threads);
- :mod:`covidqa.models.onnx_runners`: :class:`OnnxEncoderRunner` and :class:`OnnxQARunner`.

``backend='onnx'`` of the embedder and the reader is fp32, ``'onnx-int8'`` the quantized graph (``quantize=True``):
2-3x faster, 4x smaller, not bit-identical to fp32 (a text's vector also depends slightly on its batch: cosine
>= 0.99 between batch 1 and 32); ``benchmarks/bench_speed.py`` measures its quality.

Example::

    enc = OnnxEncoderRunner('base', num_threads=2)
    hidden = enc(input_ids, attention_mask)              # (batch, seq, 384) float32
    qa = OnnxQARunner('workspace/models/reader')
    start_logits, end_logits = qa(input_ids, attention_mask, token_type_ids)
"""
from __future__ import annotations

from covidqa.models.onnx_cache import (
    ExportInfo,
    checkpoint_fingerprint,
    ensure_exported,
    export_info_dict,
    onnx_cache_dir,
)
from covidqa.models.onnx_export import EXPORT_FORMAT, KINDS, export_paths
from covidqa.models.onnx_runners import OnnxEncoderRunner, OnnxQARunner
from covidqa.models.onnx_session import make_session

__all__ = [
    'EXPORT_FORMAT',
    'KINDS',
    'ExportInfo',
    'OnnxEncoderRunner',
    'OnnxQARunner',
    'checkpoint_fingerprint',
    'ensure_exported',
    'export_info_dict',
    'export_paths',
    'make_session',
    'onnx_cache_dir',
]
