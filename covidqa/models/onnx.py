"""ONNX Runtime backends for the sentence encoder and the extractive QA reader.

A checkpoint (any ``save_pretrained`` directory, or ``'base'``) is exported once with ``torch.onnx.export`` and the
result is cached; later loads only read the cached ``.onnx`` file (no torch model is built, no export runs).

Export
    The TorchScript exporter (``dynamo=False``, opset 17) with dynamic ``batch`` and ``seq`` axes, from the model
    loaded by :mod:`covidqa.models.loading` switched to *eager* attention, traced on a padded batch so the attention-mask
    path is in the graph. It takes ~3 s; the ``torch.export`` based exporter (``dynamo=True``) gives the same
    numbers but takes ~10 s, so it is only the fallback if the TorchScript exporter fails.
    ``optimize=True`` also runs ONNX Runtime's transformer optimizer (fused ``Attention`` /
    ``EmbedLayerNormalization`` / ``SkipLayerNormalization`` / ``BiasGelu``, raw 2-D mask kept). It is off by
    default: on the 2-core AVX-512 test machine the fused graph was no faster (0-12 % slower at batch 32, fp32 and
    int8), because the session-level optimisations (``ORT_ENABLE_ALL``) already fuse LayerNorm, Gelu and
    MatMul+bias of the plain graph.
Cache
    ``<model_dir>/onnx/`` next to a writable checkpoint (so a replaced checkpoint directory takes its cache with
    it), and ``$COVIDQA_HOME/onnx-cache/<hash of the path>/`` for the packaged base model (it lives in
    site-packages) or any read-only checkpoint; ``$COVIDQA_ONNX_CACHE`` overrides the root. Each entry records
    the *fingerprint* of its checkpoint (path + size, mtime, inode of the weight and config files + export
    options); when the checkpoint changes (feedback training, ``/qa/train``) the next load re-exports. Exports
    are written to a temporary directory and moved in with ``os.replace`` under a file lock, so concurrent
    Executors never read a half-written model; a missing, truncated or corrupt cached file is re-exported, not
    fatal.
    A process that serves without torch (:mod:`covidqa.runtime.torch_gate`) exports in a child process that exits when done.
Run
    ``onnxruntime.InferenceSession`` on the CPU with all graph optimisations, ``num_threads`` intra-op threads
    (``None``: ONNX Runtime's default, one per physical core) and no busy-waiting of idle worker threads: several
    Executors share few cores, and spinning threads steal them from each other (measured: spinning halved
    throughput with other processes busy).
Int8
    Only when asked for: ``quantize=True`` (the ``onnx-int8`` backend of the embedder and the reader; ``onnx`` is
    always fp32) applies ``onnxruntime.quantization.quantize_dynamic`` (int8 weights per output channel, 7-bit range; activations
    quantized on the fly per batch, VNNI kernels) to the exported graph: 2-3x faster, 4x smaller, not
    bit-identical to fp32 (a text's vector also depends slightly on its batch: cosine >= 0.99 between batch 1 and
    32). See ``benchmarks/bench_speed.py`` for its quality.

Example::

    enc = OnnxEncoderRunner('base', num_threads=2)
    hidden = enc(input_ids, attention_mask)              # (batch, seq, 384) float32
    qa = OnnxQARunner('workspace/models/reader')
    start_logits, end_logits = qa(input_ids, attention_mask, token_type_ids)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import site
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from covidqa.jobs import EXPORT_ONNX
from covidqa.models.loading import base_model_dir, resolve_model_path
from covidqa.paths import PathLike, onnx_cache_root
from covidqa.runtime.atomic import atomic_write_text
from covidqa.runtime.locks import file_lock

__all__ = [
    'EXPORT_FORMAT',
    'KINDS',
    'ExportInfo',
    'OnnxEncoderRunner',
    'OnnxQARunner',
    'checkpoint_fingerprint',
    'ensure_exported',
    'export_info_dict',
    'make_session',
    'onnx_cache_dir',
]

logger = logging.getLogger(__name__)

# Bump when the exported graph changes (wrapper, exporter options, optimizer settings): invalidates every cache.
EXPORT_FORMAT = 2
KINDS = ('encoder', 'qa')
_INPUTS = {
    'encoder': ('input_ids', 'attention_mask'),
    'qa': ('input_ids', 'attention_mask', 'token_type_ids'),
}
_OUTPUTS = {'encoder': ('last_hidden_state',), 'qa': ('start_logits', 'end_logits')}
_WEIGHT_PATTERNS = ('config.json', '*.safetensors', '*.safetensors.index.json', 'pytorch_model*.bin')


@dataclass(frozen=True)
class ExportInfo:
    """A usable exported model: ``path`` to load, and how it came to be."""

    path: Path
    kind: str
    model_dir: Path
    fingerprint: str
    quantized: bool
    optimized: bool
    exporter: str
    fused_ops: Dict[str, int]
    exported_now: bool  # False: taken from the cache
    export_seconds: float  # of the export that produced the file (0 if unknown)


# --------------------------------------------------------------------------------------------- cache bookkeeping
def _site_roots() -> List[Path]:
    roots = set()
    for key in ('purelib', 'platlib'):
        with contextlib.suppress(Exception):
            roots.add(Path(sysconfig.get_paths()[key]).resolve())
    with contextlib.suppress(Exception):
        roots.update(Path(p).resolve() for p in site.getsitepackages())
    return sorted(roots)


def _is_read_only_checkpoint(model_dir: Path) -> bool:
    if model_dir == base_model_dir().resolve():
        return True
    if any(model_dir.is_relative_to(root) for root in _site_roots()):
        return True
    return not os.access(model_dir, os.W_OK | os.X_OK)


def onnx_cache_dir(model: Optional[PathLike]) -> Path:
    """Where the ONNX exports of checkpoint ``model`` live (see the module docstring). Not created here."""
    model_dir = resolve_model_path(model).resolve()
    key = hashlib.sha256(str(model_dir).encode()).hexdigest()[:16]
    if os.environ.get('COVIDQA_ONNX_CACHE') or _is_read_only_checkpoint(model_dir):
        return onnx_cache_root() / key
    return model_dir / 'onnx'


def _weight_files(model_dir: Path) -> List[Path]:
    files: Set[Path] = set()
    for pattern in _WEIGHT_PATTERNS:
        files.update(p for p in model_dir.glob(pattern) if p.is_file())
    return sorted(files)


def checkpoint_fingerprint(model: Optional[PathLike], kind: str = 'encoder', quantize: bool = False,
                           optimize: bool = False) -> str:
    """A hex digest that changes whenever the checkpoint's weights/config or the export options change.

    Uses path, size, mtime and inode of ``config.json`` and the weight files (no hashing of 100 MB files on every
    start); ``save_pretrained`` and :func:`covidqa.models.loading.atomic_save_pretrained` always produce new mtimes.
    """
    _check_kind(kind)
    model_dir = resolve_model_path(model).resolve()
    files = _weight_files(model_dir)
    if not any(f.name != 'config.json' for f in files):
        raise FileNotFoundError(f'no weight file (*.safetensors / pytorch_model*.bin) in {model_dir}')
    h = hashlib.sha256()
    h.update(json.dumps({'format': EXPORT_FORMAT, 'kind': kind, 'quantize': bool(quantize),
                         'optimize': bool(optimize), 'path': str(model_dir)}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f'{f.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n'.encode())
    return h.hexdigest()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')


def _file_stem(kind: str, quantize: bool, optimize: bool) -> str:
    return kind + ('.fused' if optimize else '') + ('.int8' if quantize else '')


def _write_json_atomic(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True), mode=0o644)


def _read_meta(path: Path) -> Optional[dict]:
    try:
        meta = json.loads(path.read_text())
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------- export
def _load_torch_model(model_dir: Path, kind: str):
    """The checkpoint as a torch module ``(inputs...) -> outputs`` with eager attention (fusable by ORT)."""
    import torch

    from covidqa.models.loading import load_encoder, load_qa_model

    model = load_encoder(model_dir) if kind == 'encoder' else load_qa_model(model_dir)
    with contextlib.suppress(Exception):  # eager attention exports to the MatMul/Softmax pattern ORT fuses
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


def _torch_export(module, kind: str, target: Path) -> str:
    """Export ``module`` to ``target``; returns the exporter used ('torchscript' or 'dynamo')."""
    import warnings

    import torch

    inputs, outputs = _INPUTS[kind], _OUTPUTS[kind]
    args = _example_inputs(kind)
    axes = {name: {0: 'batch', 1: 'seq'} for name in inputs + outputs}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            torch.onnx.export(module, args, str(target), dynamo=False, input_names=list(inputs),
                              output_names=list(outputs), dynamic_axes=axes, opset_version=17,
                              do_constant_folding=True)
        return 'torchscript'
    except Exception as exc:  # the legacy exporter is deprecated: fall back to torch.export
        logger.warning('TorchScript ONNX export failed (%s); trying the dynamo exporter', exc)
    batch, seq = torch.export.Dim('batch', max=4096), torch.export.Dim('seq', min=2, max=4096)
    shapes = {name: {0: batch, 1: seq} for name in inputs}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(module, args, dynamo=True, input_names=list(inputs), output_names=list(outputs),
                                    dynamic_shapes=shapes, external_data=False)
    assert program is not None  # dynamo=True returns the ONNXProgram
    program.save(str(target), external_data=False)
    return 'dynamo'


def _optimize(source: Path, target: Path, config: dict) -> Dict[str, int]:
    """ORT transformer fusions (BERT); returns the fused-op counts (all zero: nothing recognised).

    The fused attention keeps the raw 2-D attention mask (not a "valid length" index), so any mask, not only right
    padding, gives the same result as torch.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions('bert')
    options.use_raw_attention_mask(True)
    heads = int(config.get('num_attention_heads', 0))
    hidden = int(config.get('hidden_size', 0))
    noisy = [logging.getLogger(name) for name in ('onnx_model', 'onnx_model_bert', 'fusion_base', 'fusion_utils')]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.WARNING)
    try:
        optimized = optimize_model(str(source), model_type='bert', num_heads=heads, hidden_size=hidden,
                                   optimization_options=options, opt_level=0)
        stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(target))
    finally:
        for lg, level in zip(noisy, levels):
            lg.setLevel(level)
    return stats


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel 7-bit weights: on COVID-QA paragraph retrieval (1338 questions) per-tensor int8 lost 1.6 points
    # of hit@1 against fp32, per-channel 0.6, per-channel + reduce_range 0.0; same speed (VNNI kernels).
    # DefaultTensorType: fused contrib ops (optimize=True) defeat shape inference, so say what the tensors are.
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


