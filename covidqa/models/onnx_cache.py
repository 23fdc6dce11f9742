"""The ONNX export cache: where a checkpoint's exports live, when they are stale, and getting a usable one.

Place (:func:`onnx_cache_dir`): ``<model_dir>/onnx/`` next to a writable checkpoint (a replaced checkpoint directory
takes its cache with it); ``$COVIDQA_HOME/onnx-cache/<hash of the path>/`` for the packaged base model (it lives in
site-packages) or any read-only checkpoint; ``$COVIDQA_ONNX_CACHE`` overrides that root for every checkpoint.
Files: ``<kind>[.int8].onnx`` and its metadata ``<kind>[.int8].json``.

Staleness (:func:`checkpoint_fingerprint`): each entry records the fingerprint of its checkpoint (path, and size,
mtime and inode of ``config.json`` and the weight files, plus the export options and
:data:`~covidqa.models.onnx_export.EXPORT_FORMAT`); when the checkpoint changes (feedback training, ``/qa/train``) the
next load exports again.

:func:`ensure_exported` returns ``(ExportInfo, InferenceSession)`` for the cached export, exporting first when it is
missing, stale, truncated or unreadable. It works under a file lock in the cache directory, so concurrent Executors
never read a half-written model; the export runs in this process when torch may be imported here, else in a child
process that exits when done (:func:`covidqa.runtime.child.with_torch`, job ``export-onnx``).

Example::

    info, session = ensure_exported('base', 'encoder', quantize=True)
    info.path, info.exported_now        # (.../onnx-cache/<hash>/encoder.int8.onnx, False when it was cached)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import site
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, List, Optional, Set, Tuple

from covidqa.jobs import EXPORT_ONNX
from covidqa.models.loading import base_model_dir, resolve_model_path
from covidqa.models.onnx_export import EXPORT_FORMAT, check_kind
from covidqa.models.onnx_session import check_graph, make_session
from covidqa.paths import PathLike, onnx_cache_root
from covidqa.runtime.atomic import atomic_write_text
from covidqa.runtime.locks import file_lock

__all__ = ['ExportInfo', 'checkpoint_fingerprint', 'ensure_exported', 'export_info_dict', 'onnx_cache_dir']

logger = logging.getLogger(__name__)
_WEIGHT_PATTERNS = ('config.json', '*.safetensors', '*.safetensors.index.json', 'pytorch_model*.bin')


@dataclass(frozen=True)
class ExportInfo:
    """A usable exported model: ``path`` to load, its ``kind``, checkpoint and fingerprint, whether it is int8,
    whether this call exported it (``False``: taken from the cache) and the seconds its export took (0 if unknown)."""

    path: Path
    kind: str
    model_dir: Path
    fingerprint: str
    quantized: bool
    exported_now: bool
    export_seconds: float


def export_info_dict(info: ExportInfo) -> dict:
    """JSON-friendly view of an :class:`ExportInfo` (paths as strings)."""
    out = asdict(info)
    out['path'], out['model_dir'] = str(info.path), str(info.model_dir)
    return out


# --------------------------------------------------------------------------------------------- place and staleness
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


def checkpoint_fingerprint(model: Optional[PathLike], kind: str = 'encoder', quantize: bool = False) -> str:
    """A hex digest that changes whenever the checkpoint's weights/config or the export options change.

    Uses path, size, mtime and inode of ``config.json`` and the weight files (no hashing of 100 MB files on every
    start); ``save_pretrained`` and :func:`covidqa.models.loading.atomic_save_pretrained` always produce new mtimes.
    Raises ``ValueError`` for an unknown ``kind`` and ``FileNotFoundError`` when the checkpoint has no weight file.
    """
    check_kind(kind)
    model_dir = resolve_model_path(model).resolve()
    files = _weight_files(model_dir)
    if not any(f.name != 'config.json' for f in files):
        raise FileNotFoundError(f'no weight file (*.safetensors / pytorch_model*.bin) in {model_dir}')
    h = hashlib.sha256()
    h.update(json.dumps({'format': EXPORT_FORMAT, 'kind': kind, 'quantize': bool(quantize), 'path': str(model_dir)},
                        sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f'{f.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n'.encode())
    return h.hexdigest()


def _read_meta(path: Path) -> Optional[dict]:
    try:
        meta = json.loads(path.read_text())
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


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


# --------------------------------------------------------------------------------------------- a usable export
def _export_with_torch(model_dir: Path, kind: str, quantize: bool, directory: Path, stem: str) -> dict:
    """The export needs torch: here, or in a child process when this one serves without torch
    (:mod:`covidqa.runtime.torch_gate`; the child exits when done, so the torch model's memory goes with it)."""
    from covidqa.runtime.child import with_torch

    return with_torch(EXPORT_ONNX, {'model_dir': str(model_dir), 'kind': kind, 'quantize': quantize,
                                    'directory': str(directory), 'stem': stem})


def ensure_exported(model: Optional[PathLike], kind: str = 'encoder', quantize: bool = False,
                    num_threads: Optional[int] = None) -> Tuple[ExportInfo, Any]:
    """The cached export of ``model`` (exporting first when missing, stale or unreadable) and a session on it.

    Returns ``(ExportInfo, InferenceSession)``. Raises ``ValueError`` for an unknown ``kind``,
    ``FileNotFoundError`` when ``model`` is not a checkpoint and ``RuntimeError`` naming the model when even a fresh
    export cannot be loaded.
    """
    check_kind(kind)
    for attempt in range(3):
        model_dir = resolve_model_path(model).resolve()
        try:
            return _ensure_exported_once(model_dir, kind, quantize, num_threads)
        except FileNotFoundError:
            # the checkpoint directory was swapped under us (atomic_save_pretrained renames the old one away,
            # taking its onnx/ folder along): start over on the new one
            if attempt == 2 or not (model_dir / 'config.json').is_file():
                raise
            logger.warning('checkpoint %s changed during the ONNX export; exporting again', model_dir)
    raise AssertionError('unreachable')


def _ensure_exported_once(model_dir: Path, kind: str, quantize: bool,
                          num_threads: Optional[int]) -> Tuple[ExportInfo, Any]:
    directory = onnx_cache_dir(model_dir)
    stem = kind + ('.int8' if quantize else '')
    onnx_path, meta_path = directory / f'{stem}.onnx', directory / f'{stem}.json'
    with file_lock(Path(directory) / '.lock'):
        fingerprint = checkpoint_fingerprint(model_dir, kind, quantize)
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
                check_graph(session, kind)
            except Exception as exc:
                session, reason = None, f'cached file unreadable ({type(exc).__name__}: {str(exc)[:200]})'
        exported_now = False
        if session is None:
            logger.info('exporting %s (%s) to ONNX: %s', model_dir, kind, reason)
            _clean_stale_temporaries(directory)
            with contextlib.suppress(FileNotFoundError):
                meta_path.unlink()  # never leave metadata that vouches for a file being replaced
            meta = _export_with_torch(model_dir, kind, quantize, directory, stem)
            meta.update(fingerprint=fingerprint, kind=kind, quantized=quantize, model_dir=str(model_dir),
                        format=EXPORT_FORMAT, created=time.time())
            atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True), mode=0o644)
            exported_now = True
            try:
                session = make_session(onnx_path, num_threads)
                check_graph(session, kind)
            except Exception as exc:
                raise RuntimeError(f'ONNX export of {model_dir} ({kind}) at {onnx_path} cannot be loaded: {exc}') \
                    from exc
    assert meta is not None  # read above (reason is None only then) or written by the export
    info = ExportInfo(path=onnx_path, kind=kind, model_dir=model_dir, fingerprint=fingerprint, quantized=quantize,
                      exported_now=exported_now, export_seconds=float(meta.get('export_seconds') or 0.0))
    return info, session
