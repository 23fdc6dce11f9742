"""One retrieval evaluator for benchmarks, tests and users alike: hit@k (also called recall@k here: a query counts
when one of its relevant documents is in the top k) and MRR (the mean of 1 / rank of the first relevant document,
0 when none is retrieved), from rankings or from the 1-based rank of each query's first relevant document.

Example::

    scores = retrieval_scores([['b', 'a'], ['c']], [{'a'}, {'x'}], ks=(1, 2))
    scores.hit_at[1], scores.hit_at[2], scores.mrr      # 0.0, 0.5, 0.25
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Dict, Hashable, List, Optional, Sequence


@dataclass(frozen=True)
class RetrievalScores:
    """``hit_at[k]``: the share of queries with a relevant document in the top ``k``; ``mrr``; ``queries``."""

    hit_at: Dict[int, float]
    mrr: float
    queries: int


def first_relevant_ranks(rankings: Sequence[Sequence[Hashable]],
                         relevant: Sequence[Collection[Hashable]]) -> List[Optional[int]]:
    """For each query, the 1-based rank of its first relevant document in its ranking, ``None`` when there is none.
    Raises ``ValueError`` when the two lists differ in length."""
    if len(rankings) != len(relevant):
        raise ValueError(f'{len(rankings)} rankings but {len(relevant)} sets of relevant documents')
    return [next((rank for rank, doc in enumerate(ranking, 1) if doc in good), None)
            for ranking, good in zip(rankings, relevant)]


def scores_of_ranks(ranks: Sequence[Optional[int]], ks: Sequence[int] = (1, 5, 10, 20)) -> RetrievalScores:
    """hit@k and MRR from each query's 1-based rank of its first relevant document (``None``: not retrieved)."""
    count = len(ranks)
    if count == 0:
        return RetrievalScores({k: 0.0 for k in ks}, 0.0, 0)
    return RetrievalScores({k: sum(1 for r in ranks if r is not None and r <= k) / count for k in ks},
                           sum(1.0 / r for r in ranks if r) / count, count)


def retrieval_scores(rankings: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]],
                     ks: Sequence[int] = (1, 5, 10, 20)) -> RetrievalScores:
    """hit@k and MRR of ``rankings`` (each query's documents, best first) against ``relevant`` (each query's
    relevant documents)."""
    return scores_of_ranks(first_relevant_ranks(rankings, relevant), ks)


__all__ = ['RetrievalScores', 'first_relevant_ranks', 'retrieval_scores', 'scores_of_ranks']