def _export(model_dir: Path, kind: str, quantize: bool, optimize: bool, directory: Path, stem: str) -> dict:
    """Export into ``directory/<stem>.onnx`` atomically. Returns the metadata to store."""
    started = time.perf_counter()
    config = json.loads((model_dir / 'config.json').read_text())
    tmp_dir = Path(tempfile.mkdtemp(prefix=f'.{stem}.tmp-', dir=directory))
    try:
        raw = tmp_dir / 'raw.onnx'
        module = _load_torch_model(model_dir, kind)
        exporter = _torch_export(module, kind, raw)
        del module
        current, fused = raw, {}
        if optimize:
            try:
                fused = _optimize(raw, tmp_dir / 'opt.onnx', config)
                current = tmp_dir / 'opt.onnx'
            except Exception as exc:  # an unfused graph is slower, never wrong
                logger.warning('ONNX Runtime transformer optimizer failed on %s (%s); using the plain export', raw, exc)
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
    return {'exporter': exporter, 'fused_ops': fused, 'export_seconds': round(time.perf_counter() - started, 3),
            'size': final.stat().st_size}


def export_paths(model_dir: str, kind: str, quantize: bool, optimize: bool, directory: str, stem: str) -> dict:
    """:func:`_export` with JSON-able arguments (for :func:`covidqa.runtime.child.with_torch`); the caller holds the lock."""
    return _export(Path(model_dir), kind, quantize, optimize, Path(directory), stem)


