"""Remembered answers: a repeated question over the same passages is answered without reading them again.

Real FAQ traffic repeats itself, and reading is most of an ``/answer``'s time. :class:`AnswerCache` keeps the
answers of the last ``max_entries`` reads, keyed by everything the answers depend on (:func:`cache_key`):

- the question, normalised as the reader sees it (lowercased, whitespace collapsed: the reader's tokenizer is
  uncased, and its lexical evidence lowercases too);
- every context read, in order, with its id, title, retrieval cosine and kind: the retrieval result itself, so a
  new document that is retrieved, a deleted or replaced one, and a new embedder version (other matches, other
  cosines) each change the key, and a stale answer can never be served;
- the request's reading settings (``top_k``, thresholds, window, ...) and how the kinds are read (``faq_first``);
- ``reader_key``: the reader that reads (a swapped-in reader gets a new key).

Thread-safe; bounded (least recently used first out). ``stats()``: ``hits``, ``misses``, ``entries``.

Example::

    cache = AnswerCache(1024)
    key = cache_key(reader_key, question, contexts, ids, titles, cosines, kinds, {'top_k': 1}, faq_first=True)
    answers = cache.get(key)
    if answers is None:
        answers = read(...)
        cache.put(key, answers)
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, List, Mapping, Optional, Sequence

DEFAULT_ENTRIES = 4096


def normalise_question(question: str) -> str:
    """``question`` as the reader sees it: lowercased, whitespace collapsed, trimmed."""
    return ' '.join(str(question or '').lower().split())


def cache_key(reader_key: str, question: str, contexts: Sequence[str], ids: Sequence[Optional[str]],
              titles: Sequence[Optional[str]], cosines: Sequence[Optional[float]], kinds: Sequence[str],
              options: Mapping[str, Any], faq_first: bool) -> str:
    """The key of one question's read (see the module docstring): a SHA-1 of everything its answers depend on."""
    payload = json.dumps([reader_key, normalise_question(question), list(contexts), list(ids), list(titles),
                          [None if c is None else round(float(c), 6) for c in cosines], list(kinds),
                          sorted((k, v) for k, v in options.items()), bool(faq_first)],
                         ensure_ascii=False, separators=(',', ':'), default=str)
    return hashlib.sha1(payload.encode('utf-8')).hexdigest()


class AnswerCache:
    """The answers of the last ``max_entries`` reads (0: remember nothing)."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES):
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError(f'max_entries must be a non-negative integer, got {max_entries!r}')
        self.max_entries = max_entries
        self._entries: 'OrderedDict[str, List[Any]]' = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> Optional[List[Any]]:
        """The answers stored under ``key`` (a copy of the list), or None; counts a hit or a miss."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return list(found)

    def put(self, key: str, answers: Sequence[Any]) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[key] = list(answers)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> dict:
        with self._lock:
            return {'hits': self.hits, 'misses': self.misses, 'entries': len(self._entries),
                    'max_entries': self.max_entries}


__all__ = ['AnswerCache', 'DEFAULT_ENTRIES', 'cache_key', 'normalise_question']
