"""From a span model's start/end logits to ranked answer spans: a pure function of numpy arrays (no model, no
tokenizer), like the post-processing of transformers' ``examples/pytorch/question-answering/utils_qa.py``.

Inputs, per window of one question (as :func:`covidqa.reader.reader.encode_pairs` makes them):

- ``start_logits``/``end_logits``: float arrays of shape ``(n_tokens,)``;
- ``offsets``: ``(n_tokens, 2)`` int array of character offsets into the window's context (``-1`` outside it);
- ``context_mask``: bool array, True on the context tokens (position 0 is ``[CLS]``, the "no answer" slot);

and the question-wide normaliser (:func:`question_normalisers`): the log-sum-exp of the start (and end) logits over
``[CLS]`` + the context tokens of *all* the question's windows, so ``exp(logit - normaliser)`` is one softmax over
every window and context of the question (shared normalisation, as the reader is trained).

A span runs from a context token to a context token at or after it, at most ``max_answer_length`` tokens long; its
``score`` is ``p_start * p_end`` under the question-wide softmax. Spans whose probability *within their own window*
(softmax over that window's ``[CLS]`` + context tokens, :func:`window_probabilities`) is below
``no_answer_threshold`` are dropped. The no-answer probability of a window is ``p_start[CLS] * p_end[CLS]`` within
it; a question's is that of its window most confident that it holds an answer (the minimum).

Example::

    logits = [(start_logits, end_logits)]                   # one window of 6 tokens: [CLS] q [SEP] c c [SEP]
    decoded = decode_spans(logits, [offsets], [context_mask], top_k=5, max_answer_length=30)
    best = decoded.candidates[0]      # SpanCandidate(start=0, end=11, score=0.71, window=0, context=0, ...)
    context[best.start:best.end]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'DecodedSpans',
    'SpanCandidate',
    'decode_spans',
    'decode_window',
    'drop_overlapping',
    'question_normalisers',
    'window_probabilities',
]

Logits = Tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SpanCandidate:
    """One candidate answer: ``context[start:end]`` (character offsets into the context of window ``window``).

    ``score``: ``p_start * p_end`` under the question-wide softmax; ``window_score``: the same within the window
    alone (what the no-answer threshold is compared with); ``start_token``/``end_token``: its first and last token
    in the window; ``context``: the index of the window's context (as given to :func:`decode_spans`).
    """

    start: int
    end: int
    score: float
    window_score: float
    start_token: int
    end_token: int
    window: int = 0
    context: int = 0

    @property
    def key(self) -> Tuple[int, int, int]:
        """``(context, start, end)``: spans with the same key are the same answer."""
        return self.context, self.start, self.end


@dataclass
class DecodedSpans:
    """What :func:`decode_spans` found for one question: ``candidates`` best first (one per ``(context, start,
    end)``), ``no_answer``, the question's no-answer probability (1.0 without windows), and each window's
    (``window_no_answer[window id]``)."""

    candidates: List[SpanCandidate]
    no_answer: float
    window_no_answer: Dict[int, float] = field(default_factory=dict)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    e = np.exp(x)
    return e / e.sum()


def _allowed(context_mask: np.ndarray) -> np.ndarray:
    allowed = np.asarray(context_mask, dtype=bool).copy()
    allowed[0] = True
    return allowed


def window_probabilities(start_logits: np.ndarray, end_logits: np.ndarray, context_mask: np.ndarray):
    """Start/end probabilities over ``[CLS]`` + the context tokens of one window (0 elsewhere)."""
    allowed = _allowed(context_mask)
    neg = np.float64(-1e9)
    s = np.where(allowed, start_logits.astype(np.float64), neg)
    e = np.where(allowed, end_logits.astype(np.float64), neg)
    return _softmax(s), _softmax(e)


def question_normalisers(logits: Sequence[Logits], context_masks: Sequence[np.ndarray],
                         owners: Sequence[int], n_questions: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per question, the log-sum-exp of the start (and end) logits over ``[CLS]`` + the context tokens of all its
    windows (``owners[w]`` = the question of window ``w``): ``exp(logit - normaliser)`` is then one softmax over
    every window and context of the question, as the reader is trained with shared normalisation
    (:mod:`covidqa.training.losses.shared_norm`). With one window it equals :func:`window_probabilities`.
    Returns two float64 arrays of length ``n_questions`` (``-inf`` for a question without windows)."""
    norm_start = np.full(n_questions, -np.inf)
    norm_end = np.full(n_questions, -np.inf)
    for (start_logits, end_logits), mask, q in zip(logits, context_masks, owners):
        allowed = _allowed(mask)
        norm_start[q] = np.logaddexp(norm_start[q], np.logaddexp.reduce(start_logits[allowed].astype(np.float64)))
        norm_end[q] = np.logaddexp(norm_end[q], np.logaddexp.reduce(end_logits[allowed].astype(np.float64)))
    return norm_start, norm_end


