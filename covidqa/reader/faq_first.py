"""Answering from FAQ entries and literature passages: the FAQ first, the literature when it does not do.

A curated FAQ answer is what a health service wants to give when one fits; a span read from a scientific passage is
the fallback (the design the deepset COVID-QA service asked for). :func:`read_faq_first` reads, for each question,
its FAQ contexts alone; when the reader trusts one of those answers (a calibrated reader puts no "no answer" first:
:mod:`covidqa.reader.confidence`) that is the reply; otherwise it reads the question's literature contexts alone and
replies with what they give (trusted or not). A question with contexts of one kind only is read once; one without
literature contexts keeps its FAQ reply, trusted or not.

(Reading both kinds together in the second step was measured worse: on the COVID-QA dev articles indexed with the
FAQ, FAQ entries won 45% of the article questions and answer F1 fell to 0.29; ``benchmarks/bench_corpus.py``.)

(A reader without a calibration never says "no answer" first, so with it the FAQ answers whenever it has contexts.)

No jina here; :class:`executors.reader.Reader` calls it for ``collection: auto``. Example::

    answers = read_faq_first(reader, ['How long is the incubation period?'],
                             [[faq_answer, passage]], [['faq', 'literature']])
    answers[0][0].context_index   # index into that question's contexts (1: the passage, when the FAQ did not do)
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Protocol, Sequence, TypeVar

from covidqa.reader.ranking import Answer

T = TypeVar('T')


class Reads(Protocol):
    """What :func:`read_faq_first` needs of a reader (:class:`covidqa.reader.reader.ExtractiveReader` has it)."""

    def read(self, questions: Sequence[str], contexts: Sequence[Sequence[str]],
             context_ids: Optional[Sequence[Optional[Sequence[Optional[str]]]]] = None,
             context_titles: Optional[Sequence[Sequence[Optional[str]]]] = None,
             context_cosines: Optional[Sequence[Sequence[Optional[float]]]] = None, **overrides: Any) -> Any: ...


def _pick(rows: Optional[Sequence[Sequence[T]]], questions: Sequence[int],
          keep: Sequence[Sequence[int]]) -> Optional[List[List[T]]]:
    """``rows`` (aligned with every question's contexts) cut to ``questions`` and, for each, the contexts ``keep``."""
    return None if rows is None else [[rows[q][i] for i in keep[q]] for q in questions]


def read_faq_first(reader: Reads, questions: Sequence[str], contexts: Sequence[Sequence[str]],
                   kinds: Sequence[Sequence[str]],
                   context_ids: Optional[Sequence[Sequence[Optional[str]]]] = None,
                   context_titles: Optional[Sequence[Sequence[Optional[str]]]] = None,
                   context_cosines: Optional[Sequence[Sequence[Optional[float]]]] = None,
                   **overrides: Any) -> List[List[Answer]]:
    """The answers of each question (as ``reader.read(...).answers``, ``context_index`` into the question's own
    ``contexts``), from its FAQ contexts when the reader trusts an answer there, else from its literature contexts
    (any context whose kind is not ``'faq'``).

    :param kinds: aligned with ``contexts``: ``'faq'`` or ``'literature'`` for each context.
    :param context_ids, context_titles, context_cosines, overrides: as :meth:`ExtractiveReader.read`.
    :raises ValueError: when ``kinds`` is not aligned with ``contexts`` (and what ``reader.read`` raises).
    """
    if len(kinds) != len(contexts) or any(len(k) != len(c) for k, c in zip(kinds, contexts)):
        raise ValueError('kinds must name the kind of every context')
    answers: List[Optional[List[Answer]]] = [None] * len(questions)
    faq = [[i for i, kind in enumerate(row) if kind == 'faq'] for row in kinds]
    first = [q for q, keep in enumerate(faq) if keep]
    if first:
        read = reader.read([questions[q] for q in first], [[contexts[q][i] for i in faq[q]] for q in first],
                           _pick(context_ids, first, faq), _pick(context_titles, first, faq),
                           _pick(context_cosines, first, faq), **overrides).answers
        for q, found in zip(first, read):
            trusted = bool(found) and not found[0].is_no_answer
            if trusted or len(faq[q]) == len(contexts[q]):
                answers[q] = [a if a.is_no_answer else dataclasses.replace(a, context_index=faq[q][a.context_index])
                              for a in found]
    again = [q for q, done in enumerate(answers) if done is None]
    if again:
        other = [[i for i, kind in enumerate(row) if kind != 'faq'] for row in kinds]
        read = reader.read([questions[q] for q in again], [[contexts[q][i] for i in other[q]] for q in again],
                           _pick(context_ids, again, other), _pick(context_titles, again, other),
                           _pick(context_cosines, again, other), **overrides).answers
        for q, found in zip(again, read):
            answers[q] = [a if a.is_no_answer else dataclasses.replace(a, context_index=other[q][a.context_index])
                          for a in found]
    return [list(a or []) for a in answers]


__all__ = ['Reads', 'read_faq_first']
