"""The store's SQLite schema and the small helpers every part of the store uses (:mod:`covidqa.index.store`).

Tables: ``docs`` (label, id, text, fields JSON), ``vectors`` (label, embedder version, float32 blob), ``dead``
(labels replaced or deleted, with the ``seq`` of that change), ``meta`` (seq, count, version, dim, lexical) and
``lexical``, the FTS5 (BM25) index of each document's text and answer, kept in step with ``docs`` by triggers.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Dict, Iterator, Sequence

import numpy as np

from covidqa.docs import STORED_FIELDS

DB_FILE = 'store.sqlite'
FIELDS = tuple(name for name in STORED_FIELDS if name != 'text')  # kept as JSON beside the text column
CHUNK = 20000  # rows read per fetch when rebuilding or catching up
SQL_VARS = 500  # ids per IN (...) query

# what the lexical (BM25) index holds of a document: its text and, for a FAQ entry, its answer (a column of its own,
# weighted ANSWER_WEIGHT against the text's 1 in BM25: a question's words in an entry's question count more)
LEXICAL_COLUMNS = "{row}.label, {row}.text, coalesce(json_extract({row}.fields, '$.answer'), '')"
ANSWER_WEIGHT = 0.5  # measured: benchmarks/RETRIEVAL_RESULTS.md
# a row's kind, as covidqa.docs.kind_of decides it: its stated kind, else 'faq' with an answer, else 'literature'
KIND_SQL = ("coalesce(nullif(json_extract({row}.fields, '$.kind'), ''), CASE WHEN "
            "coalesce(json_extract({row}.fields, '$.answer'), '') != '' THEN 'faq' ELSE 'literature' END)")
SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (label INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL,
                                 fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (label INTEGER NOT NULL, version INTEGER NOT NULL, vector BLOB NOT NULL,
                                    PRIMARY KEY (label, version));
CREATE INDEX IF NOT EXISTS vectors_version ON vectors (version);
CREATE TABLE IF NOT EXISTS dead (label INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS dead_seq ON dead (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS lexical USING fts5(text, answer,
                                                     tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS docs_lexical_insert AFTER INSERT ON docs BEGIN
  INSERT INTO lexical (rowid, text, answer) VALUES (""" + LEXICAL_COLUMNS.format(row='new') + """);
END;
CREATE TRIGGER IF NOT EXISTS docs_lexical_delete AFTER DELETE ON docs BEGIN
  DELETE FROM lexical WHERE rowid = old.label;
END;
"""




def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, ``synchronous`` FULL or NORMAL."""
    db = sqlite3.connect(path, timeout=120, isolation_level=None, check_same_thread=False)
    db.execute('PRAGMA journal_mode=WAL')
    db.execute(f'PRAGMA synchronous={synchronous}')
    return db


def create(db: sqlite3.Connection, version: int) -> None:
    """The tables (if missing) and their ``meta`` rows; a store written before the lexical index gets it once."""
    db.executescript(SCHEMA)
    db.execute('BEGIN IMMEDIATE')
    for key, value in (('seq', 0), ('count', 0), ('version', version), ('dim', 0), ('lexical', 0)):
        db.execute('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)', (key, value))
    if not meta(db)['lexical']:
        db.execute('DELETE FROM lexical')
        db.execute(f'INSERT INTO lexical (rowid, text, answer) SELECT {LEXICAL_COLUMNS.format(row="docs")} FROM docs')
        set_meta(db, lexical=1)
    db.execute('COMMIT')


def meta(db: sqlite3.Connection) -> Dict[str, int]:
    return dict(db.execute('SELECT key, value FROM meta').fetchall())


def set_meta(db: sqlite3.Connection, **values: int) -> None:
    db.executemany('UPDATE meta SET value = ? WHERE key = ?', [(v, k) for k, v in values.items()])


def chunks(items: Sequence, size: int = SQL_VARS) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def blob(vector) -> bytes:
    return np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()


def vectors_of(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b''.join(blobs), dtype=np.float32).reshape(len(blobs), dim)
