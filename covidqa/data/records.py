"""Readers and a writer for extractive-QA data files, returning typed :class:`QARecord` lists.

Supported inputs:

- **CSV** (HappyTransformer's question-answering format), UTF-8 with a header row. Training/eval files have the
  columns ``context, question, answer_text, answer_start``; test files need only ``context, question``. Extra
  columns (e.g. ``id``) are allowed; an ``id`` column, when present, becomes :attr:`QARecord.id`.
  A row with ``answer_text`` empty and ``answer_start`` = ``-1`` is an explicit "no answer" (SQuAD v2) record.
- **SQuAD JSON**, both the nested SQuAD v1/v2 layout
  ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers": [...], "is_impossible"}]}]}]}``
  and the flat one-record-per-question layout
  ``{"data": [{"id", "title", "context", "question", "answers": [{"text", "answer_start"}]}]}``.

Every record is checked: non-empty context and question, ``answer_start`` an integer, and
``context[answer_start:answer_start + len(answer_text)] == answer_text``. A bad record raises :class:`QADataError`
naming the file, the row (CSV: data row number, header excluded, and the line it ends on; JSON: the record number
in file order and its JSON path) and the problem. With ``skip_bad=True`` bad records are skipped instead: the
returned :class:`QARecords` list carries ``skipped`` (the count) and ``problems`` (the messages), and a warning is
issued. Problems with the file as a whole (missing, unreadable, missing columns, not SQuAD JSON) always raise.

Example::

    records = read_qa_file('train.csv')           # -> QARecords[QARecord]
    records[0].answer_text, records[0].answer_start
    write_qa_csv(records, 'copy.csv')
    lenient = read_qa_csv('dirty.csv', skip_bad=True)
    print(len(lenient), 'good rows,', lenient.skipped, 'skipped')
"""
from __future__ import annotations

import csv
import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Tuple, Union

from covidqa.runtime.atomic import atomic_path

__all__ = [
    'QARecord',
    'QARecords',
    'QADataError',
    'read_qa_csv',
    'read_squad_json',
    'read_qa_file',
    'write_qa_csv',
    'QA_CSV_COLUMNS',
    'QA_TEST_CSV_COLUMNS',
]

PathLike = Union[str, os.PathLike]
QA_CSV_COLUMNS = ('context', 'question', 'answer_text', 'answer_start')
QA_TEST_CSV_COLUMNS = ('context', 'question')


class QADataError(ValueError):
    """A QA data file (or one of its rows) is unusable; the message names the file, the row and the problem."""


@dataclass
class QARecord:
    """One question over one context.

    - ``answer_text``/``answer_start``: the (first) gold answer; ``None`` for test records without answers;
      ``''``/``-1`` for an explicit "no answer" record. ``context[answer_start:answer_start+len(answer_text)]``
      always equals ``answer_text`` for answered records.
    - ``id``: the record id from the file (JSON ``id``, CSV ``id`` column) or ``'<row number>'``.
    - ``source_row``: 1-based record number in the file (CSV: data row, header excluded; JSON: question order).
    - ``gold_answers``: all gold answer texts (SQuAD files may list several); defaults to ``(answer_text,)``.
    - ``title``: the article title when the file has one.
    - ``document_id``: in a nested SQuAD file, the id of the paragraph's document (its ``document_id``, else
      ``'<data index>-<paragraph index>'``); ``None`` for flat files and CSVs.
    """

    context: str
    question: str
    answer_text: Optional[str] = None
    answer_start: Optional[int] = None
    id: str = ''
    source_row: int = 0
    gold_answers: Tuple[str, ...] = ()
    title: Optional[str] = None
    document_id: Optional[str] = None

    def __post_init__(self):
        if not self.gold_answers and self.answer_text is not None:
            self.gold_answers = (self.answer_text,)

    @property
    def has_answer(self) -> bool:
        """True when the record carries a gold answer (possibly the empty "no answer")."""
        return self.answer_text is not None

    @property
    def answer_end(self) -> Optional[int]:
        """Character end offset (exclusive) of the answer, ``-1`` for "no answer", ``None`` without answer."""
        if self.answer_text is None:
            return None
        if self.answer_text == '' or self.answer_start is None:
            return -1
        return self.answer_start + len(self.answer_text)

    @property
    def answer_span(self) -> Optional[Tuple[int, int]]:
        """``(start, end)`` character offsets of the answer in the context; ``None`` without an answer or for "no
        answer". Raises ``TypeError`` for an answer text without ``answer_start`` (validated records have one)."""
        if not self.answer_text:
            return None
        if self.answer_start is None:
            raise TypeError(f'record {self.id!r} has answer_text {self.answer_text!r} but no answer_start')
        return self.answer_start, self.answer_start + len(self.answer_text)


