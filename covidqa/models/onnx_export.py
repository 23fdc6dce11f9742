"""A checkpoint exported to an ``.onnx`` file: the graph contract of each kind, the export, the optional int8 pass.

Kinds (:data:`KINDS`) and their graphs' inputs and outputs, all with dynamic ``batch`` and ``seq`` axes:

- ``'encoder'``: ``(input_ids, attention_mask) -> last_hidden_state`` (the encoder called with ``token_type_ids = 0``);
- ``'qa'``: ``(input_ids, attention_mask, token_type_ids) -> (start_logits, end_logits)``.

:func:`export` loads the checkpoint with :mod:`covidqa.models.loading` (eager attention), traces it with the
TorchScript exporter (``torch.onnx.export(dynamo=False)``, opset 17) on a padded batch, so the attention-mask path is
in the graph, and with ``quantize=True`` applies ``onnxruntime.quantization.quantize_dynamic`` (int8 weights per
output channel, 7-bit range; activations quantized on the fly). The file appears in ``directory`` only when complete
(written in a temporary folder there, moved in with ``os.replace``). Needs torch; the caller holds the cache's lock
(:func:`covidqa.models.onnx_cache.ensure_exported`). Raises whatever the exporter or the quantizer raise.

Example::

    meta = export(Path('workspace/models/reader'), 'qa', quantize=True, directory=Path('/tmp/x'), stem='qa.int8')
    meta['size'], meta['export_seconds']          # bytes of /tmp/x/qa.int8.onnx, seconds the export took
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

__all__ = ['EXPORT_FORMAT', 'INPUTS', 'KINDS', 'OUTPUTS', 'check_kind', 'export', 'export_paths']

# Bump when the exported graph changes (wrapper, exporter options, quantizer settings): invalidates every cache.
EXPORT_FORMAT = 2
KINDS = ('encoder', 'qa')
INPUTS = {
    'encoder': ('input_ids', 'attention_mask'),
    'qa': ('input_ids', 'attention_mask', 'token_type_ids'),
}
OUTPUTS = {'encoder': ('last_hidden_state',), 'qa': ('start_logits', 'end_logits')}


def check_kind(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')


def _load_torch_model(model_dir: Path, kind: str):
    """The checkpoint as a torch module ``(inputs...) -> outputs`` with eager attention."""
    import torch

    from covidqa.models.loading import load_encoder, load_qa_model

    model = load_encoder(model_dir) if kind == 'encoder' else load_qa_model(model_dir)
    with contextlib.suppress(Exception):  # eager attention traces to plain MatMul/Softmax ops
        model.set_attn_implementation('eager')

    if kind == 'encoder':
        class EncoderGraph(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

        return EncoderGraph(model).eval()

    class QAGraph(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.start_logits, out.end_logits

    return QAGraph(model).eval()


def _example_inputs(kind: str):
    import torch

    # batch 2 with padding in row 1: the attention-mask path must be traced (an all-ones mask may be skipped)
    ids = torch.tensor([[101, 2054, 2003, 1996, 7865, 1029, 102, 2009, 2003, 1037, 7865, 102],
                        [101, 2129, 2515, 2009, 3659, 1029, 102, 2011, 2250, 102, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    if kind == 'encoder':
        return ids, mask
    token_types = torch.tensor([[0] * 7 + [1] * 5, [0] * 7 + [1] * 3 + [0, 0]], dtype=torch.long)
    return ids, mask, token_types


def _torch_export(module, kind: str, target: Path) -> None:
    """Export ``module`` to ``target`` with the TorchScript exporter (opset 17, dynamic batch and seq axes)."""
    import warnings

    import torch

    inputs, outputs = INPUTS[kind], OUTPUTS[kind]
    axes = {name: {0: 'batch', 1: 'seq'} for name in inputs + outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, _example_inputs(kind), str(target), dynamo=False, input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes=axes, opset_version=17, do_constant_folding=True)


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel 7-bit weights: on COVID-QA paragraph retrieval (1338 questions) per-tensor int8 lost 1.6 points
    # of hit@1 against fp32, per-channel 0.6, per-channel + reduce_range 0.0; same speed (VNNI kernels).
    # DefaultTensorType: the type of any tensor shape inference leaves untyped.
    class _NoPreprocessAdvice(logging.Filter):  # quantize_dynamic logs this on the root logger every time
        def filter(self, record: logging.LogRecord) -> bool:
            return 'pre-processing before quantization' not in record.getMessage()

    advice = _NoPreprocessAdvice()
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         extra_options={'DefaultTensorType': onnx.TensorProto.FLOAT})
    finally:
        logging.getLogger().removeFilter(advice)


def export(model_dir: Path, kind: str, quantize: bool, directory: Path, stem: str) -> dict:
    """Export checkpoint ``model_dir`` as ``kind`` into ``directory/<stem>.onnx`` (int8 when ``quantize``).

    Returns the metadata the cache stores: ``{'export_seconds', 'size'}`` (seconds taken, bytes written).
    """
    check_kind(kind)
    started = time.perf_counter()
    tmp_dir = Path(tempfile.mkdtemp(prefix=f'.{stem}.tmp-', dir=directory))
    try:
        current = tmp_dir / 'raw.onnx'
        module = _load_torch_model(model_dir, kind)
        _torch_export(module, kind, current)
        del module
        if quantize:
            _quantize(current, tmp_dir / 'int8.onnx')
            current = tmp_dir / 'int8.onnx'
        final = directory / f'{stem}.onnx'
        os.replace(current, final)
    finally:
        for leftover in tmp_dir.glob('*'):
            with contextlib.suppress(OSError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            tmp_dir.rmdir()
    return {'export_seconds': round(time.perf_counter() - started, 3), 'size': final.stat().st_size}


def export_paths(model_dir: str, kind: str, quantize: bool, directory: str, stem: str) -> dict:
    """:func:`export` with JSON-able arguments: the ``export-onnx`` child-process job (:mod:`covidqa.jobs`)."""
    return export(Path(model_dir), kind, quantize, Path(directory), stem)

