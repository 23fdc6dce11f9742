"""Hybrid retrieval: the dense (cosine) ranking and the lexical (BM25) ranking of the same store, fused.

The base embedder's ``[CLS]`` vector is a sentence embedder used without its mean pooling: it finds reworded FAQ
questions well, but on the COVID-QA dev articles (651 passages, 159 questions) it ranks the passage that holds the
answer in its top 20 for 72% of the questions, BM25 for 93% (``make bench-articles``). A user of haystack gets
BM25 + reader out of the box; the indexer keeps a BM25 index beside the vectors (SQLite FTS5, in the same
transaction as every write: :class:`covidqa.index.store.DocumentStore`) and searches with either or both.

Fusion (:func:`fuse`): the candidates are the union of the dense top-N and the lexical top-N; each ranking's scores
are scaled to [0, 1] over the candidates (BM25 divided by its best, cosine min-max), and a candidate's score is
``bm25_weight * bm25 + (1 - bm25_weight) * cosine`` (0 for a ranking that did not return it). Weight 0.7 and
N = 50, measured with the Flow's int8 ``[CLS]`` embedder on COVID-QA articles, paragraphs, community questions and
the FAQ (``benchmarks/bench_retrieval.py``, ``benchmarks/RETRIEVAL_RESULTS.md``); reciprocal rank fusion (RRF) was
weaker on the dev articles (MRR 0.58 against 0.70).

Inputs: per ranking, ``(label, score)`` pairs (any order). Output: ``(label, fused score)``, best first, ties by
label. :func:`fts_query` turns a question into the FTS5 query of its words.

Example::

    fuse([(1, 0.9), (2, 0.5)], [(2, 12.0), (3, 3.0)], bm25_weight=0.7, limit=2)
    # [(2, 0.7), (1, 0.3)]: 2 is first in BM25 and second in cosine; 1 first in cosine only
"""
from __future__ import annotations

from typing import Any, Collection, Dict, List, Optional, Protocol, Sequence, Tuple, cast

import numpy as np

from covidqa.text.lexical import WORD
from covidqa.text.question_match import STOP_WORDS

RETRIEVALS = ('dense', 'lexical', 'hybrid')
DEFAULT_BM25_WEIGHT = 0.7
DEFAULT_CANDIDATES = 50  # per ranking, before fusion
MAX_QUERY_TERMS = 32  # words of a question that the lexical search looks up (bounds its work)


def fts_query(text: str, max_terms: int = MAX_QUERY_TERMS) -> Optional[str]:
    """The FTS5 ``MATCH`` query for ``text``: its distinct words (lowercased, stop words dropped, at most
    ``max_terms``), each quoted (so nothing in a question is FTS5 syntax), joined by ``OR``. ``None`` when no word
    is left (a question of stop words or punctuation: no lexical matches)."""
    words = dict.fromkeys(w.lower() for w in WORD.findall(text or ''))
    kept = [w for w in words if w not in STOP_WORDS][:max_terms]
    return ' OR '.join(f'"{w}"' for w in kept) or None


def _scaled(scores: Dict[int, float], minmax: bool) -> Dict[int, float]:
    if not scores:
        return {}
    high, low = max(scores.values()), min(scores.values())
    if minmax:
        span = high - low
        return {k: (v - low) / span if span > 1e-12 else 1.0 for k, v in scores.items()}
    return {k: v / high if high > 1e-12 else 0.0 for k, v in scores.items()}


def fuse(dense: Sequence[Tuple[int, float]], lexical: Sequence[Tuple[int, float]], bm25_weight: float,
         limit: int) -> List[Tuple[int, float]]:
    """The ``limit`` best candidates of two rankings by ``bm25_weight * bm25 + (1 - bm25_weight) * cosine``,
    each scaled to [0, 1] over the candidates that ranking returned (BM25 / its best; cosine min-max)."""
    if not 0.0 <= bm25_weight <= 1.0:
        raise ValueError(f'bm25_weight must be between 0 and 1, got {bm25_weight!r}')
    cos = _scaled({int(k): float(v) for k, v in dense}, minmax=True)
    bm25 = _scaled({int(k): float(v) for k, v in lexical}, minmax=False)
    fused = {k: bm25_weight * bm25.get(k, 0.0) + (1.0 - bm25_weight) * cos.get(k, 0.0)
             for k in cos.keys() | bm25.keys()}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:max(0, limit)]