def _export_with_torch(model_dir: Path, kind: str, quantize: bool, optimize: bool, directory: Path,
                       stem: str) -> dict:
    """The export needs torch: here, or in a child process when this one serves without torch
    (:mod:`covidqa.runtime.torch_gate`; the child exits when done, so the torch model's memory goes with it)."""
    from covidqa.runtime.child import with_torch

    return with_torch(EXPORT_ONNX,
                      {'model_dir': str(model_dir), 'kind': kind, 'quantize': quantize, 'optimize': optimize,
                       'directory': str(directory), 'stem': stem})


def _clean_stale_temporaries(directory: Path) -> None:
    """Remove temporaries of crashed exports (called under the lock, so none is in use)."""
    for leftover in directory.glob('.*.tmp-*'):
        with contextlib.suppress(OSError):
            if leftover.is_dir():
                for f in leftover.glob('*'):
                    f.unlink()
                leftover.rmdir()
            else:
                leftover.unlink()


# --------------------------------------------------------------------------------------------- sessions
def make_session(path: PathLike, num_threads: Optional[int] = None):
    """A CPU ``InferenceSession`` on the ``.onnx`` file ``path`` with all graph optimisations, ``num_threads``
    intra-op threads (``None``/0: ONNX Runtime's default) and idle threads that sleep instead of spinning."""
    import onnxruntime as ort

    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 0):
        raise ValueError(f'num_threads must be None or an integer >= 0, got {num_threads!r}')
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = num_threads or 0
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(str(path), sess_options=options, providers=['CPUExecutionProvider'])


def _session_matches(session, kind: str) -> None:
    names = tuple(i.name for i in session.get_inputs())
    outs = tuple(o.name for o in session.get_outputs())
    if names != _INPUTS[kind] or outs != _OUTPUTS[kind]:
        raise ValueError(f'exported graph has inputs {names} / outputs {outs}, expected {_INPUTS[kind]} / '
                         f'{_OUTPUTS[kind]}')


