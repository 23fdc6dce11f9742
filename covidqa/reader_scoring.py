"""Scoring a reader as it is served: SQuAD exact match / F1 and window loss (:func:`evaluate`), best answers
(:func:`predict`), for any :class:`covidqa.reader.ExtractiveReader`, whatever its backend (torch, ONNX, int8).

:meth:`covidqa.qa.QuestionAnswering.eval` / ``test`` score the in-memory torch model being trained; the service's
``/qa/eval`` and ``/qa/test`` score the reader that ``/answer`` serves, with these (same metrics, same results
types). No jina here.

Example::

    reader = ExtractiveReader('workspace/models/reader', backend='onnx-int8').load()
    evaluate(reader, 'dev.csv').f1          # -> 0.71
    [r.answer for r in predict(reader, 'test.csv')]
"""
from __future__ import annotations

import os
import time
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from covidqa.paths import PathLike
from covidqa.qa import EvalResult, QuestionAnsweringResult
from covidqa.qa_files import QADataError, QARecord, read_qa_file
from covidqa.reader import ExtractiveReader, label_windows
from covidqa.squad_metrics import exact_match, f1_score

Inputs = Union[PathLike, Sequence[QARecord]]


def records_of(inputs: Inputs, require_answers: bool) -> List[QARecord]:
    """The records of a CSV / SQuAD JSON file, or ``inputs`` itself when it is a sequence of :class:`QARecord`."""
    if isinstance(inputs, (str, os.PathLike)):
        return list(read_qa_file(inputs, require_answers=require_answers))
    records = list(inputs)
    if require_answers:
        for record in records:
            if record.answer_text is None:
                raise QADataError(f'record {record.id!r} (row {record.source_row}) has no answer')
    return records


def _char_span(record: QARecord) -> Optional[Tuple[int, int]]:
    if not record.answer_text:
        return None
    return record.answer_start, record.answer_start + len(record.answer_text)


def _cross_entropy(logits: np.ndarray, label: int) -> float:
    x = logits.astype(np.float64)
    m = x.max()
    return float(m + np.log(np.exp(x - m).sum()) - x[label])


def _read(reader: ExtractiveReader, records: Sequence[QARecord]):
    # threshold 0: the best span always answers, as in QuestionAnswering.eval / test
    return reader.read_many_detailed([r.question for r in records], [[r.context] for r in records], top_k=1,
                                     no_answer_threshold=0.0)


def evaluate(reader: ExtractiveReader, inputs: Inputs) -> EvalResult:
    """Mean window loss, SQuAD exact match and F1 of the top answer of ``reader`` on labelled ``inputs``."""
    records = records_of(inputs, require_answers=True)
    if not records:
        raise QADataError(f'{inputs}: no records to evaluate')
    started = time.perf_counter()
    details = _read(reader, records)
    starts, ends = label_windows(details.windows, [_char_span(r) for r in records])
    total = 0.0
    for w, (s_logits, e_logits) in enumerate(details.logits):
        total += 0.5 * (_cross_entropy(s_logits, int(starts[w])) + _cross_entropy(e_logits, int(ends[w])))
    em = f1 = 0.0
    for record, answers in zip(records, details.answers):
        gold = list(record.gold_answers) or [record.answer_text]
        em += exact_match(answers[0].answer, gold)
        f1 += f1_score(answers[0].answer, gold)
    n = len(records)
    return EvalResult(loss=total / max(1, len(details.windows)), exact_match=em / n, f1=f1 / n, count=n,
                      windows=len(details.windows), seconds=time.perf_counter() - started)


def predict(reader: ExtractiveReader, inputs: Inputs) -> List[QuestionAnsweringResult]:
    """The best answer of ``reader`` for every record of ``inputs`` (answers not needed), in order."""
    records = records_of(inputs, require_answers=False)
    if not records:
        return []
    return [QuestionAnsweringResult(a[0].answer, a[0].score, a[0].start, a[0].end)
            for a in _read(reader, records).answers]
