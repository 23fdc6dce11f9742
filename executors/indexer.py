"""Indexer Executor: stores documents with their embeddings and finds the top-K by cosine.

Endpoints: ``/index`` (add, or replace by id), ``/update`` (replace; every id must exist), ``/search`` and
``/answer`` (top-``limit`` matches, default 10, each with ``score`` and its ``cosine`` with the query whatever ranked
it; ``/search`` replies with :class:`covidqa.docs.SearchReply` documents: no vectors or training fields),
``/delete`` (by id; with ``documents: true`` whole documents: every passage cut from each), ``/count``.
Collections (``collection``): each stored document is an FAQ entry or a literature passage
(:func:`covidqa.docs.kind_of`; every match says its ``kind``); ``faq`` or ``literature`` searches one kind, ``all``
ranks both together; ``auto`` (the default) is ``all`` for ``/search``, and for ``/answer`` the top ``limit`` of
each kind (FAQ first), so that the reader can answer from the FAQ when it trusts an entry and read the literature
otherwise.
Ranking (``retrieval``, per request or in ``uses_with``): ``dense`` (the score is the cosine), ``lexical`` (BM25
over the stored text and answer) or ``hybrid`` (both fused, :mod:`covidqa.index.hybrid`; the score is the fused one, in
[0, 1]). ``/search`` ranks ``dense`` by default (``retrieval``) and ``/answer`` ``hybrid`` (``answer_retrieval``): the
reader after it needs the passage among the top ``limit`` (recall@20 on the COVID-QA dev articles 0.72 dense, 0.93
hybrid), while ``/search`` callers read the top match and its cosine (``benchmarks/RETRIEVAL_RESULTS.md``).
The store lives in ``index_dir`` (default ``$COVIDQA_HOME/index``), one sub-directory per shard, and survives restarts.

Shards: with ``shards: N`` and ``polling: ALL`` every shard sees every request and keeps only the ids that hash to it,
so add-or-replace and delete by id stay exact. Every reply of ``/index``, ``/update``, ``/delete`` and ``/count``
carries ``shard`` and ``shards``; ``executors/merger.py`` (the Deployment after the indexer) merges the shards'
``/search`` and ``/answer`` matches; the write and ``/count`` replies keep one entry per shard
(:func:`covidqa.index.replies.indexer_reply` adds them up on the client side).

Store: :class:`covidqa.index.store.DocumentStore` (SQLite, written incrementally, plus an in-memory index): ``index: exact``
(default; numpy, for small collections such as the FAQ) or ``index: hnsw`` (hnswlib; ``M``, ``ef_construction``,
``ef_search``, ``index_threads``). Several processes (``replicas``) may share one shard directory.

Model versions: :class:`covidqa.index.versioned.VersionedIndex` follows ``TARGET`` of
:class:`covidqa.embedding.versions.ModelVersions` (re-embeds every stored document, swaps them in, moves ``ACTIVE``) and
re-embeds queries or documents that arrive embedded with another version. Parameters: :mod:`executors.parameters`.
"""
import zlib
from pathlib import Path
from typing import List

from jina import Executor, requests

from covidqa.docs import KINDS, STORED_FIELDS, DocList, MatchDoc, QADoc, SearchReply, kind_of, search_replies
from covidqa.embedding.versions import ModelVersions
from covidqa.index.options import REQUEST_OPTIONS, SearchOptions, kinds_of
from covidqa.index.versioned import VersionedIndex
from covidqa.models.loading import DEFAULT_EMBEDDER
from covidqa.paths import index_dir as default_index_dir
from executors._common import BadRequest, refuse_unknown_settings, settings_of
from executors.parameters import AnswerParameters, DeleteParameters, IndexParameters, NoParameters, SearchParameters

# endpoints that answer a dict (in response.parameters['__results__']): no return annotation, the schemas given
RESULTS = dict(request_schema=DocList[QADoc], response_schema=DocList[QADoc])


def _ids(docs: DocList[QADoc], endpoint: str) -> List[str]:
    """The documents' ids; a document without one (``id=None``) is refused by position (the tokenizer gives every
    ``/index`` and ``/update`` document an id)."""
    ids: List[str] = []
    for position, doc in enumerate(docs):
        if doc.id is None:
            raise BadRequest(f'{endpoint}: document {position} has no id')
        ids.append(doc.id)
    return ids