class QARecords(list):
    """A ``list`` of :class:`QARecord` that also tells what was skipped (``skip_bad=True``) and where it came from."""

    def __init__(self, records: Iterable[QARecord] = (), path: Optional[Path] = None, skipped: int = 0,
                 problems: Optional[List[str]] = None):
        super().__init__(records)
        self.path = path
        self.skipped = skipped
        self.problems = list(problems or [])


def _parse_start(value, where: str) -> int:
    if isinstance(value, bool):
        raise QADataError(f'{where}: answer_start must be an integer, got {value!r}')
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                as_float = None
            if as_float is not None and as_float.is_integer():
                return int(as_float)
    raise QADataError(f'{where}: answer_start must be an integer, got {value!r}')


def _check_record(where: str, context, question, answer_text, answer_start, require_answers: bool,
                  answers_given: bool) -> Tuple[str, str, Optional[str], Optional[int]]:
    """Validate one record; returns the cleaned ``(context, question, answer_text, answer_start)``."""
    if not isinstance(context, str) or not context.strip():
        raise QADataError(f'{where}: empty or missing context')
    if not isinstance(question, str) or not question.strip():
        raise QADataError(f'{where}: empty or missing question')
    if not answers_given:
        if require_answers:
            raise QADataError(f'{where}: no answer (answer_text/answer_start are required for training and eval)')
        return context, question.strip(), None, None
    if answer_text is None:
        raise QADataError(f'{where}: missing answer_text')
    if not isinstance(answer_text, str):
        raise QADataError(f'{where}: answer_text must be a string, got {answer_text!r}')
    if answer_start is None or (isinstance(answer_start, str) and not answer_start.strip()):
        raise QADataError(f'{where}: missing answer_start')
    start = _parse_start(answer_start, where)
    if answer_text == '':
        if start != -1:
            raise QADataError(
                f'{where}: empty answer_text needs answer_start -1 (an explicit "no answer"), got {start}'
            )
        return context, question.strip(), '', -1
    if not 0 <= start <= len(context) - len(answer_text):
        raise QADataError(
            f'{where}: answer_start {start} is outside the context (context has {len(context)} characters, '
            f'answer {len(answer_text)})'
        )
    found = context[start : start + len(answer_text)]
    if found != answer_text:
        raise QADataError(
            f'{where}: context[{start}:{start + len(answer_text)}] is {found[:60]!r}, '
            f'not the answer_text {answer_text[:60]!r}'
        )
    return context, question.strip(), answer_text, start


def _collect(builders: Iterable[Callable[[], QARecord]], path: Path, skip_bad: bool) -> QARecords:
    """The records the ``builders`` make, in order; one that raises :class:`QADataError` stops the reading, or with
    ``skip_bad`` is counted and its message kept (:func:`_finish`)."""
    records: List[QARecord] = []
    problems: List[str] = []
    for build in builders:
        try:
            records.append(build())
        except QADataError as error:
            if not skip_bad:
                raise
            problems.append(str(error))
    return _finish(records, path, problems)


