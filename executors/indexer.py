"""Indexer Executor: stores documents with their embeddings and finds the top-K by cosine.

Endpoints: ``/index`` (add, or replace by id), ``/update`` (replace; every id must exist), ``/search`` and
``/answer`` (top-``limit`` matches, default 10, each with ``score``), ``/delete`` (by id), ``/count``.
The store lives in ``index_dir`` (default ``$COVIDQA_HOME/index``), one sub-directory per shard, and survives restarts.

Shards: with ``shards: N`` and ``polling: ALL`` every shard sees every request and keeps only the ids that hash to it,
so add-or-replace and delete by id stay exact; search results of all shards are merged by ``executors/merger.py``.

Model versions: a background thread follows ``TARGET`` of :class:`covidqa.versions.ModelVersions`; when it moves,
every stored document is re-embedded with the new model, swapped in atomically, and ``ACTIVE`` is moved. Queries or
documents that arrive embedded with another version than the store holds are re-embedded here, so a search never
compares vectors of two models.
"""
import threading
import zlib
from pathlib import Path

from jina import Executor, requests

from covidqa.docs import DocList, MatchDoc, QADoc, StoredDoc
from covidqa.embedding import Embedder as EmbeddingModel
from covidqa.paths import index_dir as default_index_dir
from covidqa.store import DocumentStore
from covidqa.versions import ModelVersions
from executors._common import BadRequest, check_parameters, positive_int

STORED_FIELDS = ('text', 'answer', 'wrong_answer', 'title', 'source', 'url', 'parent_id', 'offset_start',
                 'offset_end')


