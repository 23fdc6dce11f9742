"""The command line's own logic: scores shown as a person reads them, JSON depth checked without recursion."""
import pytest

from client.__main__ import legible_score
from executors.gateway.http import MAX_JSON_DEPTH, json_depth_over


@pytest.mark.parametrize('score, shown', [
    (0.527, '53%'), (0.095, '9.5%'), (0.0999, '10%'), (0.0121, '1.2%'), (0.0011, '0.11%'), (0.0003, '0.03%'),
    (0.00001, '<0.01%'), (0.0, '<0.01%'), (1.0, '100%'),
])
def test_scores_are_shown_as_percentages(score, shown):
    assert legible_score(score) == shown


def nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_json_depth_is_counted_to_any_depth_without_recursion():
    assert not json_depth_over({'data': [{'text': 'x', 'matches': [{'answers': [{}]}]}]}, 7)
    assert json_depth_over({'data': [{'text': 'x', 'matches': [{'answers': [{}]}]}]}, 6)
    assert not json_depth_over(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH)
    assert json_depth_over(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)
    assert json_depth_over(nested(100_000), MAX_JSON_DEPTH)  # far past Python's recursion limit
    assert not json_depth_over('text', 1) and not json_depth_over(None, 1)
