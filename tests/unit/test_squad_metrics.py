"""SQuAD EM/F1: normalisation, max over gold answers, v2 empty-answer rules, aggregation."""

import pytest

from covidqa.reader.metrics import SquadScores, exact_match, f1_score, normalize_answer, squad_scores


@pytest.mark.parametrize('raw, expected', [
    ('The Wuhan Market', 'wuhan market'),
    ('  a   virus,  an  host! ', 'virus host'),
    ('SARS-CoV-2.', 'sarscov2'),
    ('theory of the case', 'theory of case'),  # 'the' only as a whole word
    ('', ''),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match_ignores_case_punctuation_articles():
    assert exact_match('The Wuhan market.', 'wuhan market') == 1.0
    assert exact_match('Wuhan', 'wuhan market') == 0.0


def test_max_over_gold_answers():
    assert exact_match('bats', ['pangolins', 'bats']) == 1.0
    assert f1_score('horseshoe bats', ['pangolins', 'bats']) == pytest.approx(2 / 3)


def test_f1_partial_overlap():
    # prediction tokens: seafood market wuhan (3); gold: wuhan seafood market (3 after dropping 'the')
    assert f1_score('seafood market in Wuhan', ['the Wuhan seafood market']) == pytest.approx(2 * 0.75 * 1.0 / 1.75)
    assert f1_score('completely different', 'wuhan market') == 0.0


def test_f1_counts_repeated_tokens_once_each():
    # common = min counts: 'virus' x1
    assert f1_score('virus virus', 'virus') == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_empty_answers_follow_squad_v2():
    assert exact_match('', '') == 1.0
    assert f1_score('', '') == 1.0
    assert f1_score('something', '') == 0.0
    assert f1_score('', 'something') == 0.0
    assert f1_score('', ['something', '']) == 1.0


def test_squad_scores_means():
    scores = squad_scores(['bats', 'pangolins', 'wuhan seafood'], [['bats'], ['bats', 'civets'], 'Wuhan seafood market'])
    assert isinstance(scores, SquadScores)
    assert scores.count == 3
    assert scores.exact_match == pytest.approx(1 / 3)
    assert scores.f1 == pytest.approx((1 + 0 + 0.8) / 3)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match='2 predictions but 1'):
        squad_scores(['a', 'b'], [['a']])
    with pytest.raises(ValueError, match='at least one'):
        squad_scores([], [])
    with pytest.raises(ValueError, match='at least one gold'):
        exact_match('a', [])
    with pytest.raises(TypeError, match='must be strings'):
        f1_score('a', [None])
