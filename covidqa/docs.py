"""Document schemas (docarray v2) that flow through the service.

One schema, :class:`QADoc`, travels through every Executor of the Flow, so that any endpoint can be served by the
chain without schema conversions:

- a FAQ entry / passage to index: ``text`` (what is embedded, e.g. the FAQ question) plus ``answer``, ``title``,
  ``source``, ``url``; a passage cut from a longer document (:mod:`covidqa.data.passages`) also names that document
  (``parent_id``) and where it sits in it (``offset_start``/``offset_end``, characters: the passage is
  ``document[offset_start:offset_end]``); all optional, returned with the matches of ``/search`` and ``/answer``;
- a query: ``text`` is the question; after ``/search`` it carries ``matches`` (best first, each with ``score``);
  after ``/answer`` it also carries ``answers`` (:class:`AnswerSpan`, best first).

Between the tokenizer and the embedder a document carries its unpadded ``input_ids``; the embedder pads per batch.
"""

from typing import Optional

from docarray import BaseDoc, DocList
from docarray.typing import NdArray
from pydantic import Field


class AnswerSpan(BaseDoc):
    """One extracted answer: ``context[start:end] == answer`` for the context with id ``context_id``.

    ``answer == ''`` with ``start == end == -1`` is the "no answer" result.
    """

    answer: str = ''
    score: float = 0.0
    start: int = -1
    end: int = -1
    context_id: str = ''
    context: Optional[str] = None


class StoredFields(BaseDoc):
    """The searchable fields of an indexed document, stored and returned with every match (:data:`STORED_FIELDS`)."""

    text: str = ''
    answer: Optional[str] = None
    wrong_answer: Optional[str] = None
    title: Optional[str] = None
    source: Optional[str] = None
    url: Optional[str] = None
    parent_id: Optional[str] = None  # a passage: the id of the document it was cut from
    offset_start: Optional[int] = None  # a passage: its character offsets in that document
    offset_end: Optional[int] = None


STORED_FIELDS = tuple(name for name in StoredFields.model_fields if name != 'id')


class MatchDoc(StoredFields):
    """A stored document as returned by search (no nested matches)."""

    score: Optional[float] = None
    label: Optional[str] = None  # feedback: 'accepted' | 'rejected' | None (unlabeled)


class QADoc(MatchDoc):
    """The document type of every endpoint of the Flow."""

    input_ids: Optional[NdArray] = None
    embedding: Optional[NdArray] = None
    model_version: Optional[int] = None
    matches: DocList[MatchDoc] = DocList[MatchDoc]()  # set by /search and /answer, best first
    answers: DocList[AnswerSpan] = DocList[AnswerSpan]()  # set by /answer, best first


class StoredDoc(StoredFields):
    """What the indexer persists: the searchable fields plus the embedding (cosine space)."""

    model_version: int = 0
    embedding: NdArray = Field(space='cosine_sim')  # type: ignore[call-overload]  # docarray's index option


__all__ = ['AnswerSpan', 'MatchDoc', 'QADoc', 'StoredDoc', 'StoredFields', 'STORED_FIELDS', 'DocList']
