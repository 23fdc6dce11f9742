"""The search settings, declared once (:class:`SearchOptions`): the indexer Executor takes them from ``uses_with``,
``/search`` and ``/answer`` requests override :data:`REQUEST_OPTIONS` (:mod:`executors.parameters`), with the same
bounds; :meth:`covidqa.index.versioned.VersionedIndex.search` ranks with them.

Example: ``SearchOptions(retrieval='hybrid').with_overrides(limit=5)``
"""
from __future__ import annotations

from typing import Annotated

from covidqa.index.hybrid import DEFAULT_BM25_WEIGHT, DEFAULT_CANDIDATES, RETRIEVALS
from covidqa.options import Options, choice, integer, number

DEFAULT_LIMIT = 10
COLLECTIONS = ('auto', 'all', 'faq', 'literature')


def kinds_of(collection: str):
    """The document kinds (:data:`covidqa.docs.KINDS`) one ranking of ``collection`` searches: ``None`` (every
    kind, ranked together) for ``'all'`` and ``'auto'``, else that kind alone. (``'auto'`` on ``/answer`` ranks the
    FAQ and the literature each on its own: :class:`executors.indexer.Indexer`.)"""
    if collection not in COLLECTIONS:
        raise ValueError(f'collection must be one of {COLLECTIONS}, not {collection!r}')
    return None if collection in ('all', 'auto') else frozenset([collection])


class SearchOptions(Options):
    """How the indexer ranks: how many matches, by which ranking, and how the two rankings of ``hybrid`` mix."""

    limit: Annotated[int, integer(1, 1000, 'matches per query')] = DEFAULT_LIMIT
    retrieval: Annotated[str, choice(RETRIEVALS, "how the indexer ranks: 'dense' (cosine), 'lexical' (BM25) or "
                                                 "'hybrid' (both, fused)")] = 'dense'
    bm25_weight: Annotated[float, number(0.0, 1.0, "BM25's share of the hybrid score (the cosine's: 1 - bm25_weight)")
                           ] = DEFAULT_BM25_WEIGHT
    candidates: Annotated[int, integer(1, 1000, "each ranking's depth before hybrid fusion")] = DEFAULT_CANDIDATES
    collection: Annotated[str, choice(COLLECTIONS, "which documents: 'faq' entries, 'literature' passages, 'all' "
                                                   "ranked together, or 'auto' (/answer: from an FAQ entry when the "
                                                   "reader trusts one, else from the literature; /search: all)")
                          ] = 'auto'


REQUEST_OPTIONS = ('limit', 'retrieval', 'bm25_weight', 'collection')
