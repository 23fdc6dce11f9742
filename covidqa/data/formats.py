"""Readers for the files people have: FAQ tables and documents, as plain typed results (no jina, no docarray).

:func:`read_faq_table` reads an FAQ table (one question and its answer per row):

- ``.csv`` (comma-separated) and ``.tsv`` (tab-separated), UTF-8 (or Windows-1252) with a header row;
- ``.jsonl``: one JSON object per line (blank lines are skipped).

The question and answer columns are named by the caller (``question``/``answer`` by default; an exact name first,
else the one column whose name matches ignoring case); ``title``, ``source`` and ``url`` (or ``link``) are kept
when the table has them. A missing question/answer column is an error listing the columns the file has; a row with
an empty question or answer (or, in ``.jsonl``, a line that is not a JSON object) is a bad row, reported by file and
row and left out.

:func:`read_document` reads a document file into :class:`SourceDocument` s (the text, as extracted, and its
sections as offsets into that text):

- ``.txt``: the text as it is (newlines normalised), one section;
- ``.md``/``.markdown``: the text with its markup dropped minimally (leading ``#`` of ATX headings, ``**``/``*``/
  ``__``/``_`` emphasis, inline code backticks, links and images ``[text](url)`` -> ``text``, reference
  definitions; a YAML front matter is dropped, its ``title`` kept); every heading (ATX ``#``, or a line underlined
  with ``===``/``---``) starts a section named after it,
  the text before the first heading has no section name; fenced code is kept as text (no headings inside);
- ``.html``/``.htm`` (the standard library's :mod:`html.parser`): the visible text only, the contents of
  ``<script>``, ``<style>``, ``<noscript>``, ``<template>`` (and ``<svg>``, ``<math>``, ``<iframe>``, ``<object>``)
  dropped, block elements (``<p>``, ``<div>``, ``<li>``, ``<tr>``, ...) as line breaks, ``<br>`` as a line break,
  entities decoded, whitespace collapsed (kept in ``<pre>``); ``<title>`` is the title (else the first ``<h1>``), each
  ``<h1>``-``<h6>`` starts a section named after it; ``<link rel="canonical">`` (else ``<meta property="og:url">``)
  is the url;
- ``.pdf`` (pypdf): the text of every page, pages separated by a blank line, one section; the title from the PDF
  metadata, else the first non-empty line; an encrypted PDF that opens with no password is read, others are an error;
- ``.json``: SQuAD JSON (an object with a ``"data"`` list, read by :func:`covidqa.data.records.read_squad_json`):
  every distinct context is a document, id its ``document_id`` (else derived from the file, with its position), title
  the record's ``title`` else the context's first line; or a CORD-19 paper (``pdf_json``/``pmc_json``: an object
  with ``paper_id`` and ``body_text``): id the ``paper_id``, title ``metadata.title``, a section ``'Abstract'`` from
  ``abstract[*].text``, then the ``body_text`` paragraphs, each under its ``section`` name (consecutive paragraphs of
  one name make one section). Any other JSON is an error naming what was expected.

In the text built from blocks (Markdown, HTML, PDF pages, CORD-19 paragraphs) blocks are separated by a blank line;
a heading is a line of the text and starts its section. A section that holds only its heading (e.g. ``# Title``
followed at once by ``## First part``) is joined to the section after it, so no passage is a lone heading.

Ids that do not come from the file (everything but SQuAD ``document_id`` and CORD-19 ``paper_id``) are derived from
the file's resolved path (:func:`file_document_id`): stable across reads and working directories, new when the
file moves. FAQ entries have the id :func:`faq_id` (of the question and answer), the one ``toydata.faq`` gives.

Errors: :class:`covidqa.data.records.QADataError`, one line naming the file (and the row where there is one): not
UTF-8 (or Windows-1252) text, malformed CSV or JSON, a missing column, an unknown file type, a damaged PDF, a
file with no text.

Example::

    [doc] = read_document('guideline.pdf')
    name, start, end = doc.sections[0]
    doc.text[start:end]
    table = read_faq_table('faq.csv', question_column='Question', answer_column='Answer')
    table.entries[0].question, table.problems          # ['faq.csv: row 3 (line 4): empty 'Answer'']
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from covidqa.data.passages import trim_span
from covidqa.data.records import QADataError, read_squad_json

__all__ = [
    'DOCUMENT_SUFFIXES',
    'FAQ_SUFFIXES',
    'SUPPORTED_SUFFIXES',
    'FAQEntry',
    'FAQTable',
    'Section',
    'SourceDocument',
    'faq_id',
    'file_document_id',
    'read_document',
    'read_faq_table',
]

PathLike = Union[str, os.PathLike]
FAQ_SUFFIXES = ('.csv', '.tsv', '.jsonl')
DOCUMENT_SUFFIXES = ('.txt', '.md', '.markdown', '.html', '.htm', '.pdf', '.json')
SUPPORTED_SUFFIXES = FAQ_SUFFIXES + DOCUMENT_SUFFIXES
URL_COLUMNS = ('url', 'link')
MAX_TITLE_CHARS = 200


# --------------------------------------------------------------------------------------------------- typed results
class Section(NamedTuple):
    """A section of a document: ``text[start:end]`` (trimmed, ``end`` exclusive) and its ``name`` (``None``:
    unnamed, e.g. the text before the first heading, or a whole plain-text file)."""

    name: Optional[str]
    start: int
    end: int


@dataclass(frozen=True)
class SourceDocument:
    """One document as read from a file: its ``id``, ``title``, the extracted ``text``, its ``sections`` (ordered,
    not overlapping, offsets into ``text``), ``source`` (the file name) and ``url`` (when the file tells it)."""

    id: str
    title: Optional[str]
    text: str
    sections: Tuple[Section, ...]
    source: Optional[str]
    url: Optional[str] = None


@dataclass(frozen=True)
class FAQEntry:
    """One row of an FAQ table: ``question``, ``answer`` (both stripped, non-empty), the optional ``title``,
    ``source`` and ``url`` columns, and ``row`` (1-based data row: CSV/TSV header excluded, JSONL line)."""

    question: str
    answer: str
    title: Optional[str] = None
    source: Optional[str] = None
    url: Optional[str] = None
    row: int = 0

    @property
    def id(self) -> str:
        """:func:`faq_id` of the question and answer."""
        return faq_id(self.question, self.answer)


@dataclass
class FAQTable:
    """An FAQ table as read: its ``entries`` in file order, ``problems`` (one line per bad row, naming the file and
    the row), the ``columns`` the file has, and the question/answer columns used."""

    path: Path
    entries: List[FAQEntry] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    columns: List[str] = field(default_factory=list)
    question_column: str = 'question'
    answer_column: str = 'answer'


# --------------------------------------------------------------------------------------------------- ids
def faq_id(question: str, answer: str) -> str:
    """The stable id of an FAQ entry: the first 16 hex digits of ``sha1(question + '\\x1f' + answer)`` (the same as
    ``toydata.faq``'s, so re-indexing an entry replaces it)."""
    return hashlib.sha1(f'{question}\x1f{answer}'.encode()).hexdigest()[:16]


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')[:limit].strip('-')
    return slug or 'doc'


def file_document_id(path: PathLike) -> str:
    """The id of the document a file holds when the file names none: the slug of its stem (lowercase letters and
    digits, ``-`` between, at most 40 characters) + ``-`` + the first 8 hex digits of ``sha1`` of its resolved path.
    ``file_document_id('docs/Hand Hygiene.html')`` -> ``'hand-hygiene-1a2b3c4d'``."""
    resolved = Path(path).expanduser().resolve()
    return f'{_slug(resolved.stem)}-{hashlib.sha1(str(resolved).encode()).hexdigest()[:8]}'


# --------------------------------------------------------------------------------------------------- text helpers
def _one_line(text: str) -> str:
    return ' '.join(str(text).split())


def _decode(raw: bytes, path: Path, declared: Optional[str] = None) -> str:
    """Bytes as text: a UTF-16/UTF-8 byte-order mark, else UTF-8, else the ``declared`` encoding, else Windows-1252;
    newlines normalised to ``\\n``. Raises :class:`QADataError` when none decodes it."""
    if raw.startswith((b'\xff\xfe', b'\xfe\xff')):
        candidates = ['utf-16']
    else:
        candidates = ['utf-8-sig'] + ([declared] if declared else []) + ['cp1252']
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        return text.replace('\r\n', '\n').replace('\r', '\n')
    raise QADataError(f'{path}: not UTF-8 (or Windows-1252) text')


def _read_text(path: Path, declared: Optional[str] = None) -> str:
    return _decode(path.read_bytes(), path, declared)


def _first_line(text: str) -> Optional[str]:
    for line in text.splitlines():
        line = _one_line(line)
        if line:
            return line[:MAX_TITLE_CHARS]
    return None


class _TextBuilder:
    """Builds a document's text from blocks (separated by a blank line) and records its sections."""

    def __init__(self) -> None:
        self.parts: List[str] = []
        self.length = 0
        self.sections: List[List[Any]] = []  # [name, start, end, has_body]
        self.pending: Optional[str] = None
        self.pending_set = True  # text before any heading: an unnamed section

    def section(self, name: Optional[str]) -> None:
        """Start a section named ``name`` at the next block."""
        self.pending, self.pending_set = name, True

    def block(self, text: str, body: bool = True) -> None:
        """Append a block of text (stripped; nothing when blank) to the current section."""
        text = text.strip()
        if not text:
            return
        if self.parts:
            self.parts.append('\n\n')
            self.length += 2
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        if self.pending_set or not self.sections:
            self.sections.append([self.pending, start, self.length, body])
            self.pending_set = False
        else:
            self.sections[-1][2] = self.length
            self.sections[-1][3] = self.sections[-1][3] or body

    def heading(self, name: str) -> None:
        """A heading: a section named ``name`` whose first block is the heading's text."""
        name = _one_line(name)
        if name:
            self.section(name)
            self.block(name, body=False)

    def build(self) -> Tuple[str, Tuple[Section, ...]]:
        """The text and its sections; a heading-only section is joined to the one after it."""
        merged: List[List[Any]] = []
        carry: Optional[int] = None
        for i, (name, start, end, body) in enumerate(self.sections):
            if carry is not None:
                start, carry = carry, None
            if not body and i + 1 < len(self.sections):
                carry = start
                continue
            merged.append([name, start, end])
        return ''.join(self.parts), tuple(Section(name, start, end) for name, start, end in merged)


def _whole_text_section(text: str) -> Tuple[Section, ...]:
    span = trim_span(text, 0, len(text))
    return (Section(None, span[0], span[1]),) if span else ()


def _check_has_text(path: Path, documents: List[SourceDocument], what: str = 'no text') -> List[SourceDocument]:
    documents = [d for d in documents if d.text.strip() and d.sections]
    if not documents:
        raise QADataError(f'{path}: {what}')
    return documents


# --------------------------------------------------------------------------------------------------- plain text
def _read_txt(path: Path) -> List[SourceDocument]:
    text = _read_text(path)
    return _check_has_text(path, [SourceDocument(file_document_id(path), _first_line(text), text,
                                                 _whole_text_section(text), path.name)], 'no text (an empty file)')


# --------------------------------------------------------------------------------------------------- Markdown
_ATX = re.compile(r'^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$')
_FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})')
_SETEXT = re.compile(r'^ {0,3}(=+|-+)[ \t]*$')
_IMAGE_OR_LINK = re.compile(r'!?\[([^\]]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+(?:"[^"]*"|\'[^\']*\'))?\s*\)')
_REF_LINK = re.compile(r'!?\[([^\]]+)\]\[[^\]]*\]')
_REF_DEFINITION = re.compile(r'^ {0,3}\[[^\]]+\]:\s*\S+.*$')
_AUTOLINK = re.compile(r'<((?:https?|mailto):[^>\s]+)>')
_STRONG = re.compile(r'(\*\*|__)(?=\S)(.+?)(?<=\S)\1')
_EM_STAR = re.compile(r'(?<![\w*\\])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])')
_EM_UNDERSCORE = re.compile(r'(?<![\w\\])_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)')
_STRIKE = re.compile(r'~~(?=\S)(.+?)(?<=\S)~~')
_CODE_SPAN = re.compile(r'(`+)(.+?)\1')
_FRONT_MATTER_TITLE = re.compile(r'^title:\s*(.+?)\s*$', re.MULTILINE)


