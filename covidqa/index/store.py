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

No jina here; :mod:`executors.indexer` wraps it. Example::

    store = DocumentStore('workspace/index/shard-0', index='hnsw', embedder_factory=lambda v: Embedder(...))
    store.upsert(docs)                      # StoredDoc with embeddings; same id replaces
    matches = store.search(vectors, limit=10, version=store.version)   # list of (DocList[StoredDoc], scores)
    store.delete(['id1']); store.count(); store.missing(['id1', 'id2'])
"""
from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple, cast

import numpy as np
from docarray import DocList

from covidqa.docs import StoredDoc
from covidqa.index.ann import INDEX_KINDS, VectorIndex, load_hnsw, make_index
from covidqa.index.hybrid import DEFAULT_BM25_WEIGHT, DEFAULT_CANDIDATES, RETRIEVALS, fts_query, fuse
from covidqa.paths import PathLike
from covidqa.runtime.atomic import atomic_path
from covidqa.runtime.locks import file_lock

log = logging.getLogger(__name__)
DB_FILE = 'store.sqlite'
LEGACY_FILE = 'index.bin'  # the previous format: one docarray binary file, rewritten after every change
FIELDS = ('answer', 'wrong_answer', 'title', 'source', 'url', 'parent_id', 'offset_start', 'offset_end')
SNAPSHOT = re.compile(r'^ann-v(\d+)-s(\d+)-n(\d+)\.hnsw$')
CHUNK = 20000  # rows read per fetch when rebuilding or catching up
SQL_VARS = 500  # ids per IN (...) query

# what the lexical (BM25) index holds of a document: its text and, for a FAQ entry, its answer (a column of its own,
# weighted ANSWER_WEIGHT against the text's 1 in BM25: a question's words in an entry's question count more)
LEXICAL_COLUMNS = "{row}.label, {row}.text, coalesce(json_extract({row}.fields, '$.answer'), '')"
ANSWER_WEIGHT = 0.5  # measured: benchmarks/RETRIEVAL_RESULTS.md
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


class TextEmbedder(Protocol):
    """What ``embedder_factory`` returns (e.g. :class:`covidqa.embedding.encoder.Embedder`): texts -> one vector a row."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


class StaleVersion(Exception):
    """Vectors of embedder version ``given`` met a store whose vectors are of version ``version``: embed again."""

    def __init__(self, given: int, version: int):
        super().__init__(f'vectors of embedder v{given} do not match the store, which holds v{version}')
        self.given, self.version = given, version


def _chunks(items: Sequence, size: int = SQL_VARS) -> Iterator[Sequence]:
    for begin in range(0, len(items), size):
        yield items[begin:begin + size]


def _blob(vector) -> bytes:
    return np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()


