"""A reader answer's confidence: the estimated probability that it is right, from evidence the reader already has.

An answer's raw score (``p_start * p_end`` of one softmax over every window of a question) is not a probability of
being right: right answers of COVID-QA score 0.0003-0.01, and a question the indexed documents cannot answer still
gets a span. :class:`Calibrator` maps the evidence of an answer (:data:`FEATURES`, computed by
:func:`answer_features`) to ``P(right)`` with a logistic regression fitted on held-out questions
(:mod:`covidqa.qa.calibrate`; "right" = token F1 >= 0.5 against a gold answer, or the right FAQ entry), and holds
the threshold under which the service says "no answer".

The evidence of one answer (``span`` of ``context``; all logarithms are clipped at ``log(1e-12)``):

- ``log_span``: log of the span's probability under the question-wide softmax;
- ``log_window``: log of its probability within its own window;
- ``log_prior``: log of the lexical discount the reader applied to it (0 = none, :mod:`covidqa.reader.ranking`);
- ``log_no_answer_window``: log of its window's ``[CLS]`` ("no answer here") probability;
- ``log_no_answer``: log of the question's no-answer probability (its most confident window);
- ``agreement``: share of the question's candidate probability on spans that overlap this one;
- ``context_coverage`` / ``sentence_coverage``: share of the question's content words (stemmed, stop words
  dropped) found in the context / in the sentences the span touches;
- ``title_coverage``: the same share in what the context is about (a passage's title, the question of the FAQ
  entry whose answer was read; the context itself when it has none): whether the documents cover the question;
- ``log_rank``: log(1 + the context's position among the contexts read, best retrieved first);
- ``retrieval_cosine``: the embedder's cosine of the question and the FAQ question whose answer the context is
  (``/answer`` gives it for FAQ entries; unknown elsewhere, and unknown evidence counts as average: the feature's
  mean), and only for the embedder version the calibration was fitted with (version 0, the shipped embedder). Given for passages too it
  hurt calibration (docs/decisions.md).

Not a feature: how many contexts were read (only the FAQ set reads several, so it would stand for "an FAQ
question" and move every confidence with ``limit``).


A calibrator belongs to one reader: its file names the reader's sha256 (:func:`calibration_for` finds it; a reader
without one reports its raw scores and never abstains by confidence).

Example::

    calibrator = Calibrator.load('models/reader/calibration.json')
    calibrator.probability(answer_features(...))          # 0.83
    calibrator.threshold                                   # 0.42: below it, "no answer"
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from covidqa.paths import SHIPPED_READER_FILE, PathLike
from covidqa.reader.decoding import DecodedSpans, SpanCandidate
from covidqa.text.lexical import index_terms, sentence_bounds

__all__ = ['CALIBRATION_FILE', 'FEATURES', 'Calibrator', 'answer_features', 'calibration_for',
           'expected_calibration_error', 'reliability_bins']

CALIBRATION_FILE = 'calibration.json'  # beside a reader's weights (the shipped one: models/reader/calibration.json)
FEATURES = ('log_span', 'log_window', 'log_prior', 'log_no_answer_window', 'log_no_answer', 'agreement',
            'context_coverage', 'sentence_coverage', 'title_coverage', 'log_rank', 'retrieval_cosine')
# the features whose growth must never lower the confidence (checked when fitting; see Calibrator.fit)
INCREASING = ('log_span', 'log_window', 'log_prior', 'agreement', 'context_coverage', 'sentence_coverage',
              'title_coverage', 'retrieval_cosine')
_FLOOR = math.log(1e-12)


def _log(x: float) -> float:
    return math.log(x) if x > 1e-12 else _FLOOR


def _coverage(question_terms: set, text: str) -> float:
    if not question_terms:
        return 0.0
    return len(question_terms & set(index_terms(text))) / len(question_terms)


def _span_sentences(context: str, start: int, end: int) -> str:
    parts = [context[a:b] for a, b in sentence_bounds(context) if a < end and b > start]
    return ' '.join(parts) if parts else context[start:end]


def answer_features(question: str, contexts: Sequence[str], decoded: DecodedSpans, candidate: SpanCandidate,
                    prior_score: float, title: Optional[str] = None,
                    cosine: Optional[float] = None) -> Dict[str, float]:
    """The evidence (:data:`FEATURES`) of ``candidate`` among the ``decoded`` spans of ``question`` over
    ``contexts``; ``prior_score``: its score after the lexical prior (its raw ``score`` without one); ``title``:
    what its context is about (a passage's title, the FAQ question whose answer it is), if known; ``cosine``: the
    retrieval cosine of its context, if known (else ``retrieval_cosine`` is left out)."""
    total = sum(c.score for c in decoded.candidates) or 1.0
    overlapping = sum(c.score for c in decoded.candidates
                      if c.context == candidate.context and c.start < candidate.end and c.end > candidate.start)
    terms = set(index_terms(question))
    context = contexts[candidate.context]
    evidence = {
        'log_span': _log(candidate.score),
        'log_window': _log(candidate.window_score),
        'log_prior': min(0.0, _log(prior_score) - _log(candidate.score)),
        'log_no_answer_window': _log(decoded.window_no_answer.get(candidate.window, decoded.no_answer)),
        'log_no_answer': _log(decoded.no_answer),
        'agreement': min(1.0, overlapping / total),
        'context_coverage': _coverage(terms, context),
        'sentence_coverage': _coverage(terms, _span_sentences(context, candidate.start, candidate.end)),
        'title_coverage': _coverage(terms, title) if title else _coverage(terms, context),
        'log_rank': math.log1p(candidate.context),
    }
    if cosine is not None and math.isfinite(cosine):
        evidence['retrieval_cosine'] = float(cosine)
    return evidence


@dataclass
class Calibrator:
    """``P(right | features)`` = sigmoid(``slope * z + offset``), ``z`` = ``intercept`` + sum of ``coef[i] * (x[i] -
    mean[i]) / scale[i]``.

    ``z`` is fitted on every candidate answer (it ranks them); ``slope`` and ``offset`` (> 0, so the ranking stays)
    re-fit it on each question's best candidate, the one the service shows, so that its probability is calibrated.
    ``threshold``: answers below it are "no answer" by default; ``reader_sha256``: the shipped reader file it was
    fitted for ('' for a reader directory's own calibration); ``report``: how it was fitted and scored."""

    coef: List[float]
    intercept: float
    mean: List[float]
    scale: List[float]
    threshold: float
    features: Tuple[str, ...] = FEATURES
    reader_sha256: str = ''
    report: Dict[str, Any] = field(default_factory=dict)
    slope: float = 1.0
    offset: float = 0.0

    def logit(self, features: Dict[str, float]) -> float:
        """``z`` of the answer with these ``features`` (higher: more likely right; a feature left out counts as
        its mean)."""
        x = np.array([features.get(name, m) for name, m in zip(self.features, self.mean)], dtype=np.float64)
        return self.intercept + float(np.dot(self.coef, (x - np.asarray(self.mean)) / np.asarray(self.scale)))

    def probability(self, features: Dict[str, float]) -> float:
        """The probability that the answer with these ``features`` is right, in (0, 1)."""
        z = self.slope * self.logit(features) + self.offset
        return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))

    def refit_best(self, best: Sequence[Dict[str, float]], right: Sequence[bool]) -> None:
        """Fit ``slope`` and ``offset`` on the best candidates of held-out questions (``right``: whether each is),
        then :attr:`threshold` (:func:`best_threshold`) on their probabilities."""
        from sklearn.linear_model import LogisticRegression

        z = np.array([[self.logit(f)] for f in best], dtype=np.float64)
        model = LogisticRegression(C=1e6, max_iter=2000).fit(z, np.asarray(right, dtype=bool))
        self.slope, self.offset = max(1e-3, float(model.coef_[0][0])), float(model.intercept_[0])
        self.threshold = best_threshold([self.probability(f) for f in best], right)

    @classmethod
    def fit(cls, rows: Sequence[Dict[str, float]], labels: Sequence[bool], threshold: Optional[float] = None,
            regularisation: float = 1.0, **extra: Any) -> 'Calibrator':
        """A logistic regression of ``labels`` on the feature ``rows`` (standardised; L2 with ``C =
        regularisation``). A feature of :data:`INCREASING` that got a negative weight (a fit of noise) is dropped
        and the rest refitted, so more evidence never lowers the confidence. ``threshold``: default the one that
        makes the most answer / abstain decisions right on these rows (:func:`best_threshold`)."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(labels, dtype=bool)
        if y.all() or not y.any():
            raise ValueError('calibration needs both right and wrong answers')
        names = [n for n in FEATURES if any(n in row for row in rows)]
        means = {n: float(np.mean([row[n] for row in rows if n in row])) for n in names}
        while True:  # a feature a row lacks (unknown evidence) takes the mean of the rows that have it
            x = np.array([[row.get(n, means[n]) for n in names] for row in rows], dtype=np.float64)
            mean, scale = x.mean(axis=0), x.std(axis=0)
            scale[scale < 1e-9] = 1.0
            model = LogisticRegression(C=regularisation, max_iter=2000).fit((x - mean) / scale, y)
            wrong = [n for n, w in zip(names, model.coef_[0]) if n in INCREASING and w < 0]
            if not wrong:
                break
            names.remove(wrong[0])
        coef = [float(w) for w in model.coef_[0]]
        calibrator = cls(coef, float(model.intercept_[0]), mean.tolist(), scale.tolist(), 0.5, tuple(names), **extra)
        if threshold is None:
            threshold = best_threshold([calibrator.probability(r) for r in rows], [bool(v) for v in y])
        calibrator.threshold = float(threshold)
        return calibrator

    def save(self, path: PathLike) -> Path:
        from covidqa.runtime.atomic import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps({**asdict(self), 'features': list(self.features)}, indent=1) + '\n')
        return path

    @classmethod
    def load(cls, path: PathLike) -> 'Calibrator':
        """Read a calibrator file; ``ValueError`` naming the file when it is not one."""
        try:
            data = json.loads(Path(path).read_text())
            data['features'] = tuple(data['features'])
            unknown = set(data['features']) - set(FEATURES)
            if unknown:
                raise ValueError(f'unknown features {sorted(unknown)}')
            return cls(**data)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{path}: not a reader calibration file ({error})') from None


def best_threshold(probabilities: Sequence[float], right: Sequence[bool]) -> float:
    """The threshold that makes the most decisions right (answer a right answer, abstain on a wrong one) on these
    answers; ties: the lowest."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(right, dtype=bool)
    candidates = np.unique(np.concatenate([[0.0], p]))
    correct = [int(((p >= t) & y).sum() + ((p < t) & ~y).sum()) for t in candidates]
    return float(candidates[int(np.argmax(correct))])