def _inline_markdown(line: str) -> str:
    """One line of Markdown with its inline markup dropped (code spans are kept verbatim, without backticks)."""
    pieces = []
    last = 0
    for match in _CODE_SPAN.finditer(line):  # no markup is read inside `code`
        pieces.append(_drop_inline(line[last:match.start()]))
        pieces.append(match.group(2).strip() if match.group(2).strip() else match.group(2))
        last = match.end()
    pieces.append(_drop_inline(line[last:]))
    return ''.join(pieces)


def _drop_inline(text: str) -> str:
    text = _IMAGE_OR_LINK.sub(r'\1', text)
    text = _REF_LINK.sub(r'\1', text)
    text = _AUTOLINK.sub(r'\1', text)
    for pattern in (_STRONG, _STRIKE):
        text = pattern.sub(lambda m: m.group(m.lastindex or 0), text)
    text = _EM_STAR.sub(r'\1', text)
    text = _EM_UNDERSCORE.sub(r'\1', text)
    return text


def _front_matter(text: str) -> Tuple[str, Optional[str]]:
    """``text`` without a leading YAML front matter (``---`` ... ``---``), and the front matter's ``title``."""
    if not text.startswith('---\n'):
        return text, None
    end = text.find('\n---', 4)
    if end < 0:
        return text, None
    matter = text[4:end]
    rest = text[end + 4:]
    title = _FRONT_MATTER_TITLE.search(matter)
    return rest.split('\n', 1)[1] if '\n' in rest else '', title.group(1).strip('\'"') if title else None