def _vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b''.join(blobs), dtype=np.float32).reshape(len(blobs), dim)


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
        self._import_legacy()
        self._ann: Optional[VectorIndex] = None
        self._ann_version = version
        self._ann_seq = 0
        self._unsnapshotted = 0
        self._snapshot_thread: Optional[threading.Thread] = None
        self.reembedding = False
        with self._lock:
            self._load_ann()

    # ---- SQLite ------------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        db.execute('PRAGMA journal_mode=WAL')
        db.execute(f'PRAGMA synchronous={self.synchronous}')
        return db

    def _create(self, version: int) -> None:
        with self._lock:
            self._db.executescript(SCHEMA)
            self._db.execute('BEGIN IMMEDIATE')
            for key, value in (('seq', 0), ('count', 0), ('version', version), ('dim', 0), ('lexical', 0)):
                self._db.execute('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)', (key, value))
            if not self._meta(self._db)['lexical']:  # a store written before the lexical index: index it once
                self._db.execute('DELETE FROM lexical')
                self._db.execute(f'INSERT INTO lexical (rowid, text, answer) SELECT '
                                 f'{LEXICAL_COLUMNS.format(row="docs")} FROM docs')
                self._set_meta(self._db, lexical=1)
            self._db.execute('COMMIT')

    @staticmethod
    def _meta(db: sqlite3.Connection) -> Dict[str, int]:
        return dict(db.execute('SELECT key, value FROM meta').fetchall())

    @staticmethod
    def _set_meta(db: sqlite3.Connection, **values: int) -> None:
        db.executemany('UPDATE meta SET value = ? WHERE key = ?', [(v, k) for k, v in values.items()])

    def _import_legacy(self) -> None:
        """Import a shard directory of the previous format (``index.bin``) once, then rename it
        ``index.bin.imported``."""
        legacy = self.directory / LEGACY_FILE
        if not legacy.is_file():
            return
        with file_lock(self.directory / 'reembed.lock'):
            if not legacy.is_file():  # another process imported it meanwhile
                return
            loaded = cast(DocList[StoredDoc], DocList[StoredDoc].load_binary(file=str(legacy)))
            with self._lock:
                if self._meta(self._db)['count'] == 0 and len(loaded):
                    counts: Dict[int, int] = {}
                    for doc in loaded:
                        counts[doc.model_version] = counts.get(doc.model_version, 0) + 1
                    self._db.execute('BEGIN IMMEDIATE')
                    self._set_meta(self._db, version=max(counts, key=lambda v: counts[v]))
                    self._write(loaded, check_version=False)
                    self._db.execute('COMMIT')
            os.replace(legacy, legacy.with_name(LEGACY_FILE + '.imported'))
            log.info('imported %d documents from %s', len(loaded), legacy)

    # ---- the in-memory index -----------------------------------------------------------------------------------
    def _new_ann(self, dim: int, capacity: int) -> VectorIndex:
        return make_index(self.kind, dim, capacity=capacity + 1024, **self.options)

    def _snapshots(self) -> List[Tuple[int, int, int, Path]]:
        """``(version, seq, live, path)`` of the HNSW snapshots in the directory."""
        found = []
        for path in self.directory.iterdir():
            match = SNAPSHOT.match(path.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), int(match.group(3)), path))
        return sorted(found)

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
                ann.add(np.array([r[0] for r in rows], dtype=np.int64), _vectors([r[1] for r in rows], dim))
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
                path = self._save(cast('HnswIndexLike', ann), version, seq, live)
                self._unsnapshotted = 0
            return path

    def _save(self, ann: 'HnswIndexLike', version: int, seq: int, live: int) -> Path:
        path = self.directory / f'ann-v{version}-s{seq}-n{live}.hnsw'
        if path.exists():
            return path
        started = time.monotonic()
        with atomic_path(path) as tmp:
            ann.save(tmp)
        for old_version, old_seq, _, old in self._snapshots():
            if old_version == version and old_seq < seq:
                old.unlink(missing_ok=True)
        log.info('snapshot %s written in %.1f s', path.name, time.monotonic() - started)
        return path

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
            for part in _chunks(wanted):
                found.update(i for (i,) in self._db.execute(
                    f'SELECT id FROM docs WHERE id IN ({",".join("?" * len(part))})', list(part)))
        return [i for i in wanted if i not in found]

    def _docs(self, column: str, keys: Sequence) -> Dict:
        """``key -> StoredDoc`` for the documents whose ``column`` (``id`` or ``label``) is in ``keys``; the vector
        is that of the store's version (another version's only for documents that have none of it yet)."""
        out: Dict = {}
        version = self._meta(self._db)['version']
        for part in _chunks(list(keys)):
            rows = self._db.execute(
                f'SELECT d.{column}, d.id, d.text, d.fields, v.version, v.vector FROM docs d '
                f'JOIN vectors v ON v.label = d.label WHERE d.{column} IN ({",".join("?" * len(part))}) '
                f'ORDER BY v.version = ?', [*part, version]).fetchall()
            for key, doc_id, text, fields, vector_version, vector in rows:  # the store's version comes last: wins
                embedding = cast(Any, np.frombuffer(vector, dtype=np.float32).copy())
                out[key] = StoredDoc(id=doc_id, text=text, model_version=vector_version, embedding=embedding,
                                     **json.loads(fields))
        return out

    def get(self, ids: Sequence[str]) -> DocList[StoredDoc]:
        """The stored documents of ``ids`` that exist, in the order given."""
        with self._lock:
            found = self._docs('id', list(dict.fromkeys(ids)))
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

    def search(self, vectors: np.ndarray, limit: int, version: Optional[int] = None,
               texts: Optional[Sequence[str]] = None, retrieval: str = 'dense',
               bm25_weight: float = DEFAULT_BM25_WEIGHT, candidates: int = DEFAULT_CANDIDATES
               ) -> List[Tuple[DocList[StoredDoc], np.ndarray]]:
        """Top-``limit`` documents for each row of ``vectors`` (and each of ``texts``, the same queries' words),
        best first.

        ``retrieval``: ``'dense'`` (cosine similarity of the vectors; the score is the cosine), ``'lexical'`` (BM25
        of ``texts`` over the documents' text and answer; the score is BM25) or ``'hybrid'`` (both rankings'
        top-``candidates`` fused, :func:`covidqa.index.hybrid.fuse`; the score is the fused one, in [0, 1]).
        ``version``: the embedder version of ``vectors``; raises :class:`StaleVersion` when the index holds another
        (checked under the lock that swaps versions, so a query never meets vectors of another model).
        """
        if retrieval not in RETRIEVALS:
            raise ValueError(f'retrieval must be one of {RETRIEVALS}, not {retrieval!r}')
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if retrieval != 'dense' and (texts is None or len(texts) != len(queries)):
            raise ValueError(f'{retrieval} retrieval needs the text of every query')
        with self._lock:
            self._catch_up()
            if version is not None and version != self._ann_version:
                raise StaleVersion(version, self._ann_version)
            if self._ann is None or len(self._ann) == 0 or limit <= 0:
                return [(DocList[StoredDoc](), np.zeros(0, dtype=np.float32)) for _ in range(len(queries))]
            if queries.shape[1] != self._ann.dim:
                raise ValueError(f'query vectors have {queries.shape[1]} dimensions, the store {self._ann.dim}')
            depth = max(limit, candidates) if retrieval == 'hybrid' else limit  # fusion looks deeper
            ranked: List[List[Tuple[int, float]]] = [[] for _ in range(len(queries))]
            if retrieval != 'lexical':
                labels, scores = self._ann.search(queries, depth)
                ranked = [[(int(a), float(b)) for a, b in zip(row_labels, row_scores)]
                          for row_labels, row_scores in zip(labels, scores)]
            if retrieval != 'dense':
                lexical = [self._lexical(text, depth) for text in cast(Sequence[str], texts)]
                ranked = lexical if retrieval == 'lexical' else [
                    fuse(dense, words, bm25_weight, limit) for dense, words in zip(ranked, lexical)]
            ranked = [row[:limit] for row in ranked]
            found = self._docs('label', sorted({label for row in ranked for label, _ in row}))
        results = []
        for row in ranked:
            kept = [(label, score) for label, score in row if label in found]  # gone since: skipped
            results.append((DocList[StoredDoc]([found[label] for label, _ in kept]),
                            np.asarray([score for _, score in kept], dtype=np.float32)))
        return results

    def _lexical(self, text: str, limit: int) -> List[Tuple[int, float]]:
        """``(label, BM25)`` of the ``limit`` best documents for the words of ``text`` (FTS5's ``bm25()``,
        k1 1.2, b 0.75, Porter stems), best first. Call with the lock held."""
        query = fts_query(text)
        if query is None:
            return []
        rows = self._db.execute('SELECT rowid, -bm25(lexical, 1.0, ?) AS score FROM lexical WHERE lexical MATCH ? '
                                'ORDER BY score DESC LIMIT ?', (ANSWER_WEIGHT, query, limit)).fetchall()
        return [(int(label), float(score)) for label, score in rows]

    # ---- writes ------------------------------------------------------------------------------------------------
    def _write(self, docs: DocList[StoredDoc], check_version: bool = True) -> int:
        """Inside an open write transaction: store ``docs`` (new labels; replaced ones go to ``dead``). Returns
        how many ids were new."""
        db = self._db
        meta = self._meta(db)
        latest: Dict[str, StoredDoc] = {str(d.id): d for d in docs}  # an id given twice: the last one wins
        if check_version:
            stale = {d.model_version for d in latest.values()} - {meta['version']}
            if stale:
                raise StaleVersion(min(stale), meta['version'])
        rows = [np.asarray(d.embedding, dtype=np.float32).reshape(-1) for d in latest.values()]
        dims = sorted({len(r) for r in rows})
        dim = meta['dim'] or dims[0]
        if dims != [dim] or dim == 0:
            raise ValueError(f'document vectors must all have {dim} dimensions (the store\'s), got {dims}')
        old = self._labels_of(list(latest))
        seq = meta['seq'] + len(latest)
        self._kill(list(old.values()), seq)
        label = meta['seq']
        doc_rows, vector_rows = [], []
        for doc, vector in zip(latest.values(), rows):
            label += 1
            fields = {f: getattr(doc, f) for f in FIELDS if getattr(doc, f) is not None}
            doc_rows.append((label, doc.id, doc.text or '', json.dumps(fields)))
            vector_rows.append((label, doc.model_version, vector.tobytes()))
        db.executemany('INSERT INTO docs (label, id, text, fields) VALUES (?, ?, ?, ?)', doc_rows)
        db.executemany('INSERT INTO vectors (label, version, vector) VALUES (?, ?, ?)', vector_rows)
        new = len(latest) - len(old)
        self._set_meta(db, seq=seq, count=meta['count'] + new, dim=dim)
        return new

    def _labels_of(self, ids: Sequence[str]) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for part in _chunks(ids):
            out.update(self._db.execute(f'SELECT id, label FROM docs WHERE id IN ({",".join("?" * len(part))})',
                                        list(part)).fetchall())
        return out

    def _kill(self, labels: List[int], seq: int) -> None:
        for part in _chunks(labels):
            marks = ','.join('?' * len(part))
            self._db.execute(f'DELETE FROM docs WHERE label IN ({marks})', list(part))
            self._db.execute(f'DELETE FROM vectors WHERE label IN ({marks})', list(part))
        self._db.executemany('INSERT INTO dead (label, seq) VALUES (?, ?)', [(label, seq) for label in labels])

    def upsert(self, docs: DocList[StoredDoc]) -> int:
        """Add documents, replacing those whose id is already stored; one transaction, durable when it returns.
        Returns how many were new. Raises :class:`StaleVersion` for documents embedded with another version than
        the store's, ``ValueError`` for vectors of mixed dimensions."""
        if len(docs) == 0:
            return 0
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                new = self._write(docs)
            except BaseException:
                self._db.execute('ROLLBACK')
                self._catch_up()  # a StaleVersion: let .version tell the caller the version to embed with
                raise
            self._db.execute('COMMIT')
            self._catch_up()
            return new

    def delete(self, ids: Sequence[str]) -> Tuple[List[str], List[str]]:
        """Delete by id. Returns ``(deleted, missing)``; missing ids are not an error here."""
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                found = self._labels_of(wanted)
                if found:
                    meta = self._meta(self._db)
                    self._kill(list(found.values()), meta['seq'] + 1)
                    self._set_meta(self._db, seq=meta['seq'] + 1, count=meta['count'] - len(found))
            except BaseException:
                self._db.execute('ROLLBACK')
                raise
            self._db.execute('COMMIT')
            self._catch_up()
        return [i for i in wanted if i in found], [i for i in wanted if i not in found]

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
                self._reembed(embedder, version, batch_size, progress)
            finally:
                self.reembedding = False
        return embedder

    def _missing_vectors(self, db: sqlite3.Connection, version: int, after: int, upto: int, limit: int):
        return db.execute('SELECT d.label, d.text FROM docs d WHERE d.label > ? AND d.label <= ? AND NOT EXISTS '
                          '(SELECT 1 FROM vectors v WHERE v.label = d.label AND v.version = ?) '
                          'ORDER BY d.label LIMIT ?', (after, upto, version, limit)).fetchall()

    def _reembed(self, embedder: TextEmbedder, version: int, batch_size: int, progress) -> None:
        db = self._connect()
        try:
            meta = self._meta(db)
            start_seq, total = meta['seq'], meta['count']
            done, after = 0, 0
            while True:  # 1. embed what lacks a vector of `version`, batch by batch, committed as it goes
                rows = self._missing_vectors(db, version, after, start_seq, batch_size)
                if not rows:
                    break
                vectors = np.asarray(embedder.embed_texts([text for _, text in rows]), dtype=np.float32)
                db.execute('BEGIN IMMEDIATE')
                # rows deleted meanwhile are skipped (their label is gone from docs)
                db.executemany('INSERT OR REPLACE INTO vectors (label, version, vector) '
                               'SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM docs WHERE label = ?)',
                               [(label, version, _blob(v), label) for (label, _), v in zip(rows, vectors)])
                db.execute('COMMIT')
                after = rows[-1][0]
                done += len(rows)
                if progress:
                    progress(done, total)
            dim = self._meta(db)['dim']
            fresh = None
            if dim:  # 2. the new index over the new vectors up to start_seq (nobody else sees it yet)
                fresh = self._new_ann(dim, total)
                self._apply_changes(fresh, version, 0, db=db, upto=start_seq)
                if self.kind == 'hnsw':  # lets other processes load it instead of rebuilding after the swap
                    self._save(cast('HnswIndexLike', fresh), version, start_seq, len(fresh))
            with self._lock:  # 3. reconcile and swap: searches and writes wait
                self._db.execute('BEGIN IMMEDIATE')
                try:
                    meta = self._meta(self._db)
                    # every label <= start_seq has its vector now (step 1 ran until none lacked one): only the
                    # documents written during the run are left
                    touched = self._missing_vectors(self._db, version, start_seq, meta['seq'], meta['seq'] + 1)
                    if touched:
                        vectors = np.asarray(embedder.embed_texts([text for _, text in touched]), dtype=np.float32)
                        self._db.executemany('INSERT OR REPLACE INTO vectors (label, version, vector) '
                                             'VALUES (?, ?, ?)',
                                             [(label, version, _blob(v)) for (label, _), v in zip(touched, vectors)])
                    self._set_meta(self._db, version=version)
                except BaseException:
                    self._db.execute('ROLLBACK')
                    raise
                self._db.execute('COMMIT')
                if fresh is None:
                    self._load_ann()
                else:
                    old_part = [(label, v) for (label, _), v in zip(touched, vectors)
                                if label <= start_seq] if touched else []
                    if old_part:
                        fresh.add(np.array([label for label, _ in old_part], np.int64),
                                  np.stack([v for _, v in old_part]))
                    self._ann, self._ann_version, self._ann_seq = fresh, version, start_seq
                    self._apply_changes(fresh, version, start_seq)
            log.info('re-embedded %d documents with v%d (%d written during the run)', done, version,
                     len(touched))
            self._drop_other_versions(db, version)
        finally:
            db.close()

    def _drop_other_versions(self, db: sqlite3.Connection, version: int) -> None:
        """Delete the vectors (and snapshots) of other versions than ``version``, in small transactions."""
        while True:
            db.execute('BEGIN IMMEDIATE')
            if self._meta(db)['version'] != version:
                db.execute('ROLLBACK')
                return
            gone = db.execute('DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors WHERE version < ? '
                              'OR version > ? LIMIT ?)', (version, version, CHUNK)).rowcount
            db.execute('COMMIT')
            if gone < CHUNK:
                break
        for old_version, _, _, path in self._snapshots():
            if old_version != version:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Write a snapshot of unsaved changes (hnsw) and close the database."""
        if self._snapshot_thread is not None:
            self._snapshot_thread.join()
        self.snapshot()
        with self._lock:
            self._db.close()


class HnswIndexLike(Protocol):
    def save(self, path: PathLike) -> None: ...

    def __len__(self) -> int: ...


__all__ = ['DocumentStore', 'StaleVersion', 'TextEmbedder', 'DB_FILE', 'LEGACY_FILE']
