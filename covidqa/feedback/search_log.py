"""The search log: which matches were shown for which query, so that feedback can be checked against it.

``searches.jsonl`` in the label store's directory (:mod:`covidqa.feedback.store`), one JSON line per searched query::

    {"query_id": "...", "query": "How does it spread?", "matches": [{"id": "...", "text": "..."}, ...],
     "model_version": 0, "ts": 1764662400.0}

One process writes it: in the Flow, the gateway (:mod:`executors.gateway.recording`), from every ``/search`` reply just before
it leaves for the client (:func:`search_records_of`, straight from the reply's protobuf: no decoding into docarray
documents and no Executor hop), so a search is in the log before its client can send feedback on it. The
finetuner's :class:`covidqa.feedback.store.FeedbackStore` reads it (:meth:`SearchLog.read_new` tails the file from where it
stopped). Lines are written without ``fsync`` (they are on the path of every search; a search lost to a crash only
means a later label for it gets a clear 'never searched' error); the writer cuts a torn last line when it opens the
log. The writer rotates the log past ``max_bytes`` (:class:`SearchLog`), so it takes at most about twice that on
disk.

Example::

    writer = SearchLog(path, writer=True)
    writer.append(search_record('q1', 'Can my dog get COVID?', [{'id': 'd1', 'text': 'Can pets catch it?'}], 0))
    SearchLog(path).read_new()        # [{'query_id': 'q1', ...}]; the next call returns only newer lines
    search_records_of(DocList[QADoc]([query]).to_protobuf())   # the records of a /search reply's documents
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import BinaryIO, List, Mapping, Optional, Sequence, Tuple

from covidqa.runtime.jsonl_log import READ_CHUNK, append_lines, read_lines_from, repair_tail


def search_record(query_id: str, query: str, matches: Sequence[Mapping], model_version: Optional[int] = None
                  ) -> dict:
    """One line of the log: ``matches`` are mappings with ``id`` and ``text`` (matches without an id are left out)."""
    return {
        'query_id': str(query_id),
        'query': str(query or ''),
        'matches': [{'id': str(m['id']), 'text': str(m.get('text') or '')} for m in matches if m.get('id')],
        'model_version': model_version,
        'ts': time.time(),
    }


def _field(doc_proto, name: str):
    """The value of a scalar field of a docarray ``DocProto`` (None when unset)."""
    node = doc_proto.data[name] if name in doc_proto.data else None
    kind = node.WhichOneof('content') if node is not None else None
    return getattr(node, kind) if kind in ('text', 'integer', 'float', 'boolean') else None


def search_records_of(doc_list_proto) -> List[dict]:
    """The log records of a ``/search`` reply: ``doc_list_proto`` is its documents as docarray's ``DocListProto``
    (what ``DocList[QADoc].to_protobuf()`` makes); each query with an id and matches gives one record (its id, text,
    ``model_version``, and the id and text of every match). Reads the protobuf fields directly (~20 us a query
    with 10 matches, where decoding into ``QADoc`` takes milliseconds)."""
    records = []
    for doc in doc_list_proto.docs:
        query_id = _field(doc, 'id')
        matches_node = doc.data['matches'] if 'matches' in doc.data else None
        if not query_id or matches_node is None or matches_node.WhichOneof('content') != 'doc_array':
            continue
        matches = [{'id': _field(m, 'id'), 'text': _field(m, 'text')} for m in matches_node.doc_array.docs]
        if not matches:
            continue
        version = _field(doc, 'model_version')
        records.append(search_record(query_id, _field(doc, 'text') or '', matches,
                                     int(version) if version is not None else None))
    return records


ROTATE_BYTES = 64 << 20  # the log is rotated past this size (~60k searches of 10 matches); 2 files are kept


def previous_log(path: Path) -> Path:
    """Where the log's previous file goes when it is rotated: ``searches.jsonl`` -> ``searches.jsonl.1``."""
    return path.with_name(path.name + '.1')