def _csv_record(where: str, row: dict, row_number: int, required, has_answer_columns: bool,
                require_answers: bool) -> QARecord:
    if None in row:
        raise QADataError(f'{where}: more fields than columns in the header')
    absent = [c for c in required if row.get(c) is None]
    if absent:
        raise QADataError(f'{where}: missing value(s) for column(s) {absent} (row too short)')
    answers_given = has_answer_columns and (
        require_answers or bool((row.get('answer_text') or '').strip() or (row.get('answer_start') or '').strip()))
    context, question, text, start = _check_record(where, row['context'], row['question'], row.get('answer_text'),
                                                   row.get('answer_start'), require_answers, answers_given)
    return QARecord(context=context, question=question, answer_text=text, answer_start=start,
                    id=(row.get('id') or '').strip() or str(row_number), source_row=row_number,
                    title=(row.get('title') or None))


def _json_record(where: str, number: int, context, title, qa, require_answers: bool,
                 document_id: Optional[str]) -> QARecord:
    if not isinstance(qa, dict):
        raise QADataError(f'{where}: not a SQuAD question object')
    text, start, gold, answers_given = _json_answers(where, qa, require_answers)
    context, question, text, start = _check_record(where, context, qa.get('question'), text, start, require_answers,
                                                   answers_given)
    if text:  # every listed gold answer must be consistent too
        for extra in qa.get('answers', [])[1:]:
            _check_record(where, context, question, extra.get('text'), extra.get('answer_start'), True, True)
    return QARecord(context=context, question=question, answer_text=text, answer_start=start,
                    id=str(qa.get('id', number)), source_row=number, gold_answers=gold if text is not None else (),
                    title=title if isinstance(title, str) else None, document_id=document_id)


def _finish(records: List[QARecord], path: Path, problems: List[str]) -> QARecords:
    if problems:
        warnings.warn(
            f'{path}: skipped {len(problems)} bad record(s), kept {len(records)}; first problem: {problems[0]}',
            stacklevel=3,
        )
    return QARecords(records, path=path, skipped=len(problems), problems=problems)


