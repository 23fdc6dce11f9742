"""The durable, append-only label store behind feedback-driven finetuning.

Two JSON-lines files under ``directory`` (default ``$COVIDQA_HOME/feedback``)::

    searches.jsonl   one line per searched query: its id, text and the matches shown (id + text), model version
                     (:mod:`covidqa.feedback.search_log`; in the Flow the gateway writes it, the finetuner reads it)
    labels.jsonl     one line per accepted feedback request: the query and its labeled matches

Every label line is written with one ``write`` followed by ``fsync`` before the call returns, so a label that was
acknowledged survives a crash or a restart (search-log lines are written the same way without the ``fsync``: they
are on the path of every /search). A crash in the middle of a write leaves at most one torn last line; it
was never acknowledged, is skipped when loading and cut off before the next append.

Feedback is checked against what was actually shown: the query must have been searched (its id recorded by
:meth:`FeedbackStore.record_search`) and every labeled document id must be one of the matches shown for it. The texts
used for training are the recorded ones, never text sent along with the feedback.

Labels are ``'accepted'`` (a good match) or ``'rejected'`` (a bad one). The log keeps every event; for training, the
latest label of a (query, document) pair wins, so a user can change their mind.

Example::

    store = FeedbackStore('workspace/feedback')
    store.record_search('q1', 'Can my dog get COVID?', [{'id': 'd1', 'text': 'Can pets catch it?'},
                                                        {'id': 'd2', 'text': 'How long does it live on steel?'}])
    store.add_feedback('q1', {'d1': 'accepted', 'd2': 'rejected'})
    store.counts()                          # {'positive': 1, 'negative': 1, 'queries': 1, ...}
    store.export('train.csv')               # query,document,label rows for `python -m covidqa.feedback.finetune fit`

CLI: ``python -m covidqa.feedback.store export --store DIR --out FILE.csv|FILE.jsonl`` and ``... counts --store DIR``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from covidqa.feedback.search_log import SearchLog, search_record
from covidqa.paths import PathLike, feedback_dir
from covidqa.runtime.atomic import atomic_write_text
from covidqa.runtime.jsonl_log import append_line, read_lines, repair_tail

LABELS = ('accepted', 'rejected')
SEARCHES_FILE = 'searches.jsonl'
LABELS_FILE = 'labels.jsonl'
EXPORT_FIELDS = ('query_id', 'query', 'document_id', 'document', 'label')


class FeedbackError(ValueError):
    """Feedback that cannot be accepted; the message names the problem."""


@dataclass
class TrainingExample:
    """One query with the documents a user accepted (``positives``) and rejected (``negatives``) for it."""

    query: str
    positives: List[str] = field(default_factory=list)
    negatives: List[str] = field(default_factory=list)


def _shown(search: Mapping) -> Dict[str, str]:
    """Document id -> text of the matches a search record shows."""
    return {m['id']: m['text'] for m in search['matches']}


class FeedbackStore:
    """Thread-safe label store; see the module docstring. ``max_searches`` bounds the searches kept in memory
    (oldest forgotten first; feedback for a forgotten search is refused like one never searched).

    The search log (:mod:`covidqa.feedback.search_log`) has one writer: this store when it records searches itself
    (``writes_searches``, the default), or, in the Flow, the gateway, with the finetuner's store only
    reading (``writes_searches=False``, also what a read-only use such as the CLI must pass: the writer cuts a
    torn last line, which could be a line the gateway is writing), reading the log's newer lines on every lookup."""

    def __init__(self, directory: Optional[PathLike] = None, max_searches: int = 200_000,
                 writes_searches: bool = True):
        self.directory = Path(directory) if directory else feedback_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_searches = max_searches
        self.search_log = SearchLog(self.searches_path, writer=writes_searches)
        self._lock = threading.RLock()
        self._searches: 'OrderedDict[str, dict]' = OrderedDict()
        self._labels: Dict[tuple, dict] = {}  # (query_id, doc_id) -> latest label record
        self._events = 0  # labels ever received (every labeled match of every request)
        self._requests = 0
        self._load()

    # ---- persistence -------------------------------------------------------------------------------------------
    @property
    def searches_path(self) -> Path:
        return self.directory / SEARCHES_FILE

    @property
    def labels_path(self) -> Path:
        return self.directory / LABELS_FILE

    def _load(self) -> None:
        repair_tail(self.labels_path)
        self._read_searches()
        for record in read_lines(self.labels_path)[0]:
            self._apply_labels(record)

    def _read_searches(self) -> None:
        """Remember the searches appended to the log since the last read (by this store or another process), a
        chunk at a time (the search memory stays bounded by ``max_searches`` while a long log is read)."""
        with self._lock:
            while True:
                records = self.search_log.read_new()
                if not records:
                    return
                for record in records:
                    self._remember_search(record)

    def _search(self, query_id: str) -> Optional[dict]:
        """The latest recorded search of ``query_id`` (a client may search the same id again), after reading the
        log's newer lines (one ``stat`` when there are none); None if there is none."""
        with self._lock:
            self._read_searches()
            return self._searches.get(query_id)

    # ---- searches ----------------------------------------------------------------------------------------------
    def _remember_search(self, record: dict) -> None:
        query_id = record.get('query_id')
        if not query_id:
            return
        self._searches[query_id] = record
        self._searches.move_to_end(query_id)
        while len(self._searches) > self.max_searches:
            self._searches.popitem(last=False)

    def record_search(self, query_id: str, query: str, matches: Sequence[Mapping], model_version: Optional[int] = None
                      ) -> None:
        """Remember that ``matches`` (each a mapping with ``id`` and ``text``) were shown for query ``query_id``."""
        if not query_id:
            raise FeedbackError('a searched query needs an id')
        record = search_record(query_id, query, matches, model_version)
        with self._lock:
            self.search_log.append(record)
            self._remember_search(record)

    def has_search(self, query_id: str) -> bool:
        return self._search(query_id) is not None

    def shown(self, query_id: str) -> Dict[str, str]:
        """Document id -> text of the matches shown for ``query_id`` (empty if never searched)."""
        record = self._search(query_id)
        return _shown(record) if record else {}

    # ---- labels ------------------------------------------------------------------------------------------------
    def _apply_labels(self, record: dict) -> None:
        query_id = record.get('query_id')
        for item in record.get('labels') or []:
            if item.get('label') in LABELS and item.get('id'):
                self._labels[(query_id, item['id'])] = {
                    'query_id': query_id, 'query': record.get('query', ''), 'document_id': item['id'],
                    'document': item.get('text', ''), 'label': item['label'],
                }
                self._events += 1
        self._requests += 1

    def validate(self, query_id: str, labels: Mapping[str, Optional[str]]) -> Dict[str, str]:
        """The labeled part of ``labels`` (document id -> label; ``None`` means unlabeled and is dropped), or a
        :class:`FeedbackError` naming what is wrong."""
        if not query_id:
            raise FeedbackError('feedback needs the id of the searched query')
        record = self._search(query_id)
        if record is None:
            raise FeedbackError(
                f'query id={query_id!r} was never searched (or is too old): search it first, then label its matches'
            )
        bad = {doc_id: label for doc_id, label in labels.items() if label is not None and label not in LABELS}
        if bad:
            raise FeedbackError(f'query id={query_id!r}: invalid label(s) {bad}; a label is one of {list(LABELS)} '
                                f'(or null for unlabeled)')
        given = {str(doc_id): label for doc_id, label in labels.items() if label is not None}
        if not given:
            raise FeedbackError(f"query id={query_id!r}: no labels: set match.label to 'accepted' or 'rejected' on "
                                f'at least one match')
        shown = {m['id'] for m in record['matches']}
        unknown = sorted(set(given) - shown)
        if unknown:
            raise FeedbackError(f'query id={query_id!r}: unknown document id(s) {unknown[:10]}: only the '
                                f'{len(shown)} matches shown for this query can be labeled')
        return given

    def add_feedback(self, query_id: str, labels: Mapping[str, Optional[str]]) -> dict:
        """Validate and durably append the labels of one query. Returns ``{'accepted': n, 'rejected': m}``."""
        with self._lock:
            given = self.validate(query_id, labels)
            searched = self._searches[query_id]  # the record validate() just checked (not re-read from the log)
            shown = _shown(searched)
            record = {
                'query_id': query_id,
                'query': searched['query'],
                'labels': [{'id': doc_id, 'text': shown[doc_id], 'label': label} for doc_id, label in given.items()],
                'ts': time.time(),
            }
            append_line(self.labels_path, record)
            self._apply_labels(record)
        values = list(given.values())
        return {'accepted': values.count('accepted'), 'rejected': values.count('rejected')}

    # ---- reading -----------------------------------------------------------------------------------------------
    @property
    def total_labels(self) -> int:
        """Labels ever received (a relabeled pair counts twice): the clock of 'train after every N new labels'."""
        with self._lock:
            return self._events

    def counts(self) -> dict:
        with self._lock:
            current = list(self._labels.values())
            return {
                'positive': sum(r['label'] == 'accepted' for r in current),
                'negative': sum(r['label'] == 'rejected' for r in current),
                'queries': len({r['query_id'] for r in current}),
                'events': self._events,
                'requests': self._requests,
                'searches': len(self._searches),  # read from the log so far
            }

    def rows(self) -> List[dict]:
        """Current labels (latest per query/document pair) as rows with :data:`EXPORT_FIELDS`, in arrival order."""
        with self._lock:
            return [dict(r) for r in self._labels.values()]

    def examples(self) -> List[TrainingExample]:
        return examples_from_rows(self.rows())

    def export(self, path: PathLike, fmt: Optional[str] = None) -> int:
        """Write the current labels to ``path`` (CSV or JSONL, by ``fmt`` or the file suffix), atomically.
        Returns the number of rows."""
        return write_rows(self.rows(), path, fmt)


