"""MatchMerger: the Deployment after a sharded indexer (``shards: N``): the best matches of N shards.

With ``shards: N`` and ``polling: ALL`` every shard answers every request and the indexer's head reduces the answers:
each query carries the matches of all shards (concatenated), and the reply's ``__results__`` keeps one entry per
shard for ``/index``, ``/update``, ``/delete`` and ``/count`` (``indexer/shard-<i>/rep-<j>``; their sum is
:func:`covidqa.index.replies.indexer_reply`). This Executor keeps the best ``limit`` matches per query (highest score
first, one entry per id; for ``/answer`` with ``collection: auto``, the best ``limit`` of each kind); it binds nothing else, so the gateway sends other requests past it. (jina's ``uses_after`` would see every shard's matches too, but it keeps only one shard's
``__results__``: a ``/count`` would count one shard.)

Not needed (and not in flow.yml) with one shard. flow.yml, after the indexer::

  - name: merger
    uses: MatchMerger
    py_modules: [executors/merger.py]
"""
from typing import Any, Dict, Optional, TypeVar

from jina import Executor, requests

from covidqa.docs import KINDS, DocList, QADoc, SearchReply, kind_of
from covidqa.index.options import SearchOptions
from executors._common import refuse_unknown_settings, settings_of
from executors.parameters import AnswerParameters, SearchParameters, or_default

D = TypeVar('D', DocList[QADoc], DocList[SearchReply])


def merge_matches(docs: D, limit: int, per_kind: bool = False) -> D:
    """Each query's best ``limit`` matches, highest score first, one per id (in place; returns ``docs``, of
    :class:`~covidqa.docs.QADoc` or :class:`~covidqa.docs.SearchReply`); with ``per_kind``, the best ``limit`` of
    each kind (:data:`covidqa.docs.KINDS`, in that order: ``/answer``'s ``collection: auto``)."""
    for doc in docs:
        best: Dict[Optional[str], Any] = {}
        for match in doc.matches:
            if match.id not in best or (match.score or 0) > (best[match.id].score or 0):
                best[match.id] = match
        ranked = sorted(best.values(), key=lambda m: -(m.score or 0.0))
        if per_kind:
            ranked = [m for kind in KINDS for m in [m for m in ranked if kind_of(m) == kind][:limit]]
        doc.matches = type(doc.matches)(ranked if per_kind else ranked[:limit])
    return docs


@settings_of(SearchOptions)
class MatchMerger(Executor):
    """``uses_with``: ``limit`` and ``collection`` (:class:`covidqa.index.options.SearchOptions`, as the
    indexer's)."""

    def __init__(self, **kwargs):
        options = SearchOptions.pop_from(kwargs)
        self.default_limit, self.default_collection = options.limit, options.collection
        refuse_unknown_settings('MatchMerger', kwargs)
        super().__init__(**kwargs)

    @requests(on='/search')
    def search(self, docs: DocList[SearchReply], parameters: dict, **kwargs) -> DocList[SearchReply]:
        return merge_matches(docs, or_default(SearchParameters.parse(parameters, '/search').limit,
                                              self.default_limit))

    @requests(on='/answer')
    def answer(self, docs: DocList[QADoc], parameters: dict, **kwargs) -> DocList[QADoc]:
        params = AnswerParameters.parse(parameters, '/answer')
        return merge_matches(docs, or_default(params.limit, self.default_limit),
                             per_kind=or_default(params.collection, self.default_collection) == 'auto')