@settings_of(SearchOptions)
class Indexer(Executor):
    """``uses_with``: ``model`` (version 0, default ``'shipped-embedder'``), ``pooling``, ``backend``, ``num_threads``
    (the embedder's, for re-embedding),
    ``index_dir`` (default ``$COVIDQA_HOME/index``), ``versions_dir``, ``watch_interval`` (seconds between checks of
    ``TARGET``), ``index`` (``exact`` | ``hnsw``), ``M``, ``ef_construction``, ``ef_search``, ``index_threads`` (HNSW
    build threads), ``snapshot_every`` (HNSW: changes between snapshots), the settings of
    :class:`covidqa.index.options.SearchOptions` (``limit``, ``retrieval``: ``/search``'s ranking, ``bm25_weight``,
    ``candidates``, ``collection``) and ``answer_retrieval`` (``/answer``'s ranking, default ``hybrid``); per
    request: the ``limit``, ``retrieval``, ``bm25_weight`` and ``collection`` parameters."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, pooling: str = 'cls', backend: str = 'torch', index_dir: str = '',
                 versions_dir: str = '', watch_interval: float = 1.0, num_threads: int = 0, index: str = 'exact',
                 M: int = 16, ef_construction: int = 100, ef_search: int = 256, index_threads: int = 1,
                 snapshot_every: int = 50000, answer_retrieval: str = 'hybrid', **kwargs):
        options = SearchOptions.pop_from(kwargs)
        refuse_unknown_settings('Indexer', kwargs)
        super().__init__(**kwargs)
        self.options = {'/search': options, '/answer': options.with_overrides(retrieval=answer_retrieval)}
        self.shard_id = int(getattr(self.runtime_args, 'shard_id', 0) or 0)
        self.shards = int(getattr(self.runtime_args, 'shards', 1) or 1)
        directory = Path(index_dir) if index_dir else default_index_dir()
        self.index = VersionedIndex(directory / f'shard-{self.shard_id}',
                                    ModelVersions(versions_dir or None, base_model=model),
                                    dict(pooling=pooling, backend=backend, num_threads=num_threads or None),
                                    watch_interval=watch_interval,
                                    store_options=dict(index=index, M=M, ef_construction=ef_construction,
                                                       ef_search=ef_search, num_threads=index_threads,
                                                       snapshot_every=snapshot_every))
        self.store = self.index.store

    def _mine(self, doc_id: str) -> bool:
        return self.shards == 1 or zlib.crc32(doc_id.encode()) % self.shards == self.shard_id

    def _checked(self, call, endpoint: str):
        try:
            return call()
        except ValueError as error:
            raise BadRequest(f'{endpoint}: {error}') from None

    def _store(self, docs: DocList[QADoc], parameters: dict, endpoint: str, must_exist: bool) -> dict:
        IndexParameters.parse(parameters, endpoint)
        mine = DocList[QADoc]([d for d, doc_id in zip(docs, _ids(docs, endpoint)) if self._mine(doc_id)])
        if must_exist:
            unknown = self.store.missing(mine.id)
            if unknown:
                raise BadRequest(f'{endpoint}: unknown document id(s) {unknown[:10]}; use /index to add documents')
        new = 0
        if len(mine):
            new = self._checked(lambda: self.index.upsert(mine, STORED_FIELDS), endpoint)
        self.logger.debug(f'{endpoint}: shard {self.shard_id}/{self.shards} stored {len(mine)} of {len(docs)}')
        for d in docs:  # the reply carries the documents (with their ids), not their vectors
            d.embedding = None
        return {'stored': len(mine), 'new': new, 'count': self.store.count(), 'shard': self.shard_id,
                'shards': self.shards}

    @requests(on='/index', **RESULTS)
    def index_docs(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        return self._store(docs, parameters, '/index', must_exist=False)

    @requests(on='/update', **RESULTS)
    def update(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        return self._store(docs, parameters, '/update', must_exist=True)

    def _search(self, docs: DocList[QADoc], params: SearchParameters, endpoint: str) -> DocList[QADoc]:
        if len(docs) == 0:
            return docs
        options = self.options[endpoint].with_overrides({name: getattr(params, name) for name in REQUEST_OPTIONS})
        # /answer's 'auto': the FAQ and the literature ranked each on its own (the reader reads the FAQ first)
        rankings = [frozenset([kind]) for kind in KINDS] if endpoint == '/answer' and options.collection == 'auto' \
            else [kinds_of(options.collection)]
        found_by_kinds = [self._checked(lambda: self.index.search(
            docs, options.limit, retrieval=options.retrieval, bm25_weight=options.bm25_weight,
            candidates=options.candidates, with_cosines=True, kinds=kinds), endpoint) for kinds in rankings]
        for position, doc in enumerate(docs):
            doc.matches = DocList[MatchDoc]([
                MatchDoc(id=m.id, score=float(s), cosine=float(c),
                         **{f: getattr(m, f) for f in STORED_FIELDS if f != 'kind'}, kind=kind_of(m))
                for found in found_by_kinds for m, s, c in zip(*found[position])
            ])
            doc.embedding = None
        return docs

    @requests(on='/search')
    def search(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[SearchReply]:
        return search_replies(self._search(docs, SearchParameters.parse(parameters, '/search'), '/search'))

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        return self._search(docs, AnswerParameters.parse(parameters, '/answer'), '/answer')

    @requests(on='/delete', **RESULTS)
    def delete(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        params = DeleteParameters.parse(parameters, '/delete')
        whole = bool(params.documents)
        if params.keep and not whole:
            raise BadRequest("/delete: parameter 'keep' goes with documents: true")
        if len(docs) == 0:
            raise BadRequest('/delete: send the documents to delete (only their ids are used)')
        ids = _ids(docs, '/delete')
        if not whole:
            deleted, missing = self.store.delete([i for i in ids if self._mine(i)])
            return {'deleted': deleted, 'missing': missing, 'count': self.store.count(), 'shard': self.shard_id,
                    'shards': self.shards}
        # a document's passages hash to every shard: each deletes those it holds
        deleted, missing = self.store.delete(ids, documents=True, keep=params.keep or ())
        return {'deleted': deleted, 'missing': missing, 'documents': [i for i in ids if i not in missing],
                'count': self.store.count(), 'shard': self.shard_id, 'shards': self.shards}

    @requests(on='/count', **RESULTS)
    def count(self, docs: DocList[QADoc], parameters: dict, **kwargs):
        NoParameters.parse(parameters, '/count')
        return {'count': self.store.count(), 'model_version': self.index.version,
                'reembedding': self.index.reembedding, 'shard': self.shard_id, 'shards': self.shards}

    def close(self) -> None:
        self.index.close()
        super().close()
