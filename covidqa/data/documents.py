"""The documents people have, as index-ready :class:`covidqa.docs.QADoc` s: FAQ entries and passages (no jina here).

:func:`load_documents` takes files, folders and glob patterns and reads every file by its extension
(:mod:`covidqa.data.formats` tells each format in full):

- FAQ tables, one entry per row: ``.csv``, ``.tsv``, ``.jsonl`` (columns named by ``question_column`` and
  ``answer_column``; ``title``, ``source``, ``url``/``link`` kept);
- documents: ``.txt``, ``.md``/``.markdown``, ``.html``/``.htm``, ``.pdf`` (pypdf), ``.json`` (SQuAD JSON: one
  document per context; or a CORD-19 paper, ``pdf_json``/``pmc_json``).

What becomes of them:

- an FAQ entry -> ``QADoc(id=faq_id(question, answer), text=question, answer=answer, title, source (the table's
  ``source`` column, else the file name), url, kind='faq')``; the same question and answer read twice are one entry
  (counted in ``duplicates``);
- a document -> its passages (:func:`split_document`): every section on its own (a passage never crosses a
  section), cut by :func:`covidqa.data.passages.split_article` into passages of at most ``max_chars`` characters
  (lines, then sentences, then words), and consecutive passages of a section overlap by up to ``overlap_chars``:
  the next passage starts with the last whole sentences of the one before (never all of it; nothing when that last
  sentence is longer). A passage is ``QADoc(id=f'{document id}:{index}', text, title (the document's), source (the
  file name), url (when the file tells it), parent_id=document id, offset_start, offset_end, section (its name, or
  None), kind='literature')`` with ``document.text[offset_start:offset_end] == text`` exactly (the text as
  extracted, :func:`covidqa.data.formats.read_document`).

Ids are stable: a SQuAD ``document_id`` or CORD-19 ``paper_id`` when the file has one, else derived from the file's
resolved path (:func:`covidqa.data.formats.file_document_id`), so the same file read again, from any working
directory, gives the same ids (re-indexing replaces, not duplicates).

Folders are read recursively in sorted order, skipping hidden files and folders and counting the files of other
types (``skipped_unsupported``); a glob pattern (``*``, ``?``, ``[...]``, ``**`` for any depth) reads what matches
the same way. A bad file or row (a named file of an unknown type, no such path, text that does not decode, a
missing column, a damaged PDF, a file with no text, an empty question or answer, a second document with an id
already read) is skipped and recorded in ``problems``, one line naming the file (and the row), and the rest is
read; with ``strict=True`` the first one raises :class:`covidqa.data.records.QADataError` instead.

Example::

    loaded = load_documents(['faq.csv', 'papers/', 'guides/**/*.pdf'], question_column='Question',
                            answer_column='Answer')
    print(loaded.summary())   # '12 files: 3 FAQ tables (213 entries), 9 documents (1,204 passages); 1 problem'
    loaded.docs               # DocList[QADoc], in file order, ready for /index
    loaded.problems           # ['guides/old.pdf: not a readable PDF (PdfReadError: EOF marker not found)']
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from covidqa.data.formats import (
    FAQ_SUFFIXES,
    SUPPORTED_SUFFIXES,
    FAQEntry,
    FAQTable,
    Section,
    SourceDocument,
    faq_id,
    file_document_id,
    read_document,
    read_faq_table,
)
from covidqa.data.passages import DEFAULT_MAX_CHARS, split_article
from covidqa.data.records import QADataError
from covidqa.docs import DocList, QADoc

__all__ = [
    'DEFAULT_OVERLAP_CHARS',
    'FAQEntry',
    'FAQTable',
    'LoadedDocuments',
    'Section',
    'SourceDocument',
    'SUPPORTED_SUFFIXES',
    'expand_paths',
    'faq_docs',
    'faq_id',
    'file_document_id',
    'load_documents',
    'read_document',
    'read_faq_table',
    'split_document',
]

PathLike = Union[str, os.PathLike]
DEFAULT_OVERLAP_CHARS = 200
_GLOB = re.compile(r'[*?[]')
Progress = Callable[[int, int, int], object]


# --------------------------------------------------------------------------------------------------- results
@dataclass
class LoadedDocuments:
    """What :func:`load_documents` made of its paths.

    - ``docs``: the index-ready documents (FAQ entries and passages) in file order;
    - ``documents``: how many sources became docs (FAQ tables + literature documents); ``faq_tables`` (with
      ``faq_entries`` entries) and ``literature`` (with ``passages`` passages) split it;
    - ``files``: the files read without a file-level problem; ``problems``: one line per bad file or row;
      ``skipped_unsupported``: files of other types met in folders and globs; ``duplicates``: FAQ entries (same
      question and answer) met again, left out.
    """

    docs: DocList[QADoc] = field(default_factory=lambda: DocList[QADoc]())
    documents: int = 0
    files: int = 0
    problems: List[str] = field(default_factory=list)
    skipped_unsupported: int = 0
    faq_tables: int = 0
    faq_entries: int = 0
    literature: int = 0
    passages: int = 0
    duplicates: int = 0

    def summary(self) -> str:
        """One line, e.g. ``'12 files: 3 FAQ tables (213 entries), 9 documents (1,204 passages); 1 problem'``."""
        line = (f'{_count(self.files, "file")}: {_count(self.faq_tables, "FAQ table")} '
                f'({_count(self.faq_entries, "entry", "entries")}), {_count(self.literature, "document")} '
                f'({_count(self.passages, "passage")})')
        if self.duplicates:
            line += f'; {_count(self.duplicates, "duplicate FAQ entry", "duplicate FAQ entries")} left out'
        if self.skipped_unsupported:
            line += f'; {_count(self.skipped_unsupported, "unsupported file")} skipped'
        return line + f'; {_count(len(self.problems), "problem") if self.problems else "no problems"}'


def _count(n: int, one: str, many: Optional[str] = None) -> str:
    return f'{n:,} {one if n == 1 else (many or one + "s")}'


# --------------------------------------------------------------------------------------------------- conversion
def _check_settings(max_chars: int, overlap_chars: int) -> None:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f'max_chars must be a positive integer, got {max_chars!r}')
    if isinstance(overlap_chars, bool) or not isinstance(overlap_chars, int) or overlap_chars < 0:
        raise ValueError(f'overlap_chars must be a non-negative integer, got {overlap_chars!r}')


def split_document(document: SourceDocument, *, max_chars: int = DEFAULT_MAX_CHARS,
                   overlap_chars: int = DEFAULT_OVERLAP_CHARS) -> DocList[QADoc]:
    """The passages of one document (see the module docstring), as ``kind='literature'`` :class:`QADoc` s.

    Each section is cut on its own by :func:`covidqa.data.passages.split_article` (``max_chars`` >= 1,
    ``overlap_chars`` >= 0); passage ``i`` of the document (counting over all its sections) has the id
    ``f'{document.id}:{i}'`` and ``document.text[offset_start:offset_end] == text``. Raises ``ValueError`` on a
    bad ``max_chars``/``overlap_chars``.

    Example: ``split_document(read_document('paper.json')[0], max_chars=300)[0].section`` -> ``'Abstract'``.
    """
    _check_settings(max_chars, overlap_chars)
    docs = DocList[QADoc]()
    for name, start, end in document.sections:
        if not document.text[start:end].strip():
            continue
        for passage in split_article(document.text[start:end], document.id, document.title, max_size=max_chars,
                                     overlap=overlap_chars):
            docs.append(QADoc(
                id=f'{document.id}:{len(docs)}',  # type: ignore[arg-type]  # docarray's ID type takes a str
                text=passage.text, title=document.title, source=document.source,
                url=document.url, parent_id=document.id, offset_start=start + passage.start,
                offset_end=start + passage.end, section=name, kind='literature'))
    return docs


def faq_docs(table: FAQTable) -> DocList[QADoc]:
    """The entries of an FAQ table as ``kind='faq'`` :class:`QADoc` s (``text`` the question; ``source`` the
    table's ``source`` column, else the file name), in table order. An entry's id is its question and answer
    (:func:`covidqa.data.formats.faq_id`): indexing the table again replaces the same entries; an edited row is
    a new entry, and the old one stays until it is deleted by id."""
    return DocList[QADoc]([
        QADoc(id=entry.id,  # type: ignore[arg-type]  # docarray's ID type takes a str
              text=entry.question, answer=entry.answer, title=entry.title,
              source=entry.source or table.path.name, url=entry.url, kind='faq')
        for entry in table.entries])


# --------------------------------------------------------------------------------------------------- paths
def _folder_files(folder: Path) -> List[Path]:
    """The files under ``folder``, recursively, sorted by path (``a/b/x.md`` before ``a/z.txt``), hidden files and
    folders left out."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in sorted(names):
            path = Path(root) / name
            if not name.startswith('.') and path.is_file():
                found.append(path)
    return sorted(found, key=lambda path: path.relative_to(folder).parts)


def expand_paths(paths: Union[PathLike, Iterable[PathLike]]) -> Tuple[List[Path], List[str], int]:
    """The files ``paths`` name, in order and each once: a file as named, a folder's files (recursive, sorted,
    hidden ones left out), a glob pattern's matches (sorted; ``**`` any depth; folders among them expanded).

    Returns ``(files, problems, skipped_unsupported)``: a named file of an unsupported type, a path that does not
    exist and a pattern that matches nothing are problems (one line each); files of unsupported types found in
    folders or by patterns are only counted.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: List[Path] = []
    problems: List[str] = []
    skipped = 0
    seen: Set[Path] = set()

    def add(path: Path, named: bool) -> None:
        nonlocal skipped
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            if named:
                problems.append(f'{path}: unsupported file type {path.suffix or "(no extension)"!r}; supported: '
                                f'{", ".join(SUPPORTED_SUFFIXES)}')
            else:
                skipped += 1
            return
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append(path)

    for given in paths:
        path = Path(given).expanduser()
        if path.is_file():
            add(path, named=True)
        elif path.is_dir():
            for found in _folder_files(path):
                add(found, named=False)
        elif _GLOB.search(str(path)):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                problems.append(f'{given}: no file matches this pattern')
            for match in map(Path, matches):
                if match.is_dir():
                    for found in _folder_files(match):
                        add(found, named=False)
                elif match.is_file():
                    add(match, named=False)
        else:
            problems.append(f'{given}: no such file or folder')
    return files, problems, skipped


# --------------------------------------------------------------------------------------------------- loading
def load_documents(paths: Union[PathLike, Iterable[PathLike]], *, question_column: str = 'question',
                   answer_column: str = 'answer', strict: bool = False, max_chars: int = DEFAULT_MAX_CHARS,
                   overlap_chars: int = DEFAULT_OVERLAP_CHARS,
                   progress: Optional[Progress] = None) -> LoadedDocuments:
    """Read FAQ tables and documents into index-ready :class:`QADoc` s (see the module docstring).

    Inputs: ``paths`` (one or a list of files, folders, glob patterns); ``question_column``/``answer_column`` (the
    FAQ tables' columns); ``strict`` (raise on the first problem instead of recording it); ``max_chars`` (>= 1,
    the most characters of a passage) and ``overlap_chars`` (>= 0, the most characters the next passage of a
    section repeats); ``progress(files_done, files_total, docs_so_far)``, called after each file (``docs_so_far``:
    the FAQ entries and passages made so far).

    Output: :class:`LoadedDocuments` (``docs`` in file order, the counts, ``problems`` and ``summary()``).

    Raises :class:`covidqa.data.records.QADataError` on the first problem with ``strict=True`` (the message names
    the file and, where there is one, the row); ``ValueError`` on a bad ``max_chars``/``overlap_chars``. Nothing
    else stops the reading: with ``strict=False`` every problem is recorded and the file (or row) skipped.

    Example: ``load_documents('tests/fixtures/documents', question_column='Question',
    answer_column='Answer').summary()`` -> ``'6 files: 1 FAQ table (3 entries), 5 documents (11 passages); 1
    unsupported file skipped; 2 problems'``.
    """
    _check_settings(max_chars, overlap_chars)
    loaded = LoadedDocuments()

    def problem(message: str, cause: Optional[BaseException] = None) -> None:
        message = ' '.join(message.split())
        if strict:
            raise QADataError(message) from cause
        loaded.problems.append(message)

    files, path_problems, loaded.skipped_unsupported = expand_paths(paths)
    for message in path_problems:
        problem(message)
    seen_entries: Set[str] = set()
    read_from: Dict[str, Path] = {}  # document id -> the file it came from
    for done, path in enumerate(files, start=1):
        row_problems: List[str] = []
        table: Optional[FAQTable] = None
        documents: List[SourceDocument] = []
        try:
            if path.suffix.lower() in FAQ_SUFFIXES:
                table = read_faq_table(path, question_column, answer_column)
                row_problems = table.problems
            else:
                documents = read_document(path, problems=row_problems)
        except QADataError as error:
            problem(str(error), error)
        except OSError as error:
            problem(f'{path}: cannot read the file ({error.strerror or error})', error)
        else:
            for message in row_problems:
                problem(message)
            if table is not None and not table.entries:
                problem(f'{path}: no FAQ entries (no rows, or every row was bad)')
            elif table is not None:
                loaded.files += 1
                _add_table(loaded, table, seen_entries)
            else:
                loaded.files += 1
            for document in documents:
                if document.id in read_from:
                    problem(f'{path}: document {document.id!r} was already read from {read_from[document.id]}; '
                            f'skipped')
                    continue
                read_from[document.id] = path
                passages = split_document(document, max_chars=max_chars, overlap_chars=overlap_chars)
                if passages:
                    loaded.docs.extend(passages)
                    loaded.literature += 1
                    loaded.passages += len(passages)
        if progress is not None:
            progress(done, len(files), len(loaded.docs))
    loaded.documents = loaded.faq_tables + loaded.literature
    return loaded


def _add_table(loaded: LoadedDocuments, table: FAQTable, seen: Set[str]) -> None:
    added = 0
    for doc in faq_docs(table):
        if str(doc.id) in seen:
            loaded.duplicates += 1
            continue
        seen.add(str(doc.id))
        loaded.docs.append(doc)
        added += 1
    if added:
        loaded.faq_tables += 1
        loaded.faq_entries += added