def _read_markdown(path: Path) -> List[SourceDocument]:
    text, title = _front_matter(_read_text(path))
    builder = _TextBuilder()
    paragraph: List[str] = []
    first_heading: Optional[str] = None
    top_heading: Optional[str] = None

    def flush() -> None:
        if paragraph:
            builder.block('\n'.join(paragraph))
            paragraph.clear()

    lines = iter(text.split('\n'))
    for line in lines:
        fence = _FENCE.match(line)
        if fence:  # fenced code: kept as text, up to the closing fence
            flush()
            marker = fence.group(1)
            code = [line.rstrip()]
            for inner in lines:
                code.append(inner.rstrip())
                if inner.strip().startswith(marker[0] * len(marker)) and not inner.strip().strip(marker[0]):
                    break
            builder.block('\n'.join(code))
            continue
        underline = _SETEXT.match(line)
        if underline and paragraph:  # a setext heading: the paragraph above, underlined with === or ---
            name = _one_line(' '.join(paragraph))
            paragraph.clear()
            first_heading = first_heading or name
            if underline.group(1).startswith('='):
                top_heading = top_heading or name
            builder.heading(name)
            continue
        heading = _ATX.match(line)
        if heading:
            flush()
            name = _one_line(_inline_markdown(heading.group(2) or ''))
            if name:
                first_heading = first_heading or name
                if len(heading.group(1)) == 1:
                    top_heading = top_heading or name
                builder.heading(name)
            continue
        if not line.strip():
            flush()
            continue
        if _REF_DEFINITION.match(line):
            continue
        paragraph.append(_inline_markdown(line.rstrip()))
    flush()
    full, sections = builder.build()
    title = title or top_heading or first_heading or _first_line(full)
    return _check_has_text(path, [SourceDocument(file_document_id(path), title, full, sections, path.name)])