def _existing(path: PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise QADataError(f'{path}: no such file')
    return path


def read_qa_csv(path: PathLike, require_answers: bool = True, skip_bad: bool = False) -> QARecords:
    """Read a HappyTransformer-style QA CSV.

    :param path: CSV with a header row: ``context, question, answer_text, answer_start`` (``require_answers``) or
        at least ``context, question`` (test files; answer columns, if present and filled, are still checked).
    :param require_answers: every row must carry an answer (train/eval files).
    :param skip_bad: skip (and count) bad rows instead of raising :class:`QADataError`.
    :returns: :class:`QARecords` in file order.

    Example: ``read_qa_csv('train.csv')[0]`` -> ``QARecord(context='...', question='...', answer_text='...', ...)``
    """
    path = _existing(path)
    required = QA_CSV_COLUMNS if require_answers else QA_TEST_CSV_COLUMNS
    try:
        with open(path, newline='', encoding='utf-8-sig') as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise QADataError(f'{path}: empty file (expected a header row with columns {list(required)})')
            header = [h.strip() if isinstance(h, str) else h for h in header]
            reader.fieldnames = header
            missing = [c for c in required if c not in header]
            if missing:
                raise QADataError(
                    f'{path}: missing column(s) {missing} in the header {header}; expected {list(required)}'
                )
            has_answer_columns = 'answer_text' in header and 'answer_start' in header
            collected = _collect((functools.partial(_csv_record, f'{path}: row {number} (line {reader.line_num})', row,
                                                    number, required, has_answer_columns, require_answers)
                                  for number, row in enumerate(reader, start=1)), path, skip_bad)
    except UnicodeDecodeError as error:
        raise QADataError(f'{path}: not UTF-8 text ({error})') from None
    except csv.Error as error:
        raise QADataError(f'{path}: malformed CSV ({error})') from None
    return collected


def _json_answers(where: str, qa: dict, require_answers: bool):
    """(answer_text, answer_start, gold_texts, answers_given) of a SQuAD question dict."""
    answers = qa.get('answers')
    if qa.get('is_impossible') is True and not answers:
        return '', -1, ('',), True
    if answers is None or answers == []:
        return None, None, (), False
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        raise QADataError(f'{where}: "answers" must be a list of {{"text", "answer_start"}} objects')
    first = answers[0]
    texts = tuple(a.get('text') for a in answers if isinstance(a.get('text'), str))
    return first.get('text'), first.get('answer_start'), texts, True


def read_squad_json(path: PathLike, require_answers: bool = True, skip_bad: bool = False) -> QARecords:
    """Read a SQuAD JSON file, nested (``data[].paragraphs[].qas[]``) or flat (``data[]`` of question records).

    :param path: the JSON file.
    :param require_answers: every question must carry an answer (``is_impossible: true`` counts as the answer
        "no answer"); with ``False`` questions without answers get ``answer_text=None``.
    :param skip_bad: skip (and count) bad records instead of raising :class:`QADataError`.
    :returns: :class:`QARecords` in file order; the first gold answer is ``answer_text``/``answer_start``, all of
        them are in ``gold_answers``; each answer is checked against its context.

    Example: ``read_squad_json('covid-qa-dev.json')[0].gold_answers``
    """
    path = _existing(path)
    try:
        with open(path, encoding='utf-8-sig') as handle:
            payload = json.load(handle)
    except UnicodeDecodeError as error:
        raise QADataError(f'{path}: not UTF-8 text ({error})') from None
    except json.JSONDecodeError as error:
        raise QADataError(f'{path}: not valid JSON ({error})') from None
    data = payload.get('data') if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise QADataError(f'{path}: not SQuAD JSON: expected an object with a "data" list')

    # flatten to (where, json_path, context, title, qa-dict)
    items: List[Tuple[str, Any, Any, Any, Optional[str]]] = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            items.append((f'data[{i}]', None, None, entry, None))
        elif 'paragraphs' in entry:
            paragraphs = entry['paragraphs'] if isinstance(entry['paragraphs'], list) else []
            if not isinstance(entry['paragraphs'], list):
                items.append((f'data[{i}].paragraphs', None, None, None, None))
            for j, paragraph in enumerate(paragraphs):
                if not isinstance(paragraph, dict) or not isinstance(paragraph.get('qas'), list):
                    items.append((f'data[{i}].paragraphs[{j}]', None, None, None, None))
                    continue
                for k, qa in enumerate(paragraph['qas']):
                    items.append((f'data[{i}].paragraphs[{j}].qas[{k}]', paragraph.get('context'),
                                  entry.get('title'), qa, str(paragraph.get('document_id', f'{i}-{j}'))))
        else:
            items.append((f'data[{i}]', entry.get('context'), entry.get('title'), entry, None))

    return _collect((functools.partial(_json_record, f'{path}: record {number} ({json_path})', number, context, title, qa,
                                       require_answers, document)
                     for number, (json_path, context, title, qa, document) in enumerate(items, start=1)), path,
                    skip_bad)


def read_qa_file(path: PathLike, require_answers: bool = True, skip_bad: bool = False) -> QARecords:
    """Read a ``.csv`` (HappyTransformer columns) or ``.json`` (SQuAD) QA file, dispatching on the suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == '.csv':
        return read_qa_csv(path, require_answers=require_answers, skip_bad=skip_bad)
    if suffix == '.json':
        return read_squad_json(path, require_answers=require_answers, skip_bad=skip_bad)
    raise QADataError(f'{path}: unsupported QA file type {suffix or "(none)"!r}; use .csv or .json (SQuAD)')


def write_qa_csv(records: Iterable[QARecord], path: PathLike) -> Path:
    """Write records as a HappyTransformer QA CSV (atomically: a temporary file renamed into place).

    Columns: ``context, question, answer_text, answer_start`` when any record has an answer (records without one
    get empty cells), else ``context, question`` (a test file). Returns the path written.
    """
    records = list(records)
    path = Path(path)
    with_answers = any(r.answer_text is not None for r in records)
    columns = QA_CSV_COLUMNS if with_answers else QA_TEST_CSV_COLUMNS
    with atomic_path(path) as tmp, open(tmp, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            row: List[object] = [record.context, record.question]
            if with_answers:
                has = record.answer_text is not None
                row += [record.answer_text if has else '', record.answer_start if has else '']
            writer.writerow(row)
    return path
