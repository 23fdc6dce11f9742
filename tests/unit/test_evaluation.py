"""The one retrieval evaluator (covidqa/index/evaluation.py), on rankings worked out by hand."""
import pytest

from covidqa.index.evaluation import first_relevant_ranks, retrieval_scores, scores_of_ranks


def test_hit_at_k_and_mrr_by_hand():
    rankings = [['b', 'a', 'c'], ['c', 'x'], ['y', 'z', 'q']]
    relevant = [{'a'}, {'c', 'x'}, {'w'}]
    assert first_relevant_ranks(rankings, relevant) == [2, 1, None]
    scores = retrieval_scores(rankings, relevant, ks=(1, 2, 3))
    assert scores.hit_at == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: pytest.approx(2 / 3)}
    assert scores.mrr == pytest.approx((1 / 2 + 1) / 3) and scores.queries == 3


def test_edge_cases():
    assert scores_of_ranks([], ks=(1,)).hit_at == {1: 0.0}
    with pytest.raises(ValueError, match='2 rankings but 1 sets'):
        retrieval_scores([['a'], ['b']], [{'a'}])
