"""Long articles as reader-sized passages with exact character offsets (no jina here).

COVID-QA's full-article records (``covid_qa_deepset/covid-qa-*.json``) hold one ~25k-character scientific article
per record. To answer from them through the Flow, an article is cut into passages that each fit one reader window
(:class:`covidqa.reader.reader.ExtractiveReader`, 384 tokens with the question), indexed like FAQ entries, retrieved and
read. Every passage keeps the article's id and title and its character offsets, so ``passage.text ==
article_text[passage.start:passage.end]`` and a gold answer can be located in it by offsets.

Splitting (:func:`split_article`): the article's lines (paragraphs; COVID-QA separates them by newlines) are the
units; a line longer than ``max_size`` is cut into sentences (:func:`covidqa.text.lexical.sentence_bounds`), a sentence
longer than that at word boundaries (a word longer than that by characters). Consecutive units are then packed
greedily into passages of at most ``max_size``. Sizes are measured by ``size`` (default ``len``: characters; pass a
tokenizer's token count to cut by tokens). Passages are trimmed of surrounding whitespace, ordered, do not overlap
(unless ``overlap`` is asked for, below) and together hold every non-whitespace character of the article. The
default of 1,000 characters makes passages of 195 WordPiece tokens (median; 99th percentile 295 on the COVID-QA dev
articles), so a passage and its question fit one 384-token reader window; the rare denser passage (3 of 651 over 317
tokens, at most 401) is read in two windows.

With ``overlap`` > 0 (default 0) a passage after the first starts with the last whole sentences of the passage before
it (as many as fit ``overlap`` and, with the passage's own first unit, ``max_size``), so that a fact cut at a passage
boundary is whole in one of the two. The repeated sentences are never the whole previous passage and come only from
that passage's own (not repeated) part; when its last sentence is longer than ``overlap`` nothing is repeated.
Offsets stay exact; passages are then ordered (by start, and by end) but overlap.

Example::

    articles = read_squad_articles('covid_qa_deepset/covid-qa-dev.json')      # [Article], questions included
    passages = split_articles(articles)                                         # [Passage]
    article = articles[0]
    assert all(p.text == article.text[p.start:p.end] for p in passages if p.article_id == article.id)
    q = article.questions[0]
    passages_holding(passages, q.article_id, q.answer_start, q.answer_end)     # [Passage] holding the gold span
"""
from __future__ import annotations

import bisect
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from covidqa.data.records import QADataError, read_squad_json
from covidqa.text.lexical import sentence_bounds

__all__ = [
    'DEFAULT_MAX_CHARS',
    'Passage',
    'ArticleQuestion',
    'Article',
    'read_squad_articles',
    'split_article',
    'split_articles',
    'passages_holding',
    'trim_span',
]

PathLike = Union[str, os.PathLike]
DEFAULT_MAX_CHARS = 1000
_LINE = re.compile(r'[^\n]+')
_NON_SPACE = re.compile(r'\S+')


# --------------------------------------------------------------------------------------------------- typed results
@dataclass(frozen=True)
class Passage:
    """One passage of an article: ``text == article_text[start:end]`` (character offsets, ``end`` exclusive).

    ``id`` is ``'<article_id>:<index>'`` (``index``: 0-based position in the article).
    """

    id: str
    article_id: str
    title: Optional[str]
    index: int
    start: int
    end: int
    text: str

    def holds(self, article_id: str, start: int, end: int) -> bool:
        """Whether the span ``[start, end)`` of article ``article_id`` lies inside this passage."""
        return article_id == self.article_id and self.start <= start and end <= self.end


@dataclass(frozen=True)
class ArticleQuestion:
    """One question about an article, with its (first) gold answer: ``article.text[answer_start:answer_end] ==
    answer_text``; ``gold_answers`` lists every gold text (for EM/F1)."""

    id: str
    question: str
    article_id: str
    answer_text: str
    answer_start: int
    gold_answers: Tuple[str, ...]

    @property
    def answer_end(self) -> int:
        return self.answer_start + len(self.answer_text)


@dataclass(frozen=True)
class Article:
    """A full article: ``id`` (the file's ``document_id``), ``title`` and its ``text``, and its questions."""

    id: str
    title: Optional[str]
    text: str
    questions: Tuple[ArticleQuestion, ...] = ()


# --------------------------------------------------------------------------------------------------- reading
def _title_of(text: str) -> Optional[str]:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


