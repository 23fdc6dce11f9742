"""The reader's answers and how they are ranked: :class:`Answer`, :class:`ReadResult`, the lexical prior of a span
(:func:`lexical_priors`) and the final choice of the ``top_k`` distinct answers (:func:`rank`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from covidqa.reader.decoding import DecodedSpans, SpanCandidate, drop_overlapping
from covidqa.reader.windows import QAWindows
from covidqa.text.lexical import sentence_matches, span_match


@dataclass
class Answer:
    """One extracted answer, best-first in :meth:`ExtractiveReader.read` results.

    ``contexts[context_index][start:end] == answer`` (character offsets). ``score``: with a calibrated reader the
    probability that the answer is right (:mod:`covidqa.reader.confidence`), else the reader's span score;
    ``span_score``: the reader's span score (after the lexical prior) either way; ``evidence``: what the
    confidence is computed from (:func:`covidqa.reader.confidence.answer_features`). The no-answer result has
    ``answer=''``, ``start=end=-1``, ``context_id=None``, ``context_index=-1``; its score is the probability that
    no answer found is right (calibrated), else the model's no-answer probability.
    """

    answer: str
    score: float
    start: int
    end: int
    context_id: Optional[str] = None
    context_index: int = -1
    span_score: float = 0.0
    candidate: Optional[SpanCandidate] = field(default=None, repr=False, compare=False)
    evidence: Optional[Dict[str, float]] = field(default=None, repr=False, compare=False)

    @property
    def is_no_answer(self) -> bool:
        return self.start < 0


def lexical_priors(question: str, contexts: Sequence[str], candidates: Sequence[SpanCandidate],
                    scores: Sequence[float], lexical_weight: float) -> List[float]:
    """``scores[i]`` (of ``candidates[i]``) times ``exp(-lexical_weight * (1 - match))``, ``match`` being how well
    the context sentences the span touches match the question's words (:mod:`covidqa.text.lexical`)."""
    per_context = sentence_matches(question, contexts)  # every context was checked to be a string
    starts = [[x.start for x in sents] for sents in per_context]
    return [score * math.exp(-lexical_weight * (1.0 - span_match(per_context[c.context], c.start, c.end,
                                                                 starts[c.context])))
            for c, score in zip(candidates, scores)]


def rank(decoded: DecodedSpans, scores: Sequence[float], contexts: Sequence[str],
          context_ids: Optional[Sequence[Optional[str]]], top_k: int, overlap_threshold: float) -> List[Answer]:
    """The ``top_k`` best candidates (by ``scores``, ties by ``(context, start, end)``; near-copies of a better one
    dropped, :func:`drop_overlapping`) as :class:`Answer`; the no-answer result when there is none."""
    ordered = sorted(zip(scores, decoded.candidates), key=lambda sc: (-sc[0], sc[1].key))
    ranked = [ordered[i] for i in drop_overlapping([c.key for _, c in ordered], overlap_threshold, limit=top_k)]
    answers = [Answer(answer=contexts[c.context][c.start:c.end], score=score, start=c.start, end=c.end,
                      context_id=(context_ids[c.context] if context_ids is not None else None),
                      context_index=c.context, span_score=score, candidate=c)
               for score, c in ranked]
    if not answers:
        answers.append(no_answer(decoded.no_answer))
    return answers


def no_answer(score: float) -> Answer:
    """The "no answer" result with this score (NaN counts as 0)."""
    return Answer('', float(score) if not math.isnan(score) else 0.0, -1, -1)


@dataclass
class ReadResult:
    """What :meth:`covidqa.reader.reader.ExtractiveReader.read` computed.

    ``answers[i]``: the answers of question ``i``; ``windows``/``logits``: every window and its (start, end) logits;
    ``pair_owner[p] = (question index, context index)`` of window pair ``p`` (``windows.pair`` holds ``p``).
    """

    answers: List[List[Answer]]
    windows: QAWindows
    logits: List[Tuple[np.ndarray, np.ndarray]]
    pair_owner: List[Tuple[int, int]]
