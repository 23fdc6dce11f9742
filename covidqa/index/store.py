"""The document store behind the indexer: SQLite (the source of truth, written incrementally) plus an in-memory
vector index (exact numpy, or hnswlib's HNSW graph for big collections), and re-embedding when the embedder version
moves.

Layout of a shard directory::

    store.sqlite (+ -wal, -shm)   documents, vectors (float32 blobs, one row per label and embedder version),
                                  the labels deleted or replaced (``dead``), ``meta`` (seq, count, version, dim)
                                  and ``lexical``, the FTS5 (BM25) index of each document's text and answer, kept in
                                  step with ``docs`` by triggers (so in the same transaction as every write)
    ann-v<version>-s<seq>-n<live>.hnsw   the latest HNSW snapshot (index: hnsw), covering changes up to <seq>
    snapshot.lock, reembed.lock   fcntl locks shared by every process that opens the directory

Every write (upsert, delete) is one SQLite transaction of its own size (WAL journal, ``synchronous=FULL``): once it
returns, it survives a crash. Every written document version gets a new integer *label*, the next value of the
change sequence ``seq``; a replaced or deleted label goes to ``dead`` with the ``seq`` of the change that killed it.
The in-memory index covers the changes up to some ``seq``; before each search it applies the later ones (a cheap
comparison when nothing changed), so several processes (jina replicas) can share one directory: writes go to the
shared SQLite, each process catches up on its own. A restart loads the latest snapshot of the current version and
replays the changes after it (no re-embedding); without a snapshot it rebuilds the index from the stored vectors.

Model versions: :meth:`DocumentStore.reembed` embeds every document with the new embedder in batches while the
store keeps serving the old version, writes the new vectors beside the old ones, builds the new index, then moves
``version`` and swaps the index in under one lock. ``search(..., version=v)`` refuses (:class:`StaleVersion`)
query vectors of another version than the index's, and ``upsert`` refuses documents embedded with another version
than the store's, so vectors of two models never meet.

Its parts: the tables (:mod:`covidqa.index.schema`), documents as rows (:mod:`covidqa.index.rows`), HNSW snapshots
(:mod:`covidqa.index.snapshots`), re-embedding (:mod:`covidqa.index.reembed`). The store ranks (:meth:`DocumentStore.dense`,
:meth:`DocumentStore.lexical`); fusing the two is :func:`covidqa.index.hybrid.search`, beside it.

No jina here; :mod:`executors.indexer` wraps it. Example::

    store = DocumentStore('workspace/index/shard-0', index='hnsw', embedder_factory=lambda v: Embedder(...))
    store.upsert(docs)                      # StoredDoc with embeddings; same id replaces
    matches = store.search(vectors, limit=10, version=store.version)   # list of (DocList[StoredDoc], scores)
    store.delete(['id1']); store.count(); store.missing(['id1', 'id2'])
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Collection, Dict, List, Optional, Protocol, Sequence, Tuple, cast

import numpy as np
from docarray import DocList

from covidqa.docs import StoredDoc
from covidqa.index import snapshots
from covidqa.index.ann import INDEX_KINDS, VectorIndex, load_hnsw, make_index
from covidqa.index.reembed import reembed_store
from covidqa.index.rows import (
    StaleVersion,
    count_of_kinds,
    ids_of_documents,
    kill,
    kinds_of_labels,
    labels_of,
    lexical_rank,
    read_docs,
    write,
)
from covidqa.index.schema import (
    CHUNK,
    DB_FILE,
    chunks,
    connect,
    create,
    meta,
    set_meta,
    vectors_of,
)
from covidqa.paths import PathLike
from covidqa.runtime.locks import file_lock

log = logging.getLogger(__name__)
KIND_SEARCH_DEPTH = 64  # a dense search for one kind looks at least this deep before it goes deeper
KINDS_REMEMBERED = 2_000_000  # labels whose kind a store keeps in memory (~100 bytes each)


class TextEmbedder(Protocol):
    """What ``embedder_factory`` returns (e.g. :class:`covidqa.embedding.encoder.Embedder`): texts -> one vector a row."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