def read_squad_articles(path: PathLike) -> List[Article]:
    """Articles of a SQuAD-format full-article file (COVID-QA: one paragraph per article, the whole article text).

    Input: the nested SQuAD layout ``{"data": [{"title"?, "paragraphs": [{"context", "document_id"?, "qas": [{"id",
    "question", "answers": [{"text", "answer_start"}]}]}]}]}``, read by the one SQuAD reader
    (:func:`covidqa.data.records.read_squad_json`). Output: one :class:`Article` per context that has questions, in
    file order. An article's ``id`` is its ``document_id`` (else ``'<data index>-<paragraph index>'``); its ``title``
    the record's ``title``, else the first non-empty line of the context (COVID-QA articles start with their title).
    Questions without answers (SQuAD v2 impossible ones) are left out of the article's questions.

    Raises ``ValueError`` (:class:`covidqa.data.records.QADataError`, naming the file and the record) when the file
    is not nested SQuAD JSON, a context is empty, a gold answer does not sit at its ``answer_start`` or one
    ``document_id`` has two contexts; ``FileNotFoundError`` when there is no file.

    Example: ``read_squad_articles('covid_qa_deepset/covid-qa-dev.json')`` -> 21 articles, 159 questions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'no article file {path}')
    articles: Dict[str, Article] = {}
    questions: Dict[str, List[ArticleQuestion]] = {}
    for record in read_squad_json(path, require_answers=False):
        if record.document_id is None:
            raise QADataError(f'{path}: record {record.source_row} has no "paragraphs" list around it (a flat '
                              f'one-question-per-record file? use covidqa.data.records.read_qa_file)')
        article_id = record.document_id
        known = articles.get(article_id)
        if known is not None and known.text != record.context:
            raise QADataError(f'{path}: record {record.source_row}: document_id {article_id!r} is used by two '
                              f'different contexts')
        if known is None:
            articles[article_id] = Article(article_id, record.title or _title_of(record.context), record.context)
            questions[article_id] = []
        if record.answer_text:
            questions[article_id].append(ArticleQuestion(
                id=record.id, question=record.question, article_id=article_id, answer_text=record.answer_text,
                answer_start=int(record.answer_start or 0), gold_answers=tuple(record.gold_answers)))
    return [dataclasses.replace(article, questions=tuple(questions[article_id]))
            for article_id, article in articles.items()]


# --------------------------------------------------------------------------------------------------- splitting
def trim_span(text: str, start: int, end: int) -> Optional[Tuple[int, int]]:
    """``[start, end)`` of ``text`` without its leading and trailing whitespace; ``None`` when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _largest_fitting(text: str, start: int, cuts: Sequence[int], max_size: int, size: Callable[[str], int]) -> int:
    """Index of the largest ``cut`` in the ascending ``cuts`` with ``size(text[start:cut]) <= max_size``, or -1."""
    lo, hi, best = 0, len(cuts) - 1, -1
    while lo <= hi:
        mid = (lo + hi) // 2
        if size(text[start:cuts[mid]]) <= max_size:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def _cut_words(text: str, start: int, end: int, max_size: int, size: Callable[[str], int]) -> List[Tuple[int, int]]:
    """``[start, end)`` (trimmed) cut at word ends into pieces of at most ``max_size``; a single word over the limit
    is cut by characters."""
    pieces = []
    while start < end:
        if size(text[start:end]) <= max_size:
            pieces.append((start, end))
            break
        word_ends = [m.end() for m in _NON_SPACE.finditer(text, start, end)]
        best = _largest_fitting(text, start, word_ends, max_size, size)
        if best >= 0:
            cut = word_ends[best]
        else:  # the first word alone is too long
            chars = list(range(start + 1, word_ends[0] + 1))
            cut = chars[max(0, _largest_fitting(text, start, chars, max_size, size))]
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    return pieces


def _units(text: str, max_size: int, size: Callable[[str], int]) -> List[Tuple[int, int]]:
    """Lines, with over-long lines cut into sentences and over-long sentences at word ends; all trimmed."""
    units = []
    for line in _LINE.finditer(text):
        span = trim_span(text, line.start(), line.end())
        if span is None:
            continue
        if size(text[span[0]:span[1]]) <= max_size:
            units.append(span)
            continue
        for a, b in sentence_bounds(text[span[0]:span[1]]):
            sentence = trim_span(text, span[0] + a, span[0] + b)
            if sentence is not None:
                units.extend(_cut_words(text, sentence[0], sentence[1], max_size, size))
    return units


