"""Lexical sentence prior for the reader: how well each sentence of a context matches the question's words (BM25).

COVID-QA's questions often reuse the words of the sentence that answers them, and a reader fine-tuned on ~2,200
questions, reading a 25k-character article in ~20 windows, is most often wrong about *which window* holds the
answer, not about the span within it. BERTserini (Yang et al., 2019) ranks answers by interpolating the reader's
score with the BM25 score of the passage; this module does that per sentence: every sentence of a question's
contexts gets a BM25 score against the question (IDF over those same sentences), divided by the best one, so the
best-matching sentence has 1.0. The reader multiplies a span's probability by ``exp(-weight * (1 - match))``, where
``match`` is the best normalised score of the sentences the span touches (:class:`covidqa.reader.reader.ExtractiveReader`,
``lexical_weight``): spans in the best-matching sentence keep their score, others are discounted.

Words: lowercased runs of letters and digits, without the stop words of :mod:`covidqa.text.question_match`; words of at
least 6 letters are cut to their first 6 (the same crude stem as the question-word token type).

Inputs: a question and its contexts (strings). Output: per context, a list of :class:`Sentence` (character
``start``/``end`` and ``match`` in [0, 1]).

Example::

    matches = sentence_matches('What is the incubation period?', [article])
    best = max(matches[0], key=lambda s: s.match)          # match == 1.0
    article[best.start:best.end]
"""
from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from covidqa.text.question_match import STEM_LENGTH, STOP_WORDS

BM25_K1 = 1.2
BM25_B = 0.75
WORD = re.compile(r'[^\W_]+')  # a word: a run of letters and digits (also covidqa.index.hybrid's)
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+|\n+')


@dataclass(frozen=True)
class Sentence:
    """One sentence of a context: ``context[start:end]``, and how well it matches the question (best = 1.0)."""

    start: int
    end: int
    match: float


def index_terms(text: str) -> List[str]:
    """The words BM25 counts: lowercased letter/digit runs, stop words dropped, cut to ``STEM_LENGTH`` letters."""
    words = (w.lower() for w in WORD.findall(text))
    return [w[:STEM_LENGTH] for w in words if w not in STOP_WORDS]


def sentence_bounds(text: str) -> List[tuple]:
    """``(start, end)`` character bounds of the sentences of ``text`` (split after ``.!?`` + space, and at newlines);
    together they cover the text."""
    cuts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def sentence_matches(question: str, contexts: Sequence[str]) -> List[List[Sentence]]:
    """BM25 of every sentence of ``contexts`` against ``question``, normalised by the best over all contexts (so
    the best sentence has ``match`` 1.0). With no question word in any sentence every ``match`` is 1.0 (no
    preference)."""
    bounds = [sentence_bounds(c) for c in contexts]
    terms = [[index_terms(c[a:b]) for a, b in bs] for c, bs in zip(contexts, bounds)]
    flat = [t for ts in terms for t in ts]
    wanted = set(index_terms(question))
    n = len(flat)
    raw: List[List[float]] = [[0.0] * len(ts) for ts in terms]
    if n and wanted:
        df = Counter(w for t in flat for w in set(t) if w in wanted)
        idf = {w: math.log(1.0 + (n - df[w] + 0.5) / (df[w] + 0.5)) for w in df}
        avg = max(1e-9, float(np.mean([len(t) for t in flat])))
        for ci, ts in enumerate(terms):
            for si, t in enumerate(ts):
                tf = Counter(w for w in t if w in idf)
                norm = BM25_K1 * (1.0 - BM25_B + BM25_B * len(t) / avg)
                raw[ci][si] = sum(idf[w] * f * (BM25_K1 + 1.0) / (f + norm) for w, f in tf.items())
    best = max((s for r in raw for s in r), default=0.0)
    return [[Sentence(a, b, (s / best) if best > 0 else 1.0) for (a, b), s in zip(bs, r)]
            for bs, r in zip(bounds, raw)]


def span_match(sentences: Sequence[Sentence], start: int, end: int, starts: Optional[Sequence[int]] = None) -> float:
    """The best ``match`` of the sentences that overlap ``[start, end)`` (1.0 when none do). ``starts``: the
    sentences' ``start`` values, precomputed when calling this for many spans of one context."""
    starts = starts if starts is not None else [s.start for s in sentences]
    last = bisect.bisect_left(starts, end) - 1  # the last sentence starting before the span ends
    best = None
    i = last
    while i >= 0 and sentences[i].end > start:
        best = sentences[i].match if best is None else max(best, sentences[i].match)
        i -= 1
    return 1.0 if best is None else best
