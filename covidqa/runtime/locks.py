"""One inter-process file lock for everything that shares a directory between processes (the store's snapshot and
re-embedding locks, the ONNX export cache).

Example::

    with file_lock(directory / 'snapshot.lock', blocking=False) as held:
        if held:
            ...  # no other process is writing a snapshot
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

from covidqa.paths import PathLike


@contextlib.contextmanager
def file_lock(path: PathLike, blocking: bool = True) -> Iterator[bool]:
    """An exclusive ``fcntl`` lock on the file ``path`` (created, with its folder, if missing), shared by every
    process that locks the same file. Yields True while held; with ``blocking`` off, yields False at once when
    another process holds it. Released when the block ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a+') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ['file_lock']
