"""Scoring a reader: SQuAD exact match / F1 and window loss (:func:`evaluate`), best answers (:func:`predict`),
for any :class:`covidqa.reader.reader.ExtractiveReader`, whatever its backend (torch, ONNX, int8), and their result types
(:class:`EvalResult`, :class:`QuestionAnsweringResult`).

The one home of these metrics: :meth:`covidqa.qa.api.QuestionAnswering.eval` / ``test`` call them with the reader over
the in-memory torch model being trained; the service's ``/qa/eval`` and ``/qa/test`` with the reader that ``/answer``
serves. No jina here.

Example::

    reader = ExtractiveReader('workspace/models/reader', backend='onnx-int8').load()
    evaluate(reader, 'dev.csv').f1          # -> 0.71
    [r.answer for r in predict(reader, 'test.csv')]
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, List, Sequence, Union

import numpy as np

from covidqa.data.records import QADataError, QARecord, read_qa_file
from covidqa.paths import PathLike
from covidqa.reader.metrics import exact_match, f1_score
from covidqa.reader.ranking import ReadResult
from covidqa.reader.reader import ExtractiveReader
from covidqa.reader.windows import label_windows

Inputs = Union[PathLike, Sequence[PathLike], Sequence[QARecord]]


@dataclass
class EvalResult:
    """Evaluation of a labelled file: mean window loss (start/end cross-entropy, windows without the answer
    labelled ``[CLS]``), SQuAD exact match and F1 (fractions in [0, 1], max over gold answers) of the top answer."""

    loss: float
    exact_match: float
    f1: float
    count: int = 0
    windows: int = 0
    seconds: float = 0.0


@dataclass
class QuestionAnsweringResult:
    """One answer: ``context[start:end] == answer`` (character offsets); ``score`` is a probability in [0, 1]."""

    answer: str
    score: float
    start: int
    end: int


def records_of(inputs: Inputs, require_answers: bool) -> List[QARecord]:
    """The records of a CSV / SQuAD JSON file (or of several files, in order), or ``inputs`` itself when it is a
    sequence of :class:`QARecord`. ``require_answers``: every record needs an answer (else :class:`QADataError`);
    an empty sequence is refused too.

    Example: ``records_of('dev.csv', require_answers=True)[0].answer_text``
    """
    if isinstance(inputs, (str, os.PathLike)):
        return list(read_qa_file(inputs, require_answers=require_answers))
    items: List[Any] = list(inputs)  # records or paths, checked below
    if not items:
        raise QADataError('no training/eval input given (empty list)')
    if all(isinstance(x, QARecord) for x in items):
        if require_answers:
            for record in items:
                if record.answer_text is None:
                    raise QADataError(f'record {record.id!r} (row {record.source_row}) has no answer')
        return items
    records: List[QARecord] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise QADataError(f'inputs must be file paths or QARecord objects, got {type(item).__name__}')
        records.extend(read_qa_file(item, require_answers=require_answers))
    return records


def _cross_entropy(logits: np.ndarray, label: int) -> float:
    x = logits.astype(np.float64)
    m = x.max()
    return float(m + np.log(np.exp(x - m).sum()) - x[label])


def _read(reader: ExtractiveReader, records: Sequence[QARecord]) -> ReadResult:
    # thresholds 0: the best span always answers
    return reader.read([r.question for r in records], [[r.context] for r in records], top_k=1,
                       no_answer_threshold=0.0, confidence_threshold=0.0)


def evaluate(reader: ExtractiveReader, inputs: Inputs) -> EvalResult:
    """Mean window loss, SQuAD exact match and F1 of the top answer of ``reader`` on labelled ``inputs``.

    Long contexts are windowed (the reader's ``max_seq_length``/``doc_stride``) and the best span over all windows
    is the prediction. Raises :class:`QADataError` when ``inputs`` hold no record or a record without an answer.

    Example: ``evaluate(reader, 'dev.csv').f1`` -> ``0.71``
    """
    records = records_of(inputs, require_answers=True)
    if not records:
        raise QADataError(f'{inputs}: no records to evaluate')
    started = time.perf_counter()
    details = _read(reader, records)
    starts, ends = label_windows(details.windows, [r.answer_span for r in records])
    total = 0.0
    for w, (s_logits, e_logits) in enumerate(details.logits):
        total += 0.5 * (_cross_entropy(s_logits, int(starts[w])) + _cross_entropy(e_logits, int(ends[w])))
    em = f1 = 0.0
    for record, answers in zip(records, details.answers):
        prediction = answers[0].answer
        assert record.answer_text is not None  # records_of(require_answers=True) checked it
        gold = list(record.gold_answers) or [record.answer_text]
        em += exact_match(prediction, gold)
        f1 += f1_score(prediction, gold)
    n = len(records)
    return EvalResult(loss=total / max(1, len(details.windows)), exact_match=em / n, f1=f1 / n, count=n,
                      windows=len(details.windows), seconds=time.perf_counter() - started)


def predict(reader: ExtractiveReader, inputs: Inputs) -> List[QuestionAnsweringResult]:
    """The best answer of ``reader`` for every record of ``inputs`` (answers not needed), in order; ``[]`` for no
    record.

    Example: ``[r.answer for r in predict(reader, 'test.csv')]``
    """
    records = records_of(inputs, require_answers=False)
    if not records:
        return []
    return [QuestionAnsweringResult(a[0].answer, a[0].score, a[0].start, a[0].end)
            for a in _read(reader, records).answers]