def split_article(text: str, article_id: str = '', title: Optional[str] = None, max_size: int = DEFAULT_MAX_CHARS,
                  size: Callable[[str], int] = len, overlap: int = 0) -> List[Passage]:
    """Cut ``text`` into passages of at most ``max_size`` (measured by ``size``), each ``text[start:end]``.

    Inputs: the article ``text`` (non-empty), its ``article_id`` and ``title`` (copied into every passage),
    ``max_size`` (>= 1) and ``size`` (a function of a string; default ``len``, i.e. characters; e.g.
    ``lambda s: len(tokenizer(s, add_special_tokens=False)['input_ids'])`` to cut by tokens).
    ``overlap`` (>= 0, measured by ``size``; default 0): how much of the end of a passage, in whole sentences, the
    next one repeats at its start (see the module docstring).
    Output: passages in article order, not overlapping (with ``overlap`` 0), trimmed of whitespace, covering every
    non-whitespace character; ``size(p.text) <= max_size`` for each. Raises ``ValueError`` on an empty text, a
    ``max_size`` below 1, a negative ``overlap`` or a ``size`` that is not callable.

    Example::

        >>> [(p.start, p.end, p.text) for p in split_article('One two.\\n\\nThree four five.', 'a1', max_size=10)]
        [(0, 8, 'One two.'), (10, 20, 'Three four'), (21, 26, 'five.')]
        >>> [p.text for p in split_article('One. Two. Three. Four.', 'a2', max_size=12, overlap=6)]
        ['One. Two.', 'Two. Three.', 'Three. Four.']
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f'article {article_id!r}: the text must be a non-empty string, got {text!r:.60}')
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise ValueError(f'max_size must be a positive integer, got {max_size!r}')
    if not callable(size):
        raise ValueError(f'size must be a function of a string (e.g. len), got {size!r}')
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f'overlap must be a non-negative integer, got {overlap!r}')
    starts = _sentence_starts(text) if overlap else []
    passages: List[Tuple[int, int, int]] = []  # (start, end, start of the passage's own part after the overlap)
    for start, end in _units(text, max_size, size):
        if passages and size(text[passages[-1][0]:end]) <= max_size:
            passages[-1] = (passages[-1][0], end, passages[-1][2])
        else:
            first = start
            if overlap and passages:
                first = _overlap_start(text, starts, passages[-1], start, end, max_size, overlap, size)
            passages.append((first, end, start))
    return [Passage(id=f'{article_id}:{i}', article_id=article_id, title=title, index=i, start=a, end=b,
                    text=text[a:b]) for i, (a, b, _) in enumerate(passages)]


def _sentence_starts(text: str) -> List[int]:
    """Ascending offsets where a (trimmed) sentence of ``text`` starts: every line's sentences
    (:func:`covidqa.text.lexical.sentence_bounds`)."""
    starts = []
    for line in _LINE.finditer(text):
        for a, b in sentence_bounds(line.group()):
            span = trim_span(text, line.start() + a, line.start() + b)
            if span is not None:
                starts.append(span[0])
    return starts


def _overlap_start(text: str, starts: Sequence[int], previous: Tuple[int, int, int], start: int, end: int,
                   max_size: int, overlap: int, size: Callable[[str], int]) -> int:
    """Where the passage whose own part is ``[start, end)`` starts when it repeats the last whole sentences of
    ``previous`` (that passage's start, end and own part's start): the earliest sentence start ``s`` in the previous
    passage's own part, after that passage's start, with ``size(text[s:previous end]) <= overlap`` and
    ``size(text[s:end]) <= max_size``; ``start`` (no overlap) when there is none."""
    prev_start, prev_end, own_start = previous
    i = bisect.bisect_left(starts, max(prev_start + 1, own_start))
    while i < len(starts) and starts[i] < prev_end:
        s = starts[i]
        if size(text[s:prev_end]) <= overlap and size(text[s:end]) <= max_size:
            return s
        i += 1
    return start


def split_articles(articles: Iterable[Article], max_size: int = DEFAULT_MAX_CHARS,
                   size: Callable[[str], int] = len, overlap: int = 0) -> List[Passage]:
    """:func:`split_article` of every article, concatenated in article order."""
    out: List[Passage] = []
    for article in articles:
        out.extend(split_article(article.text, article.id, article.title, max_size, size, overlap))
    return out


def passages_holding(passages: Iterable[Passage], article_id: str, start: int, end: int) -> List[Passage]:
    """The passages of article ``article_id`` that overlap ``[start, end)``: one when a passage holds the whole
    span, several when the span crosses a passage boundary."""
    return [p for p in passages if p.article_id == article_id and p.start < end and start < p.end]