# --------------------------------------------------------------------------------------------------- HTML
_HTML_SKIPPED = frozenset({'script', 'style', 'noscript', 'template', 'svg', 'math', 'iframe', 'object'})
_HTML_HEADINGS = frozenset({'h1', 'h2', 'h3', 'h4', 'h5', 'h6'})
_HTML_BLOCKS = frozenset({
    'address', 'article', 'aside', 'blockquote', 'body', 'caption', 'dd', 'details', 'dialog', 'div', 'dl', 'dt',
    'fieldset', 'figcaption', 'figure', 'footer', 'form', 'head', 'header', 'hr', 'html', 'legend', 'li', 'main',
    'nav', 'ol', 'p', 'pre', 'section', 'select', 'summary', 'table', 'tbody', 'textarea', 'tfoot', 'thead', 'tr',
    'ul',
})
_HTML_CELLS = frozenset({'td', 'th'})
_CHARSET = re.compile(rb'<meta[^>]+charset\s*=\s*["\']?\s*([A-Za-z0-9_.:-]+)', re.IGNORECASE)
_SPACES = re.compile(r'\s+')


class _HTMLText(HTMLParser):
    """Collects an HTML page's visible text as blocks and headings (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = _TextBuilder()
        self.inline: List[Tuple[str, bool]] = []  # (text, preformatted)
        self.skip_depth = 0
        self.pre_depth = 0
        self.heading: Optional[str] = None
        self.in_title = False
        self.title_parts: List[str] = []
        self.first_h1: Optional[str] = None
        self.canonical: Optional[str] = None
        self.og_url: Optional[str] = None

    def _flush(self) -> None:
        text = ''.join(t if pre else _SPACES.sub(' ', t) for t, pre in self.inline)
        self.inline.clear()
        lines = [' '.join(line.split()) if not self.pre_depth else line.rstrip() for line in text.split('\n')]
        self.builder.block('\n'.join(line for line in lines if line.strip()))

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        if tag in _HTML_SKIPPED:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        attributes = {k.lower(): (v or '') for k, v in attrs}
        if tag == 'title':
            self.in_title = True
        elif tag == 'link' and 'canonical' in attributes.get('rel', '').lower().split():
            self.canonical = self.canonical or attributes.get('href') or None
        elif tag == 'meta' and attributes.get('property', '').lower() == 'og:url':
            self.og_url = self.og_url or attributes.get('content') or None
        elif tag in _HTML_HEADINGS:
            self._flush()
            self.heading = tag
        elif tag == 'br':
            self.inline.append(('\n', True))
        elif tag in _HTML_CELLS:
            self.inline.append((' ', False))
        elif tag in _HTML_BLOCKS and self.heading is None:
            self._flush()
            if tag == 'pre':
                self.pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        if tag in _HTML_SKIPPED:  # <script/>: nothing to skip
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag == 'title':
            self.in_title = False
        elif tag in _HTML_HEADINGS and self.heading is not None:
            text = _one_line(''.join(t for t, _ in self.inline))
            self.inline.clear()
            if self.heading == 'h1':
                self.first_h1 = self.first_h1 or text or None
            self.heading = None
            self.builder.heading(text)
        elif tag in _HTML_BLOCKS and self.heading is None:
            self._flush()
            if tag == 'pre':
                self.pre_depth = max(0, self.pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.in_title:
            self.title_parts.append(data)
        else:
            self.inline.append((data, self.pre_depth > 0))

    def close(self) -> None:
        super().close()
        self._flush()


def _read_html(path: Path) -> List[SourceDocument]:
    raw = path.read_bytes()
    declared = _CHARSET.search(raw[:4096])
    parser = _HTMLText()
    parser.feed(_decode(raw, path, declared.group(1).decode('ascii') if declared else None))
    parser.close()
    text, sections = parser.builder.build()
    title = _one_line(''.join(parser.title_parts))[:MAX_TITLE_CHARS] or parser.first_h1 or _first_line(text)
    return _check_has_text(path, [SourceDocument(file_document_id(path), title, text, sections, path.name,
                                                 parser.canonical or parser.og_url)], 'no visible text')


# --------------------------------------------------------------------------------------------------- PDF
def _read_pdf(path: Path) -> List[SourceDocument]:
    import logging

    import pypdf

    quiet = logging.getLogger('pypdf')
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # pypdf logs every repair it tries; a failure is reported as one problem
    try:
        try:
            reader = pypdf.PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(''):
                raise QADataError(f'{path}: an encrypted PDF (it needs a password)')
            pages = [page.extract_text() or '' for page in reader.pages]
            metadata = reader.metadata
            title = _one_line(metadata.title or '') if metadata is not None else ''
        except QADataError:
            raise
        except Exception as error:  # pypdf raises many kinds (PdfReadError, ValueError, KeyError, ...) on bad files
            raise QADataError(f'{path}: not a readable PDF ({type(error).__name__}: {_one_line(str(error))})') from None
    finally:
        quiet.setLevel(level)
    builder = _TextBuilder()
    for page in pages:
        builder.block('\n'.join(line.rstrip() for line in page.replace('\r\n', '\n').replace('\r', '\n').split('\n')))
    text, sections = builder.build()
    return _check_has_text(path, [SourceDocument(file_document_id(path), title[:MAX_TITLE_CHARS] or _first_line(text),
                                                 text, sections, path.name)],
                           f'no extractable text in {len(pages)} page(s) (a scanned PDF? run OCR on it first)')


# --------------------------------------------------------------------------------------------------- JSON
def _describe(payload: Any) -> str:
    if isinstance(payload, dict):
        keys = list(payload)[:8]
        return f'an object with the keys {keys}' + (' ...' if len(payload) > 8 else '')
    return f'a JSON {type(payload).__name__}'


def _read_json(path: Path, problems: Optional[List[str]]) -> List[SourceDocument]:
    try:
        payload = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise QADataError(f'{path}: not valid JSON ({error})') from None
    if isinstance(payload, dict) and 'paper_id' in payload and 'body_text' in payload:
        return _read_cord19(path, payload)
    if isinstance(payload, dict) and isinstance(payload.get('data'), list):
        return _read_squad(path, payload, problems)
    raise QADataError(f'{path}: not a document JSON: expected SQuAD JSON (an object with a "data" list) or a CORD-19 '
                      f'paper (an object with "paper_id" and "body_text"), found {_describe(payload)}')


def _paragraph_texts(path: Path, payload: Dict[str, Any], key: str) -> Iterator[Tuple[str, Optional[str]]]:
    """``(text, section)`` of every paragraph of the CORD-19 list ``payload[key]``."""
    items = payload.get(key) or []
    if not isinstance(items, list):
        raise QADataError(f'{path}: "{key}" must be a list of {{"text", "section"}} objects, got {_describe(items)}')
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get('text', ''), str):
            raise QADataError(f'{path}: {key}[{i}] is not a {{"text", "section"}} object')
        section = item.get('section')
        yield item.get('text', ''), (_one_line(section) or None) if isinstance(section, str) else None


def _read_cord19(path: Path, payload: Dict[str, Any]) -> List[SourceDocument]:
    paper_id = payload.get('paper_id')
    if not isinstance(paper_id, (str, int)) or not str(paper_id).strip():
        raise QADataError(f'{path}: a CORD-19 paper needs a non-empty "paper_id", got {paper_id!r}')
    metadata = payload.get('metadata')
    title = metadata.get('title') if isinstance(metadata, dict) else None
    title = _one_line(title) if isinstance(title, str) else ''
    builder = _TextBuilder()
    abstract = [text for text, _ in _paragraph_texts(path, payload, 'abstract') if text.strip()]
    if abstract:
        builder.section('Abstract')
        for text in abstract:
            builder.block(text)
    current: Any = object()  # no section yet
    for text, section in _paragraph_texts(path, payload, 'body_text'):
        if not text.strip():
            continue
        if section != current:
            builder.section(section)
            current = section
        builder.block(text)
    full, sections = builder.build()
    return _check_has_text(path, [SourceDocument(str(paper_id).strip(), title[:MAX_TITLE_CHARS] or None, full,
                                                 sections, path.name)], 'a CORD-19 paper with no text')


def _read_squad(path: Path, payload: Dict[str, Any], problems: Optional[List[str]]) -> List[SourceDocument]:
    given_ids = set()
    for entry in payload['data']:
        paragraphs = entry.get('paragraphs') if isinstance(entry, dict) else None
        for paragraph in paragraphs if isinstance(paragraphs, list) else []:
            if isinstance(paragraph, dict) and 'document_id' in paragraph:
                given_ids.add(str(paragraph['document_id']))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # its skipped records are reported as problems below
        records = read_squad_json(path, require_answers=False, skip_bad=True)
    if records.problems:
        if problems is None:
            raise QADataError(records.problems[0])
        problems.extend(f'{_one_line(message)}; skipped' for message in records.problems)
    file_id = file_document_id(path)
    documents: Dict[str, SourceDocument] = {}  # by the document_id the file gives, else by context
    for record in records:
        given = record.document_id if record.document_id in given_ids else None
        key = given if given is not None else record.context
        known = documents.get(key)
        if known is not None:
            if known.text != record.context:  # only with a given id
                message = (f'{path}: record {record.source_row}: document_id {given!r} is used by two different '
                           f'contexts; the second is skipped')
                if problems is None:
                    raise QADataError(message)
                problems.append(message)
            continue
        documents[key] = SourceDocument(given if given is not None else f'{file_id}-{len(documents)}',
                                        record.title or _first_line(record.context), record.context,
                                        _whole_text_section(record.context), path.name)
    return _check_has_text(path, list(documents.values()), 'no contexts (a SQuAD file without paragraphs?)')


# --------------------------------------------------------------------------------------------------- documents
def read_document(path: PathLike, problems: Optional[List[str]] = None) -> List[SourceDocument]:
    """The documents of one document file (``.txt``, ``.md``/``.markdown``, ``.html``/``.htm``, ``.pdf``, ``.json``:
    SQuAD or CORD-19; see the module docstring), in file order; one for every type but SQuAD JSON (one per context).

    ``problems``: where the records of a SQuAD file that cannot be read go (one line each, naming the file and the
    record; the rest is read); without it the first such record raises.

    Raises :class:`covidqa.data.records.QADataError` (one line naming the file) for an FAQ table (read it with
    :func:`read_faq_table`), another file type, text that does not decode, malformed or unexpected JSON, a damaged
    PDF, or a file with no text; ``FileNotFoundError`` when there is no such file.

    Example: ``read_document('paper.json')[0].sections`` -> ``(Section('Abstract', 0, 126), Section('Introduction',
    128, 273), ...)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'no such file: {path}')
    suffix = path.suffix.lower()
    if suffix in FAQ_SUFFIXES:
        raise QADataError(f'{path}: an FAQ table, not a document (read it with read_faq_table)')
    if suffix == '.txt':
        return _read_txt(path)
    if suffix in ('.md', '.markdown'):
        return _read_markdown(path)
    if suffix in ('.html', '.htm'):
        return _read_html(path)
    if suffix == '.pdf':
        return _read_pdf(path)
    if suffix == '.json':
        return _read_json(path, problems)
    raise QADataError(f'{path}: unsupported file type {suffix or "(no extension)"!r}; supported: '
                      f'{", ".join(SUPPORTED_SUFFIXES)}')