class SearchLog:
    """``searches.jsonl`` at ``path``: :meth:`append` / :meth:`append_all` (the one writer: ``writer=True`` repairs a
    torn tail on opening) and :meth:`read_new` (every reader keeps its own position). Thread-safe.

    Disk use is bounded: when an append takes the file past ``max_bytes`` (default :data:`ROTATE_BYTES`; 0 never
    rotates), the writer renames it to :func:`previous_log` (replacing the one before) and starts a new file, so the
    two files hold the last ``max_bytes``-``2 * max_bytes`` of searches. A reader keeps the file it reads open: when
    the log was rotated it first reads what is left of its old file (renamed or already replaced), then the
    previous file if it has not read it (a reader that fell one rotation behind), then the new file. A reader that
    starts reads the previous file, then the current one. Searches only in files rotated away before a reader got to
    them are lost to it (their feedback is refused as 'never searched')."""

    def __init__(self, path: Path, writer: bool = False, max_bytes: int = ROTATE_BYTES):
        self.path = Path(path)
        self.previous_path = previous_log(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if writer:
            repair_tail(self.path)
        self.max_bytes = max_bytes
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._file: Optional[BinaryIO] = None  # the file being read, kept open across renames
        self._file_id: Optional[tuple] = None  # its (device, inode)
        self._offset = 0
        self._queue: List[Tuple[BinaryIO, tuple]] = []  # files to read after it, oldest first

    # ---- writing -----------------------------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        self.append_all([record])

    def append_all(self, records: List[dict]) -> None:
        """Append ``records`` with one write (a request's queries together); rotate past ``max_bytes``."""
        if not records:
            return
        with self._write_lock:
            size = append_lines(self.path, records, durable=False)
            if self.max_bytes and size >= self.max_bytes:
                os.replace(self.path, self.previous_path)

    # ---- reading -----------------------------------------------------------------------------------------------
    def read_new(self, max_bytes: int = READ_CHUNK) -> List[dict]:
        """The records appended since the last call (all of them on the first call), about ``max_bytes`` of the
        log at most: call again until it returns nothing. A file replaced since the last call (another inode, or
        the byte before the position no longer a line end) is read from its start."""
        with self._lock:
            if self._file is None and not self._open(skip=None):
                return []
            while True:
                records = self._read_current(max_bytes)
                if records:
                    return records
                if self._queue:
                    self._next_file()
                    continue
                current = _file_id(self.path)
                if current is None or current == self._file_id:
                    return []
                # the log was rotated (or replaced): what the writer appended to the old file before renaming it
                # is still to be read; after that, the files that came after it
                records = self._read_current(max_bytes)
                if records:
                    return records
                old = self._file_id
                self._close_all()
                if not self._open(skip=old):
                    return []

    def _read_current(self, max_bytes: int) -> List[dict]:
        assert self._file is not None
        if self._offset and not self._at_line_start():
            self._offset = 0  # rewritten in place: read from its start
        records, self._offset = read_lines_from(self._file, self._offset, max_bytes)
        return records

    def _open(self, skip: Optional[tuple]) -> bool:
        """Open the previous file (unless it is ``skip``, the file just read to its end) and the current one, to
        be read in that order. False when there is no log yet."""
        current = _open_log(self.path)
        if current is None:
            return False
        previous = _open_log(self.previous_path)
        if previous is not None and previous[1] in (skip, current[1]):
            previous[0].close()  # read already, or the current file renamed between the two opens
            previous = None
        self._queue = ([previous] if previous else []) + [current]
        self._next_file()
        return True

    def _next_file(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._file_id = self._queue.pop(0)
        self._offset = 0

    def _close_all(self) -> None:
        for f, _ in ([(self._file, self._file_id)] if self._file else []) + self._queue:
            f.close()
        self._file, self._file_id, self._queue, self._offset = None, None, [], 0

    def close(self) -> None:
        with self._lock:
            self._close_all()

    def _at_line_start(self) -> bool:
        assert self._file is not None
        try:
            return os.pread(self._file.fileno(), 1, self._offset - 1) == b'\n'
        except OSError:
            return False


def _file_id(path: Path) -> Optional[tuple]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _open_log(path: Path) -> Optional[Tuple[BinaryIO, tuple]]:
    try:
        f = open(path, 'rb')
    except FileNotFoundError:
        return None
    stat = os.fstat(f.fileno())
    return f, (stat.st_dev, stat.st_ino)