class Indexer(Executor):
    def __init__(self, model: str = 'base', pooling: str = 'cls', backend: str = 'torch', index_dir: str = '',
                 versions_dir: str = '', limit: int = 10, watch_interval: float = 1.0, num_threads: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.shard_id = int(getattr(self.runtime_args, 'shard_id', 0) or 0)
        self.shards = int(getattr(self.runtime_args, 'shards', 1) or 1)
        self.default_limit = limit
        self.embedder_config = dict(pooling=pooling, backend=backend, num_threads=num_threads or None)
        self.versions = ModelVersions(versions_dir or None, base_model=model)
        self._embedders = {}
        self._embedders_lock = threading.Lock()
        directory = Path(index_dir) if index_dir else default_index_dir()
        self.store = DocumentStore(directory / f'shard-{self.shard_id}', embedder_factory=self._embedder)
        stored = self.store.versions()
        self.version = max(stored, key=stored.get) if stored else self.versions.active()
        self.reembedding = False
        self._stop = threading.Event()
        self._sync_versions()  # finish a re-embedding that a crash interrupted, before serving
        self._watcher = threading.Thread(target=self._watch, args=(watch_interval,), daemon=True)
        self._watcher.start()

    # ---- model versions ----------------------------------------------------------------------------------------
    def _embedder(self, version: int) -> EmbeddingModel:
        with self._embedders_lock:
            if version not in self._embedders:
                self._embedders = {version: EmbeddingModel(self.versions.model_path(version), **self.embedder_config)}
            return self._embedders[version]

    def _sync_versions(self) -> None:
        target = self.versions.target()
        stored = self.store.versions()
        if target != self.version or set(stored) - {target}:
            self.reembedding = True
            try:
                self.logger.info(f're-embedding {self.store.count()} documents with embedder v{target}')
                self.store.reembed(target)
                self.version = target
            finally:
                self.reembedding = False
        if self.versions.active() != self.version:
            self.versions.set_active(self.version)

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._sync_versions()
            except Exception as exc:  # keep serving the old version; try again next tick
                self.logger.error(f're-embedding failed, still serving v{self.version}: {exc!r}')

    def _vectors_for(self, docs: DocList[QADoc], endpoint: str):
        """Embeddings of ``docs`` in the store's model version (re-embedding stale or missing ones)."""
        missing = [d.id for d in docs if d.embedding is None and not d.text]
        if missing:
            raise BadRequest(f'{endpoint}: documents {missing[:5]} have neither an embedding nor a text')
        version = self.version
        stale = [i for i, d in enumerate(docs) if d.embedding is None or d.model_version != version]
        vectors = [None if d.embedding is None else d.embedding for d in docs]
        if stale:
            fresh = self._embedder(version).embed_texts([docs[i].text for i in stale])
            for i, v in zip(stale, fresh):
                vectors[i] = v
        return version, vectors

    # ---- endpoints ---------------------------------------------------------------------------------------------
    def _mine(self, doc_id: str) -> bool:
        return self.shards == 1 or zlib.crc32(doc_id.encode()) % self.shards == self.shard_id

    def _store(self, docs: DocList[QADoc], endpoint: str, must_exist: bool) -> dict:
        mine = DocList[QADoc]([d for d in docs if self._mine(d.id)])
        if must_exist:
            known = set(self.store.ids())
            unknown = [d.id for d in mine if d.id not in known]
            if unknown:
                raise BadRequest(f'{endpoint}: unknown document id(s) {unknown[:10]}; use /index to add documents')
        version, vectors = self._vectors_for(mine, endpoint)
        stored = DocList[StoredDoc]([
            StoredDoc(id=d.id, model_version=version, embedding=v, **{f: getattr(d, f) for f in STORED_FIELDS})
            for d, v in zip(mine, vectors)
        ])
        new = self.store.upsert(stored)
        self.logger.debug(f'{endpoint}: shard {self.shard_id}/{self.shards} stored {len(stored)} of {len(docs)}')
        return {'indexed': len(stored), 'new': new, 'replaced': len(stored) - new, 'shard': self.shard_id}

    @requests(on='/index')
    def index(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        check_parameters('/index', parameters)
        self._store(docs, '/index', must_exist=False)
        for d in docs:
            d.embedding = None
        return docs

    @requests(on='/update')
    def update(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        check_parameters('/update', parameters)
        self._store(docs, '/update', must_exist=True)
        for d in docs:
            d.embedding = None
        return docs

    def _search(self, docs: DocList[QADoc], parameters: dict, endpoint: str) -> DocList[QADoc]:
        params = check_parameters(endpoint, parameters)
        limit = positive_int(params, 'limit', self.default_limit, maximum=1000)
        if len(docs) == 0:
            return docs
        _, vectors = self._vectors_for(docs, endpoint)
        for doc, (found, scores) in zip(docs, self.store.search(vectors, limit)):
            doc.matches = DocList[MatchDoc]([
                MatchDoc(id=m.id, score=float(s), **{f: getattr(m, f) for f in STORED_FIELDS})
                for m, s in zip(found, scores)
            ])
            doc.embedding = None
        return docs

    @requests(on='/search')
    def search(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._search(docs, parameters, '/search')

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._search(docs, parameters, '/answer')

    @requests(on='/delete', request_schema=DocList[QADoc], response_schema=DocList[QADoc])
    def delete(self, docs, parameters: dict, **kwargs):
        check_parameters('/delete', parameters)
        if len(docs) == 0:
            raise BadRequest('/delete: send the documents to delete (only their ids are used)')
        deleted, missing = self.store.delete([d.id for d in docs if self._mine(d.id)])
        return {'deleted': deleted, 'missing': missing, 'count': self.store.count(), 'shard': self.shard_id}

    @requests(on='/count', request_schema=DocList[QADoc], response_schema=DocList[QADoc])
    def count(self, parameters: dict, **kwargs):
        check_parameters('/count', parameters)
        return {'count': self.store.count(), 'model_version': self.version, 'reembedding': self.reembedding,
                'shard': self.shard_id, 'shards': self.shards}

    def close(self) -> None:
        self._stop.set()
        super().close()

