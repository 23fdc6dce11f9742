"""The indexer's side of the model-version protocol of :mod:`covidqa.versions`: a :class:`DocumentStore` that
follows ``TARGET``.

When ``TARGET`` moves (training or rollback), every stored document is re-embedded with the new model and swapped
in atomically (:meth:`DocumentStore.reembed`), then ``ACTIVE`` is moved, so that the embedder follows. A background
thread checks every ``watch_interval`` seconds; a re-embedding that a crash interrupted is finished when the index
opens, before it serves. Vectors that arrive embedded with another version than the store holds (a query embedded
just before ``ACTIVE`` moved) are re-embedded here, so a search never compares vectors of two models.

No jina here; :mod:`executors.indexer` wraps it. Example::

    index = VersionedIndex('workspace/index/shard-0', ModelVersions(), dict(pooling='cls', backend='torch'))
    version, vectors = index.vectors_for(docs)   # docs with .text / .embedding / .model_version
    index.store.search(vectors, limit=10)
    index.close()
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional, Tuple

from covidqa.embedding import Embedder
from covidqa.paths import PathLike
from covidqa.store import DocumentStore
from covidqa.versions import ModelVersions

log = logging.getLogger(__name__)
EMBEDDER_IDLE_SECONDS = 30.0  # the re-embedding model is dropped after this long unused (memory: one model a process)


class VersionedIndex:
    """``store`` (a :class:`DocumentStore` under ``directory``) kept on one embedder version: ``version``.

    :param versions: the shared :class:`ModelVersions` (reads ``TARGET``, writes ``ACTIVE``).
    :param embedder_config: keyword arguments of :class:`covidqa.embedding.Embedder` besides the model
        (``pooling``, ``backend``, ``num_threads``).
    :param watch_interval: seconds between checks of ``TARGET`` (``None``: no thread; call :meth:`sync`).
    """

    def __init__(self, directory: PathLike, versions: ModelVersions, embedder_config: Optional[dict] = None,
                 watch_interval: Optional[float] = 1.0):
        self.versions = versions
        self.embedder_config = dict(embedder_config or {})
        self._embedders: Dict[int, Embedder] = {}
        self._embedders_lock = threading.Lock()
        self._embedder_used = 0.0
        self.store = DocumentStore(directory, embedder_factory=self.embedder)
        stored = self.store.versions()
        self.version = max(stored, key=lambda v: stored[v]) if stored else versions.active()
        self.reembedding = False
        self._stop = threading.Event()
        self.sync()  # finish a re-embedding that a crash interrupted, before serving
        self._watcher = None
        if watch_interval:
            self._watcher = threading.Thread(target=self._watch, args=(watch_interval,), daemon=True,
                                             name='index-version-watch')
            self._watcher.start()

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
        target = self.versions.target()
        stored = self.store.versions()
        if target != self.version or set(stored) - {target}:
            self.reembedding = True
            try:
                log.info('re-embedding %d documents with embedder v%d', self.store.count(), target)
                self.store.reembed(target)
                self.version = target
            finally:
                self.reembedding = False
        if self.versions.active() != self.version:
            self.versions.set_active(self.version)

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sync()
            except Exception as exc:  # keep serving the old version; try again next tick
                log.error('re-embedding failed, still serving v%d: %r', self.version, exc)
            self.drop_idle_embedder(EMBEDDER_IDLE_SECONDS)

    def vectors_for(self, docs) -> Tuple[int, List]:
        """``(version, vectors)``: the embeddings of ``docs`` in the store's version, re-embedding (from ``text``)
        those that have none or another ``model_version``. Raises ``ValueError`` naming documents that have
        neither an embedding nor a text."""
        missing = [d.id for d in docs if d.embedding is None and not d.text]
        if missing:
            raise ValueError(f'documents {missing[:5]} have neither an embedding nor a text')
        version = self.version
        stale = [i for i, d in enumerate(docs) if d.embedding is None or d.model_version != version]
        vectors = [d.embedding for d in docs]
        if stale:
            fresh = self.embedder(version).embed_texts([docs[i].text for i in stale])
            for i, vector in zip(stale, fresh):
                vectors[i] = vector
        return version, vectors

    def close(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