def reliability_bins(probabilities: Sequence[float], right: Sequence[bool], bins: int = 10) -> List[Dict[str, float]]:
    """Equal-width bins of the probabilities: per non-empty bin its ``count``, mean ``confidence`` and the share
    ``right`` (what a reliability diagram plots)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(right, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            out.append({'low': b / bins, 'high': (b + 1) / bins, 'count': int(inside.sum()),
                        'confidence': float(p[inside].mean()), 'right': float(y[inside].mean())})
    return out


def expected_calibration_error(probabilities: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Sum over :func:`reliability_bins` of ``count / n * |right - confidence|`` (0 = perfectly calibrated)."""
    n = len(probabilities)
    if not n:
        raise ValueError('no probabilities to score')
    return float(sum(b['count'] / n * abs(b['right'] - b['confidence'])
                     for b in reliability_bins(probabilities, right, bins)))


def calibration_for(model_path: PathLike) -> Optional[Calibrator]:
    """The calibrator of the reader in ``model_path``: its own ``calibration.json``, else the shipped one
    (``models/reader/calibration.json``) when ``model_path`` is the shipped reader it was fitted for; ``None``
    otherwise."""
    own = Path(str(model_path)) / CALIBRATION_FILE
    if own.is_file():
        return Calibrator.load(own)
    shipped = SHIPPED_READER_FILE.parent / CALIBRATION_FILE
    if not shipped.is_file():
        return None
    calibrator = Calibrator.load(shipped)
    from covidqa.paths import shipped_model_home

    try:
        if Path(str(model_path)).resolve() == shipped_model_home('reader', calibrator.reader_sha256).resolve():
            return calibrator
    except OSError:
        pass
    return None