def ensure_exported(model: Optional[PathLike], kind: str = 'encoder', quantize: bool = False, optimize: bool = False,
                    num_threads: Optional[int] = None):
    """The cached export of ``model`` (exporting first when missing, stale or unreadable) and a session on it.

    Returns ``(ExportInfo, InferenceSession)``. Raises ``FileNotFoundError`` when ``model`` is not a checkpoint and
    ``RuntimeError`` naming the model when even a fresh export cannot be loaded.
    """
    _check_kind(kind)
    for attempt in range(3):
        model_dir = resolve_model_path(model).resolve()
        try:
            return _ensure_exported_once(model_dir, kind, quantize, optimize, num_threads)
        except FileNotFoundError:
            # the checkpoint directory was swapped under us (atomic_save_pretrained renames the old one away,
            # taking its onnx/ folder along): start over on the new one
            if attempt == 2 or not (model_dir / 'config.json').is_file():
                raise
            logger.warning('checkpoint %s changed during the ONNX export; exporting again', model_dir)
    raise AssertionError('unreachable')


def _ensure_exported_once(model_dir: Path, kind: str, quantize: bool, optimize: bool, num_threads: Optional[int]):
    directory = onnx_cache_dir(model_dir)
    stem = _file_stem(kind, quantize, optimize)
    onnx_path, meta_path = directory / f'{stem}.onnx', directory / f'{stem}.json'
    with file_lock(Path(directory) / '.lock'):
        fingerprint = checkpoint_fingerprint(model_dir, kind, quantize, optimize)
        meta = _read_meta(meta_path)
        reason = None
        if meta is None or not onnx_path.is_file():
            reason = 'no cached export'
        elif meta.get('fingerprint') != fingerprint:
            reason = 'checkpoint changed'
        elif meta.get('size') != onnx_path.stat().st_size:
            reason = 'cached file has the wrong size (truncated or replaced)'
        session = None
        if reason is None:
            try:
                session = make_session(onnx_path, num_threads)
                _session_matches(session, kind)
            except Exception as exc:
                session, reason = None, f'cached file unreadable ({type(exc).__name__}: {str(exc)[:200]})'
        exported_now = False
        if session is None:
            logger.info('exporting %s (%s) to ONNX: %s', model_dir, kind, reason)
            _clean_stale_temporaries(directory)
            with contextlib.suppress(FileNotFoundError):
                meta_path.unlink()  # never leave metadata that vouches for a file being replaced
            meta = _export_with_torch(model_dir, kind, quantize, optimize, directory, stem)
            meta.update(fingerprint=fingerprint, kind=kind, quantized=quantize, optimized=optimize,
                        model_dir=str(model_dir), format=EXPORT_FORMAT, created=time.time())
            _write_json_atomic(meta_path, meta)
            exported_now = True
            try:
                session = make_session(onnx_path, num_threads)
                _session_matches(session, kind)
            except Exception as exc:
                raise RuntimeError(f'ONNX export of {model_dir} ({kind}) at {onnx_path} cannot be loaded: {exc}') \
                    from exc
    assert meta is not None  # read above (reason is None only then) or written by the export
    info = ExportInfo(path=onnx_path, kind=kind, model_dir=model_dir, fingerprint=fingerprint, quantized=quantize,
                      optimized=optimize, exporter=str(meta.get('exporter', '?')),
                      fused_ops=dict(meta.get('fused_ops') or {}), exported_now=exported_now,
                      export_seconds=float(meta.get('export_seconds') or 0.0))
    return info, session


# --------------------------------------------------------------------------------------------- runners
def _as_int64(name: str, array, ndim: int = 2) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=np.int64)
    if out.ndim != ndim or out.shape[0] == 0 or out.shape[1] == 0:
        raise ValueError(f'{name} must be a non-empty (batch, seq) array, got shape {out.shape}')
    return out


class _OnnxRunner:
    kind = ''

    """A session on the cached export of checkpoint ``model_dir``: fp32 unless ``quantize=True`` (int8),
    ``optimize=True`` for ONNX Runtime's fused transformer graph (see the module docstring)."""

    def __init__(self, model_dir: Optional[PathLike], num_threads: Optional[int] = None, quantize: bool = False,
                 optimize: bool = False):
        if not isinstance(quantize, bool) or not isinstance(optimize, bool):
            raise ValueError(f'quantize and optimize must be True or False, got {quantize!r} and {optimize!r}')
        self.quantize = quantize
        self.num_threads = num_threads
        self.info, self.session = ensure_exported(model_dir, self.kind, quantize=quantize, optimize=optimize,
                                                  num_threads=num_threads)
        self._output_names = list(_OUTPUTS[self.kind])

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


def export_info_dict(info: ExportInfo) -> dict:
    """JSON-friendly view of an :class:`ExportInfo`."""
    out = asdict(info)
    out['path'], out['model_dir'] = str(info.path), str(info.model_dir)
    return out