class DocumentStore:
    """Thread-safe, multi-process store of :class:`StoredDoc` under ``directory``.

    :param embedder_factory: ``version -> object with embed_texts(texts)``; used only by :meth:`reembed`.
    :param index: ``'exact'`` (numpy; small collections) or ``'hnsw'`` (hnswlib; big ones).
    :param version: the embedder version of a new, empty store (an existing one keeps its own).
    :param M, ef_construction, ef_search: HNSW graph degree, build beam and query beam.
    :param num_threads: threads for HNSW batch inserts (rebuilds, re-embedding).
    :param snapshot_every: write an HNSW snapshot after this many applied changes (in a background thread).
    :param synchronous: SQLite ``synchronous`` pragma: ``'FULL'`` (survives power loss) or ``'NORMAL'`` (survives
        a process crash; a power loss may lose the last transactions).
    """

    def __init__(self, directory: PathLike, embedder_factory: Optional[Callable[[int], TextEmbedder]] = None,
                 index: str = 'exact', version: int = 0, M: int = 16, ef_construction: int = 100,
                 ef_search: int = 256, num_threads: int = 1, snapshot_every: int = 50000, synchronous: str = 'FULL'):
        if index not in INDEX_KINDS:
            raise ValueError(f'index must be one of {INDEX_KINDS}, not {index!r}')
        if synchronous.upper() not in ('FULL', 'NORMAL'):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_FILE
        self.embedder_factory = embedder_factory
        self.kind = index
        self.options = dict(M=M, ef_construction=ef_construction, ef_search=ef_search, num_threads=num_threads)
        self.snapshot_every = snapshot_every
        self.synchronous = synchronous.upper()
        self._lock = threading.RLock()
        self._db = self._connect()
        self._create(version)
        self._ann: Optional[VectorIndex] = None
        self._ann_version = version
        self._ann_seq = 0
        self._unsnapshotted = 0
        self._snapshot_thread: Optional[threading.Thread] = None
        self.reembedding = False
        self._kind_counts: Dict = {}  # {'seq': the change they count up to, (kind, ...): documents}
        self._label_kinds: Dict[int, str] = {}  # label -> kind, of the labels a search by kind has seen
        with self._lock:
            self._load_ann()

    # ---- SQLite (covidqa.index.schema) --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        return connect(self.path, self.synchronous)

    def _create(self, version: int) -> None:
        with self._lock:
            create(self._db, version)

    _meta = staticmethod(meta)
    _set_meta = staticmethod(set_meta)

    # ---- the in-memory index -----------------------------------------------------------------------------------
    def _new_ann(self, dim: int, capacity: int) -> VectorIndex:
        return make_index(self.kind, dim, capacity=capacity + 1024, **self.options)

    def _snapshots(self) -> List[Tuple[int, int, int, Path]]:
        return snapshots.listed(self.directory)

    def _load_ann(self) -> None:
        """(Re)build the in-memory index of the store's current version: the latest snapshot (hnsw) plus the later
        changes, or everything from the stored vectors. Call with the lock held."""
        meta = self._meta(self._db)
        version, dim = meta['version'], meta['dim']
        self._ann, self._ann_version, self._ann_seq = None, version, 0
        if dim == 0:
            return
        started = time.monotonic()
        for _ in range(3 if self.kind == 'hnsw' else 0):
            usable = [s for s in self._snapshots() if s[0] == version and s[1] <= meta['seq']]
            if not usable:
                break
            _, seq, live, path = usable[-1]
            try:
                self._ann, self._ann_seq = load_hnsw(path, dim, live, **self.options), seq
                break
            except (RuntimeError, OSError) as error:  # replaced by a newer one meanwhile, or damaged: list again
                log.warning('cannot load %s (%r)', path, error)
        if self._ann is None:
            self._ann = self._new_ann(dim, meta['count'])
        applied = self._apply_changes(self._ann, version, self._ann_seq)
        log.info('%s index of v%d ready: %d vectors (%d replayed) in %.1f s', self.kind, version, len(self._ann),
                 applied, time.monotonic() - started)
        if self.kind == 'hnsw' and applied >= min(self.snapshot_every, 10000):
            self._snapshot_soon(force=True)

    def _apply_changes(self, ann: VectorIndex, version: int, after: int, db: Optional[sqlite3.Connection] = None,
                       upto: Optional[int] = None) -> int:
        """Apply to ``ann`` (covering changes up to ``after``) the vectors of ``version`` written after ``after``
        (and up to ``upto``) and the deletions since; returns how many changes it applied. With ``db`` (another
        connection) it works on that and does not move ``self._ann_seq``."""
        own = db is None
        db = db or self._db
        db.execute('BEGIN')  # one read snapshot: seq, new vectors and deletions agree
        try:
            meta = self._meta(db)
            seq = meta['seq'] if upto is None else upto
            dim = meta['dim']
            dead = [label for (label,) in db.execute('SELECT label FROM dead WHERE seq > ? AND +label <= ?',
                                                     (after, after))]  # `+label`: by the seq index
            ann.remove(dead)
            applied = len(dead)
            # `+version`: walk the (label, version) key from `after`; on the version index SQLite would scan every
            # vector of the version (measured: 300 ms a catch-up at 100k documents)
            cursor = db.execute('SELECT label, vector FROM vectors WHERE label > ? AND label <= ? AND +version = ? '
                                'ORDER BY label', (after, seq, version))
            while True:
                rows = cursor.fetchmany(CHUNK)
                if not rows:
                    break
                ann.add(np.array([r[0] for r in rows], dtype=np.int64), vectors_of([r[1] for r in rows], dim))
                applied += len(rows)
        finally:
            db.execute('COMMIT')
        if own:
            self._ann_seq = seq
            self._unsnapshotted += applied
        return applied

    def _catch_up(self) -> None:
        """Bring the in-memory index up to the shared SQLite (writes of other processes, a version moved by another
        process). Call with the lock held; costs one small query when nothing changed."""
        meta = self._meta(self._db)
        if meta['version'] != self._ann_version or self._ann is None and meta['dim']:
            self._load_ann()
        elif meta['seq'] != self._ann_seq and self._ann is not None:
            self._apply_changes(self._ann, self._ann_version, self._ann_seq)
        if self.kind == 'hnsw' and self._unsnapshotted >= self.snapshot_every:
            self._snapshot_soon()

    # ---- snapshots (hnsw) --------------------------------------------------------------------------------------
    def _snapshot_soon(self, force: bool = False) -> None:
        if self._snapshot_thread is not None and self._snapshot_thread.is_alive():
            return
        self._snapshot_thread = threading.Thread(target=self.snapshot, kwargs={'force': force}, daemon=True,
                                                 name='store-snapshot')
        self._snapshot_thread.start()

    def snapshot(self, force: bool = False) -> Optional[Path]:
        """Save the HNSW graph (temp file, then rename) as ``ann-v<version>-s<seq>-n<live>.hnsw`` and remove the
        older snapshots of that version. Skipped (returns None) for the exact index, when nothing changed since
        the last one (unless ``force``), or when another process is writing one."""
        if self.kind != 'hnsw':
            return None
        with file_lock(self.directory / 'snapshot.lock', blocking=False) as held:
            if not held:
                return None
            with self._lock:
                ann = self._ann
                if ann is None or not (force or self._unsnapshotted):
                    return None
                version, seq, live = self._ann_version, self._ann_seq, len(ann)
                path = self._save(cast('snapshots.HnswIndexLike', ann), version, seq, live)
                self._unsnapshotted = 0
            return path

    def _save(self, ann: 'snapshots.HnswIndexLike', version: int, seq: int, live: int) -> Path:
        return snapshots.save(self.directory, ann, version, seq, live)

    # ---- reads -------------------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The embedder version of the vectors that searches use."""
        with self._lock:
            self._catch_up()
            return self._ann_version

    def count(self) -> int:
        with self._lock:
            return self._meta(self._db)['count']

    def ids(self) -> List[str]:
        """Every stored id, oldest write first (reads the whole table: not for a request path; see
        :meth:`missing`)."""
        with self._lock:
            return [i for (i,) in self._db.execute('SELECT id FROM docs ORDER BY label')]

    def missing(self, ids: Sequence[str]) -> List[str]:
        """The ids of ``ids`` that are not stored (in the order given, without repeats)."""
        wanted = list(dict.fromkeys(ids))
        found: set = set()
        with self._lock:
            for part in chunks(wanted):
                found.update(i for (i,) in self._db.execute(
                    f'SELECT id FROM docs WHERE id IN ({",".join("?" * len(part))})', list(part)))
        return [i for i in wanted if i not in found]

    def get(self, ids: Sequence[str]) -> DocList[StoredDoc]:
        """The stored documents of ``ids`` that exist, in the order given."""
        with self._lock:
            found = read_docs(self._db, 'id', list(dict.fromkeys(ids)))
        return DocList[StoredDoc]([found[i] for i in dict.fromkeys(ids) if i in found])

    def versions(self) -> Dict[int, int]:
        """How many stored vectors carry each embedder version (during a re-embedding: both versions)."""
        with self._lock:
            return dict(self._db.execute('SELECT version, COUNT(*) FROM vectors GROUP BY version').fetchall())

    def mixed(self) -> bool:
        """Whether vectors of another version than the store's exist (an interrupted re-embedding, an import of
        documents of several versions). Cheap (an index lookup)."""
        with self._lock:
            version = self._meta(self._db)['version']
            return self._db.execute('SELECT 1 FROM vectors WHERE version < ? OR version > ? LIMIT 1',
                                    (version, version)).fetchone() is not None

    def search(self, vectors: np.ndarray, limit: int, version: Optional[int] = None
               ) -> List[Tuple[DocList[StoredDoc], np.ndarray]]:
        """The ``limit`` nearest documents (cosine) of each row of ``vectors``, best first, with their cosines.
        ``version``: the embedder version of ``vectors``; raises :class:`StaleVersion` when the index holds another.
        (BM25 and fused rankings: :func:`covidqa.index.hybrid.search`.)"""
        return self.documents(self.dense(vectors, limit, version))

    def dense(self, vectors: np.ndarray, depth: int, version: Optional[int] = None,
              kinds: Optional[Collection[str]] = None) -> List[List[Tuple[int, float]]]:
        """``(label, cosine)`` of the ``depth`` nearest documents of each row of ``vectors``, best first; only
        documents of ``kinds`` (:func:`covidqa.docs.kind_of`) when given (the index is searched deeper until
        ``depth`` of them are found or it has no more).

        ``version``: the embedder version of ``vectors``; raises :class:`StaleVersion` when the index holds another
        (checked under the lock that swaps versions, so a query never meets vectors of another model); a
        ``ValueError`` for vectors of another dimension than the store's."""
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        with self._lock:
            self._catch_up()
            if version is not None and version != self._ann_version:
                raise StaleVersion(version, self._ann_version)
            if self._ann is None or len(self._ann) == 0 or depth <= 0:
                return [[] for _ in range(len(queries))]
            if queries.shape[1] != self._ann.dim:
                raise ValueError(f'query vectors have {queries.shape[1]} dimensions, the store {self._ann.dim}')
            size = len(self._ann)
            if kinds is None:
                labels, scores = self._ann.search(queries, depth)
                return [[(int(a), float(b)) for a, b in zip(row_labels, row_scores)]
                        for row_labels, row_scores in zip(labels, scores)]
            available = self._count_of_kinds(kinds)
            wanted = min(depth, available)  # a rare kind: no more than it has documents
            # deep enough to hold `depth` of the kind twice over if they were spread evenly; deeper when not
            reach = min(size, max(KIND_SEARCH_DEPTH, 2 * depth * size // max(1, available)))
            while True:
                labels, scores = self._ann.search(queries, reach)
                kind = self._kinds_of(set(labels.ravel().tolist()))
                rows = []
                for row_labels, row_scores in zip(labels, scores):
                    keep = np.fromiter((kind.get(label) in kinds for label in row_labels.tolist()), bool,
                                       len(row_labels))
                    rows.append([(int(a), float(b)) for a, b in zip(row_labels[keep][:depth], row_scores[keep][:depth])])
                if reach >= size or all(len(row) >= wanted for row in rows):
                    return rows
                reach = min(size, 4 * reach)

    def _kinds_of(self, labels) -> Dict[int, str]:
        """``label -> kind`` of ``labels`` (under the lock). Remembered: a label's document never changes (a
        replaced document gets a new label); forgotten past :data:`KINDS_REMEMBERED` labels."""
        unknown = [label for label in labels if label not in self._label_kinds]
        if unknown:
            if len(self._label_kinds) + len(unknown) > KINDS_REMEMBERED:
                self._label_kinds = {}
            self._label_kinds.update(kinds_of_labels(self._db, sorted(unknown)))
        return self._label_kinds

    def _count_of_kinds(self, kinds: Collection[str]) -> int:
        """How many stored documents are of ``kinds`` (under the lock; counted again after every write)."""
        seq = self._meta(self._db)['seq']
        key = tuple(sorted(kinds))
        if self._kind_counts.get('seq') != seq:
            self._kind_counts = {'seq': seq}
        if key not in self._kind_counts:
            self._kind_counts[key] = count_of_kinds(self._db, key)
        return self._kind_counts[key]

    def lexical(self, texts: Sequence[str], depth: int,
                kinds: Optional[Collection[str]] = None) -> List[List[Tuple[int, float]]]:
        """``(label, BM25)`` of the ``depth`` best documents for the words of each of ``texts``, best first; only
        documents of ``kinds`` when given (read from SQLite, which every write updates: no catch-up of the
        in-memory index)."""
        with self._lock:
            return [lexical_rank(self._db, text, depth, kinds) for text in texts]

    def documents(self, rankings: Sequence[Sequence[Tuple[int, float]]]
                  ) -> List[Tuple[DocList[StoredDoc], np.ndarray]]:
        """The stored documents of each ranking of ``(label, score)`` pairs, in its order, with its scores; a label
        gone since (deleted or replaced meanwhile) is left out."""
        with self._lock:
            found = read_docs(self._db, 'label', sorted({label for row in rankings for label, _ in row}))
        results = []
        for row in rankings:
            kept = [(label, score) for label, score in row if label in found]
            results.append((DocList[StoredDoc]([found[label] for label, _ in kept]),
                            np.asarray([score for _, score in kept], dtype=np.float32)))
        return results

    # ---- writes ------------------------------------------------------------------------------------------------
    def upsert(self, docs: DocList[StoredDoc]) -> int:
        """Add documents, replacing those whose id is already stored; one transaction, durable when it returns.
        Returns how many were new. Raises :class:`StaleVersion` for documents embedded with another version than
        the store's, ``ValueError`` for vectors of mixed dimensions."""
        if len(docs) == 0:
            return 0
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                new = write(self._db, docs)
            except BaseException:
                self._db.execute('ROLLBACK')
                self._catch_up()  # a StaleVersion: let .version tell the caller the version to embed with
                raise
            self._db.execute('COMMIT')
            self._catch_up()
            return new

    def delete(self, ids: Sequence[str], documents: bool = False,
               keep: Sequence[str] = ()) -> Tuple[List[str], List[str]]:
        """Delete by id; with ``documents``, ``ids`` are document ids: every stored document with that id or cut
        from it (``parent_id``: all the passages of a document) goes, in one transaction, but those in ``keep``
        (the passages of a new version, indexed first: what is left of the old one goes). Returns ``(deleted,
        missing)``: the ids deleted, and those of ``ids`` that matched nothing (not an error here).

        Example: ``store.delete(['cord-123'], documents=True)`` -> ``(['cord-123:0', 'cord-123:1'], [])``."""
        given = list(dict.fromkeys(ids))
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                wanted, matched = ids_of_documents(self._db, given) if documents else (given, set())
                if keep:
                    kept = set(keep)
                    wanted = [i for i in wanted if i not in kept]
                found = labels_of(self._db, wanted)
                if found:
                    meta = self._meta(self._db)
                    kill(self._db, list(found.values()), meta['seq'] + 1)
                    self._set_meta(self._db, seq=meta['seq'] + 1, count=meta['count'] - len(found))
            except BaseException:
                self._db.execute('ROLLBACK')
                raise
            self._db.execute('COMMIT')
            self._catch_up()
        missing = [i for i in given if i not in (matched if documents else found)]
        return [i for i in wanted if i in found], missing

    # ---- model versions ----------------------------------------------------------------------------------------
    def reembed(self, version: int, batch_size: int = 64, progress: Optional[Callable[[int, int], None]] = None):
        """Re-embed every stored document with embedder ``version`` and swap the result in atomically.

        In batches, on a connection of its own: searches keep being served from the old vectors meanwhile, and the
        new vectors are committed batch by batch (an interrupted run resumes where it stopped). Documents written
        during the run are re-embedded under the write lock before the swap, deleted ones are dropped, then the
        version moves and the new index is swapped in under the lock that searches take. Returns the embedder.
        """
        if self.embedder_factory is None:
            raise RuntimeError('this store has no embedder_factory; it cannot re-embed')
        embedder = self.embedder_factory(version)
        with file_lock(self.directory / 'reembed.lock'):  # one process at a time per directory
            if self._meta(self._db)['version'] == version and not self.mixed():  # another process did it
                with self._lock:
                    self._catch_up()
                return embedder
            self.reembedding = True
            try:
                reembed_store(self, embedder, version, batch_size, progress)
            finally:
                self.reembedding = False
        return embedder

    def close(self) -> None:
        """Write a snapshot of unsaved changes (hnsw) and close the database."""
        if self._snapshot_thread is not None:
            self._snapshot_thread.join()
        self.snapshot()
        with self._lock:
            self._db.close()


__all__ = ['DocumentStore', 'StaleVersion', 'TextEmbedder', 'DB_FILE']
