"""The search log: which matches were shown for which query, so that feedback can be checked against it.

``searches.jsonl`` in the label store's directory (:mod:`covidqa.feedback`), one JSON line per searched query::

    {"query_id": "...", "query": "How does it spread?", "matches": [{"id": "...", "text": "..."}, ...],
     "model_version": 0, "ts": 1764662400.0}

One process writes it: in the Flow, the gateway (:mod:`executors.gateway`), from every ``/search`` reply just before
it leaves for the client (:func:`search_records_of`, straight from the reply's protobuf: no decoding into docarray
documents and no Executor hop), so a search is in the log before its client can send feedback on it. The
finetuner's :class:`covidqa.feedback.FeedbackStore` reads it (:meth:`SearchLog.read_new` tails the file from where it
stopped). Lines are written without ``fsync`` (they are on the path of every search; a search lost to a crash only
means a later label for it gets a clear 'never searched' error); the writer cuts a torn last line when it opens the
log.

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
from typing import List, Mapping, Optional, Sequence

from covidqa.jsonl_log import READ_CHUNK, append_line, append_lines, read_lines, repair_tail


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


class SearchLog:
    """``searches.jsonl`` at ``path``: :meth:`append` (the one writer: ``writer=True`` repairs a torn tail on
    opening) and :meth:`read_new` (every reader keeps its own position). Thread-safe."""

    def __init__(self, path: Path, writer: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if writer:
            repair_tail(self.path)
        self._offset = 0
        self._file_id: Optional[tuple] = None  # (device, inode) of the file read so far
        self._lock = threading.Lock()

    def append(self, record: dict) -> None:
        append_line(self.path, record, durable=False)

    def append_all(self, records: List[dict]) -> None:
        """Append ``records`` with one write (a request's queries together)."""
        append_lines(self.path, records, durable=False)

    def read_new(self, max_bytes: int = READ_CHUNK) -> List[dict]:
        """The records appended since the last call (all of them on the first call), about ``max_bytes`` of the
        file at most: call again until it returns nothing. A file replaced since the last call (another inode, or
        the byte before the position no longer a line end) is read from its start."""
        with self._lock:
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                self._offset, self._file_id = 0, None
                return []
            if (stat.st_dev, stat.st_ino) != self._file_id or not self._at_line_start():
                self._offset, self._file_id = 0, (stat.st_dev, stat.st_ino)
            records, self._offset = read_lines(self.path, self._offset, max_bytes)
            return records

    def _at_line_start(self) -> bool:
        if self._offset == 0:
            return True
        try:
            with open(self.path, 'rb') as f:
                f.seek(self._offset - 1)
                return f.read(1) == b'\n'
        except OSError:
            return False