def examples_from_rows(rows: Iterable[Mapping]) -> List[TrainingExample]:
    """Group ``query,document,label`` rows into one :class:`TrainingExample` per query text (labels accepted /
    rejected, also 1/0/-1, true/false, positive/negative). The latest label of a (query, document) pair wins."""
    latest: 'OrderedDict[tuple, bool]' = OrderedDict()
    for row in rows:
        query = str(row.get('query') or '').strip()
        document = str(row.get('document') or '').strip()
        if not query or not document:
            continue
        key = (query, document)
        latest.pop(key, None)
        latest[key] = _is_positive(row.get('label'))
    grouped: 'OrderedDict[str, TrainingExample]' = OrderedDict()
    for (query, document), positive in latest.items():
        example = grouped.setdefault(query, TrainingExample(query))
        (example.positives if positive else example.negatives).append(document)
    return list(grouped.values())


def _is_positive(label) -> bool:
    text = str(label).strip().lower()
    if text in ('accepted', 'positive', 'pos', '1', '1.0', 'true', 'yes'):
        return True
    if text in ('rejected', 'negative', 'neg', '0', '0.0', '-1', '-1.0', 'false', 'no'):
        return False
    raise ValueError(f'unknown label {label!r}: use accepted/rejected (or 1/0, 1/-1)')


