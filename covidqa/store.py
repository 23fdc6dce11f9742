"""The document store behind the indexer: docarray's ``InMemoryExactNNIndex`` (exact cosine top-K), persisted to
one binary file that is replaced atomically after every change, plus re-embedding when the embedder version moves.

No jina here; :mod:`executors.indexer` wraps it. Example::

    store = DocumentStore('workspace/index/shard-0', embedder_factory=lambda v: Embedder(...))
    store.upsert(docs)                      # StoredDoc with embeddings; same id replaces
    matches = store.search(vectors, limit=10)   # list of (DocList[StoredDoc], scores) per query
    store.delete(['id1']); store.count()
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple, cast

import numpy as np
from docarray import DocList
from docarray.index import InMemoryExactNNIndex

from covidqa.atomic import atomic_path
from covidqa.docs import StoredDoc

log = logging.getLogger(__name__)
INDEX_FILE = 'index.bin'


class TextEmbedder(Protocol):
    """What ``embedder_factory`` returns (e.g. :class:`covidqa.embedding.Embedder`): texts -> one vector a row."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


class DocumentStore:
    """Thread-safe exact-NN store of :class:`StoredDoc`, persisted under ``directory``.

    ``embedder_factory(version)`` returns an object with ``embed_texts(texts) -> np.ndarray``; it is used only to
    re-embed stored documents (and stale queries) when the service moves to another embedder version.
    """

    def __init__(self, directory, embedder_factory: Optional[Callable[[int], TextEmbedder]] = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / INDEX_FILE
        self.embedder_factory = embedder_factory
        self._lock = threading.RLock()
        self._index = self._load()
        self._changed_since_snapshot: Optional[set] = None  # ids touched while a re-embedding runs

    # ---- persistence -------------------------------------------------------------------------------------------
    def _load(self) -> InMemoryExactNNIndex:
        index = InMemoryExactNNIndex[StoredDoc]()
        if self.path.is_file():
            # docarray types load_binary as "DocList or generator"; it is a generator only with streaming=True
            docs = cast(DocList[StoredDoc], DocList[StoredDoc].load_binary(file=str(self.path)))
            if len(docs):
                index.index(docs)
            log.info('loaded %d documents from %s', len(docs), self.path)
        return index

    def _persist(self) -> None:
        with atomic_path(self.path) as tmp:
            self._index._docs.save_binary(file=str(tmp))

    # ---- reads -------------------------------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return self._index.num_docs()

    def ids(self) -> List[str]:
        with self._lock:
            return [d.id for d in self._index._docs]

    def get(self, ids: Sequence[str]) -> DocList[StoredDoc]:
        with self._lock:
            positions = self._index._get_ids_to_positions()
            return DocList[StoredDoc]([self._index._docs[positions[i]] for i in ids if i in positions])

    def versions(self) -> Dict[int, int]:
        """How many stored documents carry each embedder version."""
        with self._lock:
            counts: Dict[int, int] = {}
            for doc in self._index._docs:
                counts[doc.model_version] = counts.get(doc.model_version, 0) + 1
            return counts

    def search(self, vectors: np.ndarray, limit: int) -> List[Tuple[DocList[StoredDoc], np.ndarray]]:
        """Top-``limit`` documents by cosine similarity for each row of ``vectors``, best first."""
        with self._lock:
            if self._index.num_docs() == 0:
                return [(DocList[StoredDoc](), np.zeros(0, dtype=np.float32)) for _ in range(len(vectors))]
            limit = min(limit, self._index.num_docs())
            queries = np.asarray(vectors, dtype=np.float32)
            # docarray's annotation says NdArray | DocList; it takes a plain numpy array (what it converts to)
            result = self._index.find_batched(queries, search_field='embedding',  # type: ignore[arg-type]
                                              limit=limit)
            return [(DocList[StoredDoc](docs), np.asarray(scores)) for docs, scores in
                    zip(result.documents, result.scores)]

    # ---- writes ------------------------------------------------------------------------------------------------
    def upsert(self, docs: DocList[StoredDoc]) -> int:
        """Add documents, replacing those whose id is already stored. Returns how many were new."""
        if len(docs) == 0:
            return 0
        with self._lock:
            existing = self._index._get_ids_to_positions()
            new = len({d.id for d in docs if d.id not in existing})  # an id twice in one call is new once
            self._index.index(docs)
            self._persist()
            if self._changed_since_snapshot is not None:
                self._changed_since_snapshot.update(docs.id)
            return new

    def delete(self, ids: Sequence[str]) -> Tuple[List[str], List[str]]:
        """Delete by id. Returns ``(deleted, missing)``; missing ids are not an error here."""
        with self._lock:
            positions = self._index._get_ids_to_positions()
            present = [i for i in dict.fromkeys(ids) if i in positions]
            missing = [i for i in dict.fromkeys(ids) if i not in positions]
            if present:
                del self._index[present]
                self._persist()
                if self._changed_since_snapshot is not None:
                    self._changed_since_snapshot.update(present)
            return present, missing

    # ---- model versions ----------------------------------------------------------------------------------------
    def reembed(self, version: int, batch_size: int = 64, progress: Optional[Callable[[int, int], None]] = None):
        """Re-embed every stored document with embedder ``version`` and swap the result in atomically.

        Searches keep being served from the old vectors meanwhile; documents indexed or deleted during the run are
        reconciled under the lock before the swap, so nothing is lost.
        """
        if self.embedder_factory is None:
            raise RuntimeError('this store has no embedder_factory; it cannot re-embed')
        embedder = self.embedder_factory(version)
        with self._lock:
            snapshot = DocList[StoredDoc]([d.model_copy() for d in self._index._docs])
            self._changed_since_snapshot = set()
        try:
            done = 0
            for begin in range(0, len(snapshot), batch_size):
                chunk = snapshot[begin:begin + batch_size]
                vectors = embedder.embed_texts(chunk.text)
                for doc, vector in zip(chunk, vectors):
                    doc.embedding = vector
                    doc.model_version = version
                done += len(chunk)
                if progress:
                    progress(done, len(snapshot))
            with self._lock:
                changed = self._changed_since_snapshot or set()
                current = {d.id: d for d in self._index._docs}
                fresh = [d for d in snapshot if d.id in current and d.id not in changed]
                touched = [current[i].model_copy() for i in changed if i in current]
                if touched:
                    vectors = embedder.embed_texts([d.text for d in touched])
                    for doc, vector in zip(touched, vectors):
                        doc.embedding = vector
                        doc.model_version = version
                index = InMemoryExactNNIndex[StoredDoc]()
                merged = DocList[StoredDoc](fresh + touched)
                if len(merged):
                    index.index(merged)
                self._index = index
                self._persist()
        finally:
            with self._lock:
                self._changed_since_snapshot = None
        return embedder
