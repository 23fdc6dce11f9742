"""Re-embedding a store with a new embedder version while it keeps serving (:meth:`covidqa.index.store.DocumentStore.reembed`).

1. On a connection of its own, every document that lacks a vector of the new version is embedded, batch by batch,
   each batch committed (an interrupted run resumes where it stopped); searches keep using the old vectors.
2. The new index is built over the new vectors (and, for HNSW, snapshotted so that other processes load it).
3. Under the store's lock (searches and writes wait): the documents written during the run are embedded, the
   version moves, and the new index is swapped in. Then the vectors and snapshots of other versions are dropped.
"""
from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable, Optional, Sequence, cast

import numpy as np

from covidqa.index import snapshots
from covidqa.index.schema import CHUNK, KIND_SQL, blob, set_meta
from covidqa.index.schema import meta as read_meta

log = logging.getLogger(__name__)


def missing_vectors(db: sqlite3.Connection, version: int, after: int, upto: int, limit: int):
    """``(label, text, kind)`` of the documents in ``(after, upto]`` without a vector of ``version``."""
    return db.execute(f'SELECT d.label, d.text, {KIND_SQL.format(row="d")} FROM docs d WHERE d.label > ? AND '
                      'd.label <= ? AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.label = d.label AND '
                      'v.version = ?) ORDER BY d.label LIMIT ?', (after, upto, version, limit)).fetchall()


def embed_stored(embedder: Any, texts: Sequence[str], kinds: Sequence[str]) -> np.ndarray:
    """The vectors of stored documents ``texts`` of ``kinds``, each embedded as the document it is (a literature
    passage longer: ``embed_documents`` of :class:`covidqa.embedding.encoder.Embedder`; an embedder with only
    ``embed_texts`` embeds all alike)."""
    if hasattr(embedder, 'embed_documents'):
        return np.asarray(embedder.embed_documents(list(texts), list(kinds)), dtype=np.float32)
    return np.asarray(embedder.embed_texts(list(texts)), dtype=np.float32)


def embed_rows(embedder: Any, rows) -> np.ndarray:
    """The vectors of ``rows`` (:func:`missing_vectors`): :func:`embed_stored`."""
    return embed_stored(embedder, [text for _, text, _ in rows], [kind for _, _, kind in rows])

# ``store``: the DocumentStore whose internals this module shares (it imports no store: the store imports it)
def reembed_store(store: Any, embedder: Any, version: int, batch_size: int,
              progress: Optional[Callable[[int, int], None]]) -> None:
    db = store._connect()
    try:
        meta = read_meta(db)
        start_seq, total = meta['seq'], meta['count']
        done, after = 0, 0
        while True:  # 1. embed what lacks a vector of `version`, batch by batch, committed as it goes
            rows = missing_vectors(db, version, after, start_seq, batch_size)
            if not rows:
                break
            vectors = embed_rows(embedder, rows)
            db.execute('BEGIN IMMEDIATE')
            # rows deleted meanwhile are skipped (their label is gone from docs)
            db.executemany('INSERT OR REPLACE INTO vectors (label, version, vector) '
                           'SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM docs WHERE label = ?)',
                           [(label, version, blob(v), label) for (label, _, _), v in zip(rows, vectors)])
            db.execute('COMMIT')
            after = rows[-1][0]
            done += len(rows)
            if progress:
                progress(done, total)
        dim = read_meta(db)['dim']
        fresh = None
        if dim:  # 2. the new index over the new vectors up to start_seq (nobody else sees it yet)
            fresh = store._new_ann(dim, total)
            store._apply_changes(fresh, version, 0, db=db, upto=start_seq)
            if store.kind == 'hnsw':  # lets other processes load it instead of rebuilding after the swap
                store._save(cast('snapshots.HnswIndexLike', fresh), version, start_seq, len(fresh))
        with store._lock:  # 3. reconcile and swap: searches and writes wait
            store._db.execute('BEGIN IMMEDIATE')
            try:
                meta = read_meta(store._db)
                # every label <= start_seq has its vector now (step 1 ran until none lacked one): only the
                # documents written during the run are left
                touched = missing_vectors(store._db, version, start_seq, meta['seq'], meta['seq'] + 1)
                if touched:
                    vectors = embed_rows(embedder, touched)
                    store._db.executemany('INSERT OR REPLACE INTO vectors (label, version, vector) '
                                         'VALUES (?, ?, ?)',
                                         [(label, version, blob(v)) for (label, _, _), v in zip(touched, vectors)])
                set_meta(store._db, version=version)
            except BaseException:
                store._db.execute('ROLLBACK')
                raise
            store._db.execute('COMMIT')
            if fresh is None:
                store._load_ann()
            else:
                old_part = [(label, v) for (label, _, _), v in zip(touched, vectors)
                            if label <= start_seq] if touched else []
                if old_part:
                    fresh.add(np.array([label for label, _ in old_part], np.int64),
                              np.stack([v for _, v in old_part]))
                store._ann, store._ann_version, store._ann_seq = fresh, version, start_seq
                store._apply_changes(fresh, version, start_seq)
        log.info('re-embedded %d documents with v%d (%d written during the run)', done, version,
                 len(touched))
        drop_other_versions(store, db, version)
    finally:
        db.close()

def drop_other_versions(store: Any, db: sqlite3.Connection, version: int) -> None:
    """Delete the vectors (and snapshots) of other versions than ``version``, in small transactions."""
    while True:
        db.execute('BEGIN IMMEDIATE')
        if read_meta(db)['version'] != version:
            db.execute('ROLLBACK')
            return
        gone = db.execute('DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors WHERE version < ? '
                          'OR version > ? LIMIT ?)', (version, version, CHUNK)).rowcount
        db.execute('COMMIT')
        if gone < CHUNK:
            break
    snapshots.drop_all_but(store.directory, version)