class Rankings(Protocol):
    """What :func:`search` needs of a store (:class:`covidqa.index.store.DocumentStore` has it)."""

    def dense(self, vectors: Any, depth: int, version: Optional[int] = None,
              kinds: Optional[Collection[str]] = None) -> List[List[Tuple[int, float]]]: ...

    def lexical(self, texts: Sequence[str], depth: int,
                kinds: Optional[Collection[str]] = None) -> List[List[Tuple[int, float]]]: ...

    def documents(self, rankings: Sequence[Sequence[Tuple[int, float]]]) -> List[Tuple[Any, Any]]: ...


def search(store: Rankings, vectors: Any, limit: int, version: Optional[int] = None,
           texts: Optional[Sequence[str]] = None, retrieval: str = 'dense', bm25_weight: float = DEFAULT_BM25_WEIGHT,
           candidates: int = DEFAULT_CANDIDATES, kinds: Optional[Collection[str]] = None) -> List[Tuple[Any, Any]]:
    """Top-``limit`` documents of ``store`` for each query (a row of ``vectors`` and the same query's ``texts``),
    best first, as ``(DocList[StoredDoc], scores)``.

    ``retrieval``: ``'dense'`` (cosine of the vectors; the score is the cosine), ``'lexical'`` (BM25 of ``texts``
    over the documents' text and answer; the score is BM25) or ``'hybrid'`` (both rankings' top ``candidates``
    fused, :func:`fuse`; the score in [0, 1]). ``version``: the embedder version of ``vectors`` (the store refuses
    another). ``kinds``: only documents of these kinds (:func:`covidqa.docs.kind_of`), e.g. ``{'faq'}``; ``None``:
    all. Raises ``ValueError`` for an unknown ``retrieval`` or, for lexical and hybrid, texts missing.
    """
    if retrieval not in RETRIEVALS:
        raise ValueError(f'retrieval must be one of {RETRIEVALS}, not {retrieval!r}')
    count = len(vectors) if getattr(vectors, 'ndim', 2) != 1 else 1
    if retrieval != 'dense' and (texts is None or len(texts) != count):
        raise ValueError(f'{retrieval} retrieval needs the text of every query')
    depth = max(limit, candidates) if retrieval == 'hybrid' else limit  # fusion looks deeper
    if limit <= 0:
        return store.documents([[] for _ in range(count)])
    dense = store.dense(vectors, depth, version, kinds) if retrieval != 'lexical' else None
    words = store.lexical(list(texts or ()), depth, kinds) if retrieval != 'dense' else None
    if dense is None:
        ranked = cast(List[List[Tuple[int, float]]], words)
    elif words is None:
        ranked = dense
    else:
        ranked = [fuse(d, w, bm25_weight, limit) for d, w in zip(dense, words)]
    return store.documents([row[:limit] for row in ranked])


def cosines(vector: Any, vectors: Sequence[Any]) -> np.ndarray:
    """The cosine of one query ``vector`` and each of ``vectors`` (e.g. the embeddings of the documents a search
    found, whatever ranked them: the dense evidence of a lexical or fused match too)."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.float32)
    q = np.asarray(vector, dtype=np.float32).reshape(-1)
    m = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors])
    norms = np.linalg.norm(m, axis=1) * max(float(np.linalg.norm(q)), 1e-12)
    return (m @ q / np.maximum(norms, 1e-12)).astype(np.float32)


__all__ = ['RETRIEVALS', 'DEFAULT_BM25_WEIGHT', 'DEFAULT_CANDIDATES', 'MAX_QUERY_TERMS', 'Rankings', 'cosines',
           'fts_query', 'fuse', 'search']