# --------------------------------------------------------------------------------------------------- FAQ tables
def _find_column(columns: Sequence[str], wanted: str) -> Optional[str]:
    if wanted in columns:
        return wanted
    folded = [c for c in columns if c.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def _cell(value: Any) -> str:
    if value is None:
        return ''
    return (value if isinstance(value, str) else str(value)).strip()


def _table_rows(path: Path, text: str) -> Tuple[List[str], List[Tuple[str, int, Optional[Dict[str, Any]]]]]:
    """The columns and the rows ``(where, row number, row)`` of a CSV/TSV/JSONL table; a JSONL line that is not an
    object has the row ``None`` and says why in ``where``."""
    rows: List[Tuple[str, int, Optional[Dict[str, Any]]]] = []
    if path.suffix.lower() == '.jsonl':
        columns: List[str] = []
        for number, line in enumerate(text.split('\n'), start=1):
            if not line.strip():
                continue
            where = f'{path}: line {number}'
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                rows.append((f'{where}: not valid JSON ({error.msg})', number, None))
                continue
            if not isinstance(row, dict):
                rows.append((f'{where}: not a JSON object ({_describe(row)})', number, None))
                continue
            columns.extend(str(k) for k in row if str(k) not in columns)
            rows.append((where, number, {str(k): v for k, v in row.items()}))
        if not rows:
            raise QADataError(f'{path}: empty file (expected one JSON object per line)')
        return columns, rows
    csv.field_size_limit(2 ** 31 - 1)
    try:
        tsv = path.suffix.lower() == '.tsv'  # tab-separated values have no quoting: a quote is text
        reader = csv.DictReader(io.StringIO(text, newline=''), delimiter='\t' if tsv else ',',
                                quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        header = reader.fieldnames
        if not header:
            raise QADataError(f'{path}: empty file (expected a header row)')
        columns = [h.strip() if isinstance(h, str) else str(h) for h in header]
        reader.fieldnames = columns
        for number, row in enumerate(reader, start=1):
            rows.append((f'{path}: row {number} (line {reader.line_num})', number, row))
    except csv.Error as error:
        raise QADataError(f'{path}: malformed {path.suffix.lower().lstrip(".").upper()} ({error})') from None
    return columns, rows


def read_faq_table(path: PathLike, question_column: str = 'question', answer_column: str = 'answer') -> FAQTable:
    """The entries of an FAQ table (``.csv``, ``.tsv``, ``.jsonl``; see the module docstring).

    Inputs: the file, and the names of its question and answer columns (an exact match first, else the one column
    of that name ignoring case). Output: :class:`FAQTable` with the good rows as :class:`FAQEntry` in file order and
    one ``problems`` line per bad row (empty question or answer, a JSONL line that is not an object), which is left
    out. Raises :class:`covidqa.data.records.QADataError` for a missing question/answer column (listing the columns
    the file has), an empty file, malformed CSV or text that does not decode; ``FileNotFoundError`` without a file.

    Example: ``read_faq_table('faq.csv', 'Question', 'Answer').entries[0].question`` -> ``'What are the ...?'``
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'no such file: {path}')
    if path.suffix.lower() not in FAQ_SUFFIXES:
        raise QADataError(f'{path}: not an FAQ table (expected {", ".join(FAQ_SUFFIXES)})')
    columns, rows = _table_rows(path, _read_text(path))
    question_name = _find_column(columns, question_column)
    answer_name = _find_column(columns, answer_column)
    missing = [wanted for wanted, found in ((question_column, question_name), (answer_column, answer_name))
               if found is None]
    if missing or question_name is None or answer_name is None:
        raise QADataError(f'{path}: missing column(s) {missing}; the file has {columns}')
    title_name = _find_column(columns, 'title')
    source_name = _find_column(columns, 'source')
    url_names = [name for name in (_find_column(columns, c) for c in URL_COLUMNS) if name]
    table = FAQTable(path=path, columns=columns, question_column=question_name, answer_column=answer_name)
    for where, number, row in rows:
        if row is None:  # a JSONL line that did not parse: ``where`` says why
            table.problems.append(where)
            continue
        question, answer = _cell(row.get(question_name)), _cell(row.get(answer_name))
        if not question or not answer:
            table.problems.append(f'{where}: empty {question_name if not question else answer_name!r}')
            continue
        url = next((_cell(row.get(name)) for name in url_names if _cell(row.get(name))), None)
        table.entries.append(FAQEntry(
            question=question, answer=answer, title=_cell(row.get(title_name)) or None if title_name else None,
            source=_cell(row.get(source_name)) or None if source_name else None, url=url or None, row=number))
    return table
