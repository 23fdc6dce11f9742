"""CovidQA question/answer rows -> docarray ``DocList[QADoc]``, like finetuner's ``toydata.generate_qa``.

Input: a CSV with the columns ``question, answer`` and optionally ``wrong_answer`` (plus any metadata columns; ``title``,
``source``, ``link``/``url`` are kept). It can be a local path or an http(s) URL, downloaded once into a cache
(``$COVIDQA_CACHE`` or ``~/.cache/covidqa``). Without a ``wrong_answer`` column, each row gets another row's answer
(deterministic for a seed) as its wrong answer.

Each row becomes one :class:`covidqa.docs.QADoc` with ``text`` = the question (or another column, e.g. the short
``title`` of xhlulu's community CSV), ``answer`` and ``wrong_answer`` kept on the document, and a stable id derived
from the question and answer (re-indexing the same file replaces rather than duplicates).

Bad rows (empty question or answer) raise :class:`covidqa.data.records.QADataError` naming file and row; with
``skip_bad=True`` they are skipped, counted in the returned list's ``skipped`` and reported with a warning.

Example::

    docs = generate_qa('faq_covidbert.csv')                        # every row
    train = generate_qa('community.csv', num_total=600, num_train=500, question_column='title')
    test = generate_qa('community.csv', num_total=600, num_train=500, is_testset=True, question_column='title')
"""
from __future__ import annotations

import csv
import hashlib
import os
import random
import shutil
import sys
import urllib.request
import warnings
from pathlib import Path
from typing import Optional, Union

from covidqa.data.formats import URL_COLUMNS, faq_id
from covidqa.data.records import QADataError
from covidqa.docs import DocList, QADoc
from covidqa.paths import FAQ_FILE, data_dir
from covidqa.runtime.atomic import atomic_path

PathLike = Union[str, os.PathLike]
DEFAULT_FAQ_URL = 'https://raw.githubusercontent.com/deepset-ai/COVID-QA/master/data/faqs/faq_covidbert.csv'



def cache_dir() -> Path:
    return Path(os.environ.get('COVIDQA_CACHE') or Path.home() / '.cache' / 'covidqa')


def fetch(source: PathLike) -> Path:
    """A local path as is; an http(s) URL downloaded once into :func:`cache_dir` (atomically) and reused after."""
    text = str(source)
    if not text.startswith(('http://', 'https://')):
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f'no such data file: {path}')
        return path
    target = cache_dir() / (hashlib.sha1(text.encode()).hexdigest()[:12] + '-' + Path(text).name)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as tmp, open(tmp, 'wb') as out, urllib.request.urlopen(text, timeout=60) as response:
            shutil.copyfileobj(response, out)
    except BaseException as exc:
        if isinstance(exc, OSError):
            raise OSError(f'could not download {text}: {exc}; pass a local copy of the file instead') from exc
        raise
    return target


def default_faq_source() -> PathLike:
    """The deepset COVID-19 FAQ: the local copy under the data root (``$COVIDQA_DATA``) when there is one, so that an
    offline machine needs no download; else its URL (downloaded once by :func:`fetch`)."""
    local = data_dir() / FAQ_FILE
    return local if local.is_file() else DEFAULT_FAQ_URL


def check_faq_columns(source: PathLike, question_column: str = 'question', answer_column: str = 'answer') -> Path:
    """The local path of the FAQ CSV ``source`` (:func:`fetch`), after checking that its header has both columns.

    Raises ``FileNotFoundError`` for a missing file and :class:`covidqa.data.records.QADataError` naming the missing
    columns and the ones the file has. Reads only the header, so a launcher can check before it starts anything."""
    path = fetch(source)
    with open(path, newline='', encoding='utf-8') as f:
        columns = next(csv.reader(f), [])
    missing = [c for c in (question_column, answer_column) if c not in columns]
    if missing:
        raise QADataError(f'{path}: missing column(s) {missing}; the file has {columns}')
    return path


def generate_qa(
    source: Optional[PathLike] = None,
    num_total: Optional[int] = None,
    num_train: Optional[int] = None,
    is_testset: bool = False,
    question_column: str = 'question',
    skip_bad: bool = False,
    answer_column: str = 'answer',
    seed: int = 42,
) -> DocList[QADoc]:
    """Read a CovidQA CSV into ``DocList[QADoc]``.

    :param source: path or URL of the CSV (default: deepset's COVID-19 FAQ CSV, :func:`default_faq_source`: the copy
        under ``$COVIDQA_DATA`` if present, else downloaded once).
    :param num_total: use only the first ``num_total`` good rows (default: all).
    :param num_train: with ``is_testset``, rows ``[0, num_train)`` are the training set, the rest the test set.
    :param is_testset: return the test part instead of the training part (only with ``num_train``).
    :param question_column: the column that becomes ``text`` (e.g. ``title`` for xhlulu's community CSV).
    :param skip_bad: skip rows with an empty question/answer (counted) instead of raising.
    :param answer_column: the column that becomes ``answer``.
    :param seed: seed for choosing wrong answers when the file has none.
    :return: the documents; the list has ``skipped`` and ``problems`` attributes.
    """
    path = check_faq_columns(source or default_faq_source(), question_column, answer_column)
    csv.field_size_limit(sys.maxsize)
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        has_wrong = 'wrong_answer' in columns
        rows, problems = [], []
        for number, row in enumerate(reader, start=1):
            question = (row.get(question_column) or '').strip()
            answer = (row.get(answer_column) or '').strip()
            problem = None
            if not question:
                problem = f'empty {question_column!r}'
            elif not answer:
                problem = f'empty {answer_column!r}'
            if problem:
                message = f'{path}: row {number} (line {reader.line_num}): {problem}'
                if not skip_bad:
                    raise QADataError(message + '; pass skip_bad=True to skip such rows')
                problems.append(message)
                continue
            rows.append((number, question, answer, row))
            if num_total is not None and len(rows) >= num_total:
                break
    if len(rows) < 2 and not has_wrong:
        raise QADataError(f'{path}: needs at least 2 good rows to draw wrong answers from another row')
    rng = random.Random(seed)
    docs = DocList[QADoc]()
    for i, (number, question, answer, row) in enumerate(rows):
        wrong = (row.get('wrong_answer') or '').strip() if has_wrong else ''
        if not wrong:  # take another row's answer
            for _ in range(20):
                j = rng.randrange(len(rows))
                if rows[j][2] != answer:
                    wrong = rows[j][2]
                    break
        url = next((row[c] for c in URL_COLUMNS if row.get(c)), None)
        docs.append(QADoc(
            id=faq_id(question, answer), text=question, answer=answer, wrong_answer=wrong or None,  # type: ignore[arg-type]
            title=row.get('title') or None, source=row.get('source') or None, url=url,
        ))
    if num_train is not None:
        docs = docs[num_train:] if is_testset else docs[:num_train]
    elif is_testset:
        raise ValueError('is_testset=True needs num_train (the size of the training part)')
    if problems:
        warnings.warn(f'{path}: skipped {len(problems)} bad row(s), e.g. {problems[0]}')
    docs.skipped = len(problems)  # type: ignore[attr-defined]
    docs.problems = problems  # type: ignore[attr-defined]
    return docs
