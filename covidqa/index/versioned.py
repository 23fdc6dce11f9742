"""The indexer's side of the model-version protocol of :mod:`covidqa.embedding.versions`: a :class:`DocumentStore` that
follows ``TARGET``.

When ``TARGET`` moves (training or rollback), every stored document is re-embedded with the new model in the
background (:meth:`DocumentStore.reembed`: the store keeps serving the old version meanwhile), the new vectors and
the store's version are swapped in together under the store's lock, then ``ACTIVE`` is moved, so that the embedder
follows. A background thread checks every ``watch_interval`` seconds; a re-embedding that a crash interrupted is
resumed when the index opens (before it serves when the store is small, else in the background).

Queries and documents are embedded with the store's version (re-embedded here when they arrive with another);
:meth:`search` and :meth:`upsert` hand the version along and the store refuses a mismatch (the version moved in
between) under the same lock as the swap, so they are embedded again: a query never meets vectors of another model.

No jina here; :mod:`executors.indexer` wraps it. Example::

    index = VersionedIndex('workspace/index/shard-0', ModelVersions(), dict(pooling='cls', backend='torch'))
    index.upsert(docs, fields=('text', 'answer'))   # docs with .id / .text / .embedding / .model_version
    index.search(queries, limit=10)                 # [(DocList[StoredDoc], scores)] per query
    index.close()
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from covidqa.docs import DocList, StoredDoc, kind_of
from covidqa.embedding.encoder import Embedder
from covidqa.embedding.versions import ModelVersions
from covidqa.index import hybrid
from covidqa.index.reembed import embed_stored
from covidqa.index.store import DocumentStore, StaleVersion
from covidqa.paths import PathLike

log = logging.getLogger(__name__)
EMBEDDER_IDLE_SECONDS = 30.0  # the re-embedding model is dropped after this long unused (memory: one model a process)
T = TypeVar('T')
FOREGROUND_REEMBED = 20000  # a store this small finishes an interrupted re-embedding before it serves


class VersionedIndex:
    """``store`` (a :class:`DocumentStore` under ``directory``) kept on one embedder version: ``version``.

    :param versions: the shared :class:`ModelVersions` (reads ``TARGET``, writes ``ACTIVE``).
    :param embedder_config: keyword arguments of :class:`covidqa.embedding.encoder.Embedder` besides the model
        (``pooling``, ``backend``, ``num_threads``).
    :param watch_interval: seconds between checks of ``TARGET`` (``None``: no thread; call :meth:`sync`).
    :param store_options: keyword arguments of :class:`DocumentStore` (``index='hnsw'``, ``ef_search``, ``M``, ...).
    """

    def __init__(self, directory: PathLike, versions: ModelVersions, embedder_config: Optional[dict] = None,
                 watch_interval: Optional[float] = 1.0, store_options: Optional[dict] = None):
        self.versions = versions
        self.embedder_config = dict(embedder_config or {})
        self._embedders: Dict[int, Embedder] = {}
        self._embedders_lock = threading.Lock()
        self._embedder_used = 0.0
        self._sync_lock = threading.Lock()
        self.store = DocumentStore(directory, embedder_factory=self.embedder, version=versions.active(),
                                   **(store_options or {}))
        self._stop = threading.Event()
        if self.store.count() <= FOREGROUND_REEMBED:
            self.sync()  # finish a re-embedding that a crash interrupted, before serving
        self._watcher = None
        if watch_interval:
            self._watcher = threading.Thread(target=self._watch, args=(watch_interval,), daemon=True,
                                             name='index-version-watch')
            self._watcher.start()

    @property
    def version(self) -> int:
        """The embedder version of the store's vectors (it moves together with them)."""
        return self.store.version

    @property
    def reembedding(self) -> bool:
        return self.store.reembedding

    def embedder(self, version: int) -> Embedder:
        """The embedding model of ``version`` (one kept in memory: the newest asked for), loaded on first use
        and dropped again when unused for :data:`EMBEDDER_IDLE_SECONDS` (:meth:`drop_idle_embedder`): the
        embedder Executor embeds; this copy only re-embeds after a version change."""
        with self._embedders_lock:
            if version not in self._embedders:
                self._embedders = {version: Embedder(self.versions.model_path(version), **self.embedder_config)}
            self._embedder_used = time.monotonic()
            return self._embedders[version]

    def drop_idle_embedder(self, idle_seconds: float = 0.0) -> bool:
        """Forget the re-embedding model when it was not asked for in ``idle_seconds`` (and no re-embedding runs);
        returns whether one was dropped."""
        with self._embedders_lock:
            if not self._embedders or self.reembedding or time.monotonic() - self._embedder_used < idle_seconds:
                return False
            self._embedders = {}
            return True

    def sync(self) -> None:
        """Re-embed the store with ``TARGET`` if it holds another version (or several), then move ``ACTIVE``."""
        with self._sync_lock:
            target = self.versions.target()
            if target != self.store.version or self.store.mixed():
                log.info('re-embedding %d documents with embedder v%d', self.store.count(), target)
                self.store.reembed(target)
            version = self.store.version
            if self.versions.active() != version:
                self.versions.set_active(version)

    def _watch(self, interval: float) -> None:
        first = True
        while first or not self._stop.wait(interval):
            first = False
            try:
                self.sync()
            except Exception as exc:  # keep serving the old version; try again next tick
                log.error('re-embedding failed, still serving v%d: %r', self.version, exc)
            self.drop_idle_embedder(EMBEDDER_IDLE_SECONDS)

    def vectors_for(self, docs, as_documents: bool = False) -> Tuple[int, List]:
        """``(version, vectors)``: the embeddings of ``docs`` in the store's version, re-embedding (from ``text``)
        those that have none or another ``model_version``: as queries, or ``as_documents`` (a literature passage
        longer: :meth:`Embedder.embed_documents`). Raises ``ValueError`` naming documents that have neither an
        embedding nor a text."""
        missing = [d.id for d in docs if d.embedding is None and not d.text]
        if missing:
            raise ValueError(f'documents {missing[:5]} have neither an embedding nor a text')
        version = self.version
        stale = [i for i, d in enumerate(docs) if d.embedding is None or d.model_version != version]
        vectors = [d.embedding for d in docs]
        if stale:
            embedder = self.embedder(version)
            texts = [docs[i].text for i in stale]
            fresh = embed_stored(embedder, texts, [kind_of(docs[i]) for i in stale]) if as_documents \
                else embedder.embed_texts(texts)
            for i, vector in zip(stale, fresh):
                vectors[i] = vector
        return version, vectors

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, again when the version moved between embedding and the store's check."""
        for _ in range(4):
            try:
                return attempt()
            except StaleVersion as stale:
                log.info('embedder version moved (%s); embedding again', stale)
        return attempt()

    def search(self, docs, limit: int, with_cosines: bool = False, **options) -> List[Tuple]:
        """Top-``limit`` stored documents for each of ``docs`` (``text`` and/or ``embedding``+``model_version``),
        with their query vectors in the store's version, as ``(DocList[StoredDoc], scores)`` per query (``with_cosines``:
        ``(documents, scores, cosines)``, each document's cosine with the query, :func:`covidqa.index.hybrid.cosines`);
        ``options``: ``retrieval``, ``bm25_weight``, ``candidates`` of :func:`covidqa.index.hybrid.search` (the lexical
        ranking reads ``text``)."""
        if len(docs) == 0:
            return []

        def attempt():
            version, vectors = self.vectors_for(docs)
            queries = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors])
            found = hybrid.search(self.store, queries, limit, version=version, texts=[d.text or '' for d in docs],
                                  **options)
            if not with_cosines:
                return found
            return [(hits, scores, hybrid.cosines(q, [d.embedding for d in hits])) for q, (hits, scores) in zip(queries, found)]
        return self._retrying(attempt)

    def upsert(self, docs, fields: Sequence[str]) -> int:
        """Store ``docs`` (``id``, ``text`` and/or ``embedding``+``model_version``, plus ``fields``) with vectors in
        the store's version; returns how many ids were new."""
        if len(docs) == 0:
            return 0

        def attempt():
            version, vectors = self.vectors_for(docs, as_documents=True)
            return self.store.upsert(DocList[StoredDoc]([
                StoredDoc(id=d.id, model_version=version, embedding=v, **{f: getattr(d, f) for f in fields})
                for d, v in zip(docs, vectors)]))
        return self._retrying(attempt)

    def close(self) -> None:
        """Stop the watcher thread and close the store (an HNSW store writes a snapshot of unsaved changes)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.store.close()