def _format_of(path: Path, fmt: Optional[str]) -> str:
    fmt = (fmt or path.suffix.lstrip('.')).lower()
    if fmt not in ('csv', 'jsonl'):
        raise ValueError(f'unknown format {fmt!r} for {path}: use .csv or .jsonl')
    return fmt


def write_rows(rows: Sequence[Mapping], path: PathLike, fmt: Optional[str] = None) -> int:
    path = Path(path)
    fmt = _format_of(path, fmt)
    buffer = io.StringIO()
    if fmt == 'csv':
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            buffer.write(json.dumps({k: row.get(k) for k in EXPORT_FIELDS}, ensure_ascii=False) + '\n')
    atomic_write_text(path, buffer.getvalue())
    return len(rows)


def read_rows(path: PathLike, fmt: Optional[str] = None) -> List[dict]:
    """Rows of a training-set file written by :func:`write_rows` (CSV needs the columns query, document, label)."""
    path = Path(path)
    fmt = _format_of(path, fmt)
    if fmt == 'csv':
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            missing = {'query', 'document', 'label'} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f'{path}: missing column(s) {sorted(missing)}; need query, document, label')
            return list(reader)
    rows = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f'{path}:{number}: not JSON: {exc}') from None
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m covidqa.feedback.store', description='Inspect or export the label store')
    sub = parser.add_subparsers(dest='command', required=True)
    export = sub.add_parser('export', help='write the current labels as a training set (CSV or JSONL)')
    export.add_argument('--store', default=None, help='label store directory (default $COVIDQA_HOME/feedback)')
    export.add_argument('--out', required=True, help='output file, .csv or .jsonl')
    counts = sub.add_parser('counts', help='print label counts as JSON')
    counts.add_argument('--store', default=None)
    args = parser.parse_args(argv)
    store = FeedbackStore(args.store, writes_searches=False)
    if args.command == 'export':
        n = store.export(args.out)
        print(json.dumps({'rows': n, 'out': str(Path(args.out).resolve())}))
    else:
        print(json.dumps(store.counts()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