def decode_window(start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray, context_mask: np.ndarray,
                  normaliser: Tuple[float, float], *, top_k: int, max_answer_length: int,
                  no_answer_threshold: float = 0.0, window: int = 0,
                  context: int = 0) -> Tuple[List[SpanCandidate], float]:
    """The candidate spans of one window and its no-answer probability (see the module docstring).

    The ``top_k`` highest-scoring token spans of the window are taken, then those that map to no characters or
    fall below ``no_answer_threshold`` (within the window) are dropped; returns them best first (ties: earlier
    span first) with the window's ``p_start[CLS] * p_end[CLS]``.
    Example: ``decode_window(s, e, off, mask, (lse(s), lse(e)), top_k=20, max_answer_length=64)``.
    """
    mask = np.asarray(context_mask, dtype=bool)
    w_start, w_end = window_probabilities(start_logits, end_logits, mask)
    no_answer = float(w_start[0] * w_end[0])
    idx = np.nonzero(mask)[0]
    if len(idx) == 0:
        return [], no_answer
    norm_start, norm_end = normaliser
    p_start = np.exp(start_logits.astype(np.float64) - norm_start)
    p_end = np.exp(end_logits.astype(np.float64) - norm_end)
    scores = np.outer(p_start[idx], p_end[idx])
    span_len = idx[None, :] - idx[:, None]
    scores[(span_len < 0) | (span_len >= max_answer_length)] = 0.0
    flat = scores.ravel()
    n = min(top_k, flat.size)
    top = np.argpartition(-flat, n - 1)[:n]
    found = []
    for t in top:
        score = float(flat[t])
        if score <= 0.0:
            continue
        s_tok, e_tok = int(idx[t // len(idx)]), int(idx[t % len(idx)])
        c_start, c_end = int(offsets[s_tok, 0]), int(offsets[e_tok, 1])
        if c_end <= c_start:
            continue
        in_window = float(w_start[s_tok] * w_end[e_tok])
        if in_window < no_answer_threshold:
            continue
        found.append(SpanCandidate(c_start, c_end, score, in_window, s_tok, e_tok, window, context))
    found.sort(key=lambda c: (-c.score, c.start_token, c.end_token))
    return found, no_answer


def decode_spans(logits: Sequence[Logits], offsets: Sequence[np.ndarray], context_masks: Sequence[np.ndarray],
                 normaliser: Optional[Tuple[float, float]] = None, *, top_k: int = 20, max_answer_length: int = 64,
                 no_answer_threshold: float = 0.0, contexts: Optional[Sequence[int]] = None,
                 windows: Optional[Sequence[int]] = None) -> DecodedSpans:
    """Ranked candidate spans over all windows of one question.

    :param logits: ``(start_logits, end_logits)`` per window; ``offsets``/``context_masks`` aligned with it.
    :param normaliser: ``(start, end)`` question-wide log-sum-exp (default: computed over these windows with
        :func:`question_normalisers`; pass it when the question has more windows than given here).
    :param top_k: candidates taken from each window (before merging).
    :param max_answer_length: longest span in tokens.
    :param no_answer_threshold: spans whose probability within their window is below it are dropped.
    :param contexts: the context index of each window (default 0), copied into :attr:`SpanCandidate.context`.
    :param windows: the id of each window (default its position), copied into :attr:`SpanCandidate.window`.
    :returns: :class:`DecodedSpans`: one candidate per ``(context, start, end)`` (the best-scoring window wins),
        sorted by descending score, then ``(context, start, end)``; and the question's no-answer probability.

    Example: ``decode_spans([(s, e)], [off], [mask], top_k=5).candidates[0]``.
    """
    if not len(logits) == len(offsets) == len(context_masks):
        raise ValueError(f'{len(logits)} logits but {len(offsets)} offsets and {len(context_masks)} context masks')
    if normaliser is None:
        norm_start, norm_end = question_normalisers(logits, context_masks, [0] * len(logits), 1)
        normaliser = (float(norm_start[0]), float(norm_end[0]))
    best: dict = {}
    no_answer = 1.0
    per_window: Dict[int, float] = {}
    for i, ((start_logits, end_logits), off, mask) in enumerate(zip(logits, offsets, context_masks)):
        window = windows[i] if windows is not None else i
        found, window_no_answer = decode_window(
            start_logits, end_logits, off, mask, normaliser, top_k=top_k, max_answer_length=max_answer_length,
            no_answer_threshold=no_answer_threshold, window=window,
            context=contexts[i] if contexts is not None else 0)
        no_answer = min(no_answer, window_no_answer)
        per_window[window] = window_no_answer
        for candidate in found:
            if candidate.key not in best or candidate.score > best[candidate.key].score:
                best[candidate.key] = candidate
    ranked = sorted(best.values(), key=lambda c: (-c.score, c.key))
    return DecodedSpans(ranked, no_answer, per_window)


def drop_overlapping(spans: Sequence[Tuple[int, int, int]], overlap_threshold: float,
                     limit: Optional[int] = None) -> List[int]:
    """Which of ``spans`` to keep so that no two kept answers are near-copies of each other (haystack's
    ``ExtractiveReader(overlap_threshold=...)``).

    :param spans: ``(context, start, end)`` character spans, best first.
    :param overlap_threshold: a span is dropped when it shares more than this fraction of its own characters, or of
        the characters of a better span already kept, with that span (same context only); ``1.0`` keeps every span.
    :param limit: stop after this many kept spans (default: all).
    :returns: the indices of the kept spans, in the given (best-first) order.

    Example: "the river in Maine" (0-18) kept, then "the river" (0-9) shares 100% of its characters with it: dropped;
    "in Maine" (10-18) against "the river in" (0-12) shares 2 of 8 and 2 of 12 characters (25%): kept at a threshold
    of 0.25 or more. ``drop_overlapping([(0, 0, 18), (0, 0, 9), (1, 0, 9)], 0.01) == [0, 2]``.
    """
    kept: List[int] = []
    for i, (context, start, end) in enumerate(spans):
        if limit is not None and len(kept) >= limit:
            break
        length = max(end - start, 1)
        duplicate = False
        for j in kept:
            other_context, other_start, other_end = spans[j]
            if other_context != context:
                continue
            shared = min(end, other_end) - max(start, other_start)
            if shared > 0 and max(shared / length, shared / max(other_end - other_start, 1)) > overlap_threshold:
                duplicate = True
                break
        if not duplicate:
            kept.append(i)
    return kept
