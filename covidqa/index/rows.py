"""How documents become rows of the store's tables and back (:mod:`covidqa.index.schema`), inside the transactions
and under the lock that :class:`covidqa.index.store.DocumentStore` holds: writes (new labels, the replaced ones marked
dead), reads by id or label, and the BM25 ranking of a question's words."""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Collection, Dict, List, Optional, Sequence, Set, Tuple, cast

import numpy as np
from docarray import DocList

from covidqa.docs import StoredDoc
from covidqa.index.hybrid import fts_query
from covidqa.index.schema import ANSWER_WEIGHT, FIELDS, KIND_SQL, chunks, meta, set_meta


class StaleVersion(Exception):
    """Vectors of embedder version ``given`` met a store whose vectors are of version ``version``: embed again."""

    def __init__(self, given: int, version: int):
        super().__init__(f'vectors of embedder v{given} do not match the store, which holds v{version}')
        self.given, self.version = given, version


def write(db: sqlite3.Connection, docs: DocList[StoredDoc], check_version: bool = True) -> int:
    """Inside an open write transaction: store ``docs`` (new labels; replaced ones go to ``dead``). Returns
    how many ids were new."""
    info = meta(db)
    latest: Dict[str, StoredDoc] = {str(d.id): d for d in docs}  # an id given twice: the last one wins
    if check_version:
        stale = {d.model_version for d in latest.values()} - {info['version']}
        if stale:
            raise StaleVersion(min(stale), info['version'])
    rows = [np.asarray(d.embedding, dtype=np.float32).reshape(-1) for d in latest.values()]
    dims = sorted({len(r) for r in rows})
    dim = info['dim'] or dims[0]
    if dims != [dim] or dim == 0:
        raise ValueError(f'document vectors must all have {dim} dimensions (the store\'s), got {dims}')
    old = labels_of(db, list(latest))
    seq = info['seq'] + len(latest)
    kill(db, list(old.values()), seq)
    label = info['seq']
    doc_rows, vector_rows = [], []
    for doc, vector in zip(latest.values(), rows):
        label += 1
        fields = {f: getattr(doc, f) for f in FIELDS if getattr(doc, f) is not None}
        doc_rows.append((label, doc.id, doc.text or '', json.dumps(fields)))
        vector_rows.append((label, doc.model_version, vector.tobytes()))
    db.executemany('INSERT INTO docs (label, id, text, fields) VALUES (?, ?, ?, ?)', doc_rows)
    db.executemany('INSERT INTO vectors (label, version, vector) VALUES (?, ?, ?)', vector_rows)
    new = len(latest) - len(old)
    set_meta(db, seq=seq, count=info['count'] + new, dim=dim)
    return new

def labels_of(db: sqlite3.Connection, ids: Sequence[str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for part in chunks(ids):
        out.update(db.execute(f'SELECT id, label FROM docs WHERE id IN ({",".join("?" * len(part))})',
                                    list(part)).fetchall())
    return out

def kill(db: sqlite3.Connection, labels: List[int], seq: int) -> None:
    for part in chunks(labels):
        marks = ','.join('?' * len(part))
        db.execute(f'DELETE FROM docs WHERE label IN ({marks})', list(part))
        db.execute(f'DELETE FROM vectors WHERE label IN ({marks})', list(part))
    db.executemany('INSERT INTO dead (label, seq) VALUES (?, ?)', [(label, seq) for label in labels])


def read_docs(db: sqlite3.Connection, column: str, keys: Sequence) -> Dict:
    """``key -> StoredDoc`` for the documents whose ``column`` (``id`` or ``label``) is in ``keys``; the vector
    is that of the store's version (another version's only for documents that have none of it yet)."""
    out: Dict = {}
    version = meta(db)['version']
    for part in chunks(list(keys)):
        rows = db.execute(
            f'SELECT d.{column}, d.id, d.text, d.fields, v.version, v.vector FROM docs d '
            f'JOIN vectors v ON v.label = d.label WHERE d.{column} IN ({",".join("?" * len(part))}) '
            f'ORDER BY v.version = ?', [*part, version]).fetchall()
        for key, doc_id, text, fields, vector_version, vector in rows:  # the store's version comes last: wins
            embedding = cast(Any, np.frombuffer(vector, dtype=np.float32).copy())
            out[key] = StoredDoc(id=doc_id, text=text, model_version=vector_version, embedding=embedding,
                                 **json.loads(fields))
    return out


def kinds_of_labels(db: sqlite3.Connection, labels: Sequence[int]) -> Dict[int, str]:
    """``label -> kind`` (:data:`KIND_SQL`) of those of ``labels`` still stored."""
    out: Dict[int, str] = {}
    for part in chunks(list(labels)):
        out.update(db.execute(f'SELECT label, {KIND_SQL.format(row="d")} FROM docs d '
                              f'WHERE label IN ({",".join("?" * len(part))})', list(part)).fetchall())
    return out


def count_of_kinds(db: sqlite3.Connection, kinds: Collection[str]) -> int:
    """How many stored documents are of one of ``kinds`` (:data:`KIND_SQL`)."""
    wanted = sorted(kinds)
    return int(db.execute(f'SELECT count(*) FROM docs d WHERE {KIND_SQL.format(row="d")} '
                          f'IN ({",".join("?" * len(wanted))})', wanted).fetchone()[0])


def ids_of_documents(db: sqlite3.Connection, document_ids: Sequence[str]) -> Tuple[List[str], Set[str]]:
    """``(ids, matched)``: the ids of the stored documents that are, or were cut from (``parent_id``), one of
    ``document_ids``, in storage order, and those of ``document_ids`` that matched any."""
    out: List[str] = []
    matched: Set[str] = set()
    for part in chunks(list(document_ids)):
        marks = ",".join("?" * len(part))
        for doc_id, parent in db.execute(
                f"SELECT id, json_extract(fields, '$.parent_id') FROM docs WHERE id IN ({marks}) "
                f"OR json_extract(fields, '$.parent_id') IN ({marks}) ORDER BY label", [*part, *part]):
            out.append(doc_id)
            matched.update({doc_id, parent} & set(part))
    return list(dict.fromkeys(out)), matched


def lexical_rank(db: sqlite3.Connection, text: str, limit: int,
                 kinds: Optional[Collection[str]] = None) -> List[Tuple[int, float]]:
    """``(label, BM25)`` of the ``limit`` best documents for the words of ``text`` (FTS5's ``bm25()``,
    k1 1.2, b 0.75, Porter stems), best first; only documents of ``kinds`` when given (:data:`KIND_SQL`)."""
    query = fts_query(text)
    if query is None:
        return []
    if kinds is None:
        rows = db.execute('SELECT rowid, -bm25(lexical, 1.0, ?) AS score FROM lexical WHERE lexical MATCH ? '
                          'ORDER BY score DESC LIMIT ?', (ANSWER_WEIGHT, query, limit)).fetchall()
    else:
        wanted = sorted(kinds)
        rows = db.execute(f'SELECT lexical.rowid, -bm25(lexical, 1.0, ?) AS score FROM lexical JOIN docs d '
                          f'ON d.label = lexical.rowid WHERE lexical MATCH ? AND {KIND_SQL.format(row="d")} '
                          f'IN ({",".join("?" * len(wanted))}) ORDER BY score DESC LIMIT ?',
                          (ANSWER_WEIGHT, query, *wanted, limit)).fetchall()
    return [(int(label), float(score)) for label, score in rows]
