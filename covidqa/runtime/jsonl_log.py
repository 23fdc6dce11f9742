"""Append-only JSON-lines files that survive crashes: one record a line, written with one ``write``.

- :func:`append_line` / :func:`append_lines` append records with one ``write`` (``durable``: ``fsync`` before
  returning);
- :func:`repair_tail` cuts a torn last line (no trailing newline) left by a crash in the middle of a write; only the
  file's one writer calls it, when it opens the file;
- :func:`read_lines` (:func:`read_lines_from` on an open file) reads the complete lines from a byte offset and says
  where it stopped, so a reader can tail a file another process appends to (a line still being written is left for
  the next read).

Example::

    append_line(path, {'query_id': 'q1'}, durable=True)
    records, offset = read_lines(path)          # [{'query_id': 'q1'}], size of the file
    more, offset = read_lines(path, offset)     # only what was appended since
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, List, Sequence, Tuple


def append_line(path: Path, record: dict, durable: bool = True) -> None:
    """Append ``record`` as one JSON line; ``durable`` waits for the disk (``fsync``) before returning."""
    append_lines(path, [record], durable)


def append_lines(path: Path, records: Sequence[dict], durable: bool = True) -> int:
    """Append ``records``, a JSON line each, with one ``write``; ``durable``: ``fsync`` before returning. Returns
    the file's size after the write (0 when there was nothing to write). A write that fails half-way (disk full) is
    cut off again before the error is raised, so the next append starts on a line of its own (the file's one
    writer: no other process appends between)."""
    if not records:
        return 0
    line = ''.join(json.dumps(r, ensure_ascii=False, separators=(',', ':')) + '\n' for r in records).encode('utf-8')
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    return size + len(line)


def repair_tail(path: Path) -> None:
    """Cut a torn last line (no trailing newline) left by a crash in the middle of a write."""
    if not path.is_file():
        return
    with open(path, 'rb+') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b'\n':
            return
        # find the last newline; everything after it is the torn record
        block = 1 << 16
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            idx = chunk.rfind(b'\n')
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


READ_CHUNK = 8 << 20  # bytes a read_lines call reads at most (more when one line is longer)


def read_lines(path: Path, offset: int = 0, max_bytes: int = 0) -> Tuple[List[dict], int]:
    """The records of the complete lines of ``path`` from byte ``offset`` on, and the offset after the last complete
    line (where the next read starts). A torn or unfinished last line is not read; a line that is not a JSON object
    is skipped (the rest still counts). A file shorter than ``offset`` (replaced) is read from the start.
    ``max_bytes`` > 0 reads at most about that much (call again from the returned offset for the rest)."""
    try:
        with open(path, 'rb') as f:
            return read_lines_from(f, offset, max_bytes)
    except FileNotFoundError:
        return [], 0


def read_lines_from(f: BinaryIO, offset: int = 0, max_bytes: int = 0) -> Tuple[List[dict], int]:
    """:func:`read_lines` on a file already open for binary reading (a reader that keeps its file open goes on
    reading it after the file was renamed or deleted)."""
    size = os.fstat(f.fileno()).st_size
    if size < offset:
        offset = 0
    if size == offset:
        return [], offset
    f.seek(offset)
    data = f.read(min(size - offset, max_bytes) if max_bytes > 0 else size - offset)
    if max_bytes > 0 and b'\n' not in data and offset + len(data) < size:
        data += f.readline()  # one line longer than max_bytes
    end = data.rfind(b'\n') + 1
    records = []
    for raw in data[:end].splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end
