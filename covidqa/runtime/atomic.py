"""Atomic file writes: a crash or an error while writing never leaves a half-written file where the old one was.

Every writer writes into a temporary sibling (same directory, so same filesystem), flushes it to disk and swaps it
in with ``os.replace``; on any error the temporary file is removed and the old file stays as it was.

- :func:`atomic_path`: a context manager yielding the temporary path, for writers that want a file name
  (``torch.save``, ``safetensors``, docarray's ``save_binary``);
- :func:`atomic_write_text` / :func:`atomic_write_bytes`: the common case.

Example::

    with atomic_path('index/docs.bin') as tmp:
        docs.save_binary(file=str(tmp))
    atomic_write_text('models/embedder/ACTIVE', '3\\n')
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from covidqa.paths import PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike, mode: Optional[int] = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, the file written there is
    fsynced and moved onto ``path`` (``mode``: its permissions, e.g. ``0o644``). Parent directories are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, 'rb') as handle:
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: PathLike, data: bytes, mode: Optional[int] = None) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, mode: Optional[int] = None, encoding: str = 'utf-8') -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation); returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding), mode)


__all__ = ['atomic_path', 'atomic_write_bytes', 'atomic_write_text']
