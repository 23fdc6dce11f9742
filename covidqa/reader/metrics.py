"""SQuAD exact match and F1, as in the official SQuAD v1.1/v2.0 evaluation scripts.

Answers are normalised before comparison: lowercase, punctuation removed, the articles ``a``/``an``/``the`` removed,
whitespace collapsed. A prediction is scored against every gold answer and the best score counts. Following SQuAD
v2.0, an empty gold answer (an unanswerable question) only matches an empty prediction (EM = F1 = 1), and vice versa.

Scores are fractions in ``[0, 1]`` (multiply by 100 for the percentages the SQuAD leaderboard shows).

Example::

    >>> exact_match('The Wuhan market', ['wuhan market'])
    1.0
    >>> round(f1_score('seafood market in Wuhan', ['the Wuhan seafood market']), 3)
    0.857
    >>> squad_scores(['bats', 'pangolins'], [['bats'], ['bats', 'civets']])
    SquadScores(exact_match=0.5, f1=0.5, count=2)
"""
from __future__ import annotations

import collections
import re
import string
from dataclasses import dataclass
from typing import Iterable, List, Sequence, Union

__all__ = ['normalize_answer', 'exact_match', 'f1_score', 'SquadScores', 'squad_scores']

_ARTICLES = re.compile(r'\b(a|an|the)\b', re.UNICODE)
_PUNCTUATION = set(string.punctuation)

GoldAnswers = Union[str, Iterable[str]]


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop articles (a, an, the), collapse whitespace.

    >>> normalize_answer('  The (SARS-CoV-2)  virus! ')
    'sarscov2 virus'
    """
    text = text.lower()
    text = ''.join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(' ', text)
    return ' '.join(text.split())


def _tokens(text: str) -> List[str]:
    return normalize_answer(text).split() if text else []


def _as_list(gold: GoldAnswers) -> List[str]:
    if isinstance(gold, str):
        return [gold]
    gold = list(gold)
    if not gold:
        raise ValueError('at least one gold answer is needed (use [""] for an unanswerable question)')
    for answer in gold:
        if not isinstance(answer, str):
            raise TypeError(f'gold answers must be strings, got {type(answer).__name__}: {answer!r}')
    return gold


def _exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = _tokens(prediction), _tokens(gold)
    if not pred_tokens or not gold_tokens:
        # SQuAD v2: no-answer is right only against no-answer
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold_answers: GoldAnswers) -> float:
    """1.0 when the normalised prediction equals the normalised form of any gold answer, else 0.0."""
    return max(_exact(prediction or '', gold) for gold in _as_list(gold_answers))


def f1_score(prediction: str, gold_answers: GoldAnswers) -> float:
    """Token-overlap F1 of the normalised prediction, maximised over the gold answers, in ``[0, 1]``."""
    return max(_f1(prediction or '', gold) for gold in _as_list(gold_answers))


@dataclass(frozen=True)
class SquadScores:
    """Mean exact match and F1 (fractions in ``[0, 1]``) over ``count`` questions."""

    exact_match: float
    f1: float
    count: int


def squad_scores(predictions: Sequence[str], gold_answers: Sequence[GoldAnswers]) -> SquadScores:
    """Mean EM and F1 over aligned ``predictions`` and ``gold_answers`` (each a string or a list of strings).

    Raises ``ValueError`` when the two sequences differ in length or are empty.
    """
    if len(predictions) != len(gold_answers):
        raise ValueError(f'{len(predictions)} predictions but {len(gold_answers)} gold answer lists')
    if not predictions:
        raise ValueError('squad_scores needs at least one prediction')
    em = sum(exact_match(p, g) for p, g in zip(predictions, gold_answers))
    f1 = sum(f1_score(p, g) for p, g in zip(predictions, gold_answers))
    n = len(predictions)
    return SquadScores(exact_match=em / n, f1=f1 / n, count=n)
