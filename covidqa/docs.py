"""Document schemas (docarray v2) that flow through the service.

One schema, :class:`QADoc`, travels between the Executors of the Flow, so that any endpoint can be served by the
chain without schema conversions (what leaves the Flow is leaner, below):

- a FAQ entry / passage to index: ``text`` (what is embedded, e.g. the FAQ question) plus ``answer``, ``title``,
  ``source``, ``url`` and its ``kind`` (:data:`KINDS`: ``'faq'`` or ``'literature'``; unstated, an entry with an
  ``answer`` is FAQ, see :func:`kind_of`); a passage cut from a longer document (:mod:`covidqa.data.passages`) also
  names that document (``parent_id``), the ``section`` it sits in and where (``offset_start``/``offset_end``,
  characters: the passage is ``document[offset_start:offset_end]``); all optional, returned with the matches of
  ``/search`` and ``/answer``;
- a query: ``text`` is the question; after ``/search`` it carries ``matches`` (best first, each with ``score``);
  after ``/answer`` it also carries ``answers`` (:class:`AnswerSpan`, best first).

Between the tokenizer and the embedder a document carries its unpadded ``input_ids``; the embedder pads per batch.

What leaves the Flow is leaner (no vectors, token ids or training fields such as ``wrong_answer``):
``/search`` replies with :class:`SearchReply` documents (``matches`` of :class:`ReplyMatch`), ``/answer`` with
:class:`AnswerReply` documents (``answers``; ``matches`` only when asked for with ``return_matches``).
"""

from typing import Optional

from docarray import BaseDoc, DocList
from docarray.typing import NdArray
from pydantic import Field


class AnswerSpan(BaseDoc):
    """One extracted answer: ``context[start:end] == answer`` for the indexed document with id ``context_id``, whose
    ``title`` (its title, or the FAQ question whose answer was read), ``source``, ``url``, ``kind`` (``'faq'`` or
    ``'literature'``) and, for a passage, its document (``parent_id``) and ``section`` come with it.

    ``score``: the probability that the answer is right (a calibrated reader; :mod:`covidqa.reader.confidence`).
    The "no answer" result has ``no_answer=True``, ``answer=None``, ``start == end == -1`` and no source. It comes
    first when the reader trusts none of the answers found, scored 1 - the best one's probability, followed by the
    best of those (``top_k``); alone when nothing was found (score 1.0 without contexts, else the model's no-answer
    probability).
    """

    answer: Optional[str] = None
    no_answer: bool = False
    score: float = 0.0
    start: int = -1
    end: int = -1
    context_id: Optional[str] = None
    context: Optional[str] = None
    title: Optional[str] = None
    source: Optional[str] = None
    url: Optional[str] = None
    kind: Optional[str] = None  # 'faq' | 'literature': what the answer was read from
    parent_id: Optional[str] = None  # a passage's document
    section: Optional[str] = None  # and its section


class SourceFields(BaseDoc):
    """What a client sees of an indexed document (:data:`REPLY_FIELDS`)."""

    text: str = ''
    answer: Optional[str] = None
    title: Optional[str] = None
    source: Optional[str] = None
    url: Optional[str] = None
    parent_id: Optional[str] = None  # a passage: the id of the document it was cut from
    offset_start: Optional[int] = None  # a passage: its character offsets in that document
    offset_end: Optional[int] = None
    section: Optional[str] = None  # a passage: the section of its document it was cut from (e.g. 'Abstract')
    kind: Optional[str] = None  # 'faq' (a question with its answer) or 'literature' (a passage); None: unstated


class StoredFields(SourceFields):
    """The searchable fields of an indexed document, stored and returned with every match inside the Flow
    (:data:`STORED_FIELDS`): what a client sees, plus the training fields (``wrong_answer``, a finetuner's
    ``generate_qa`` negative)."""

    wrong_answer: Optional[str] = None


KINDS = ('faq', 'literature')


def kind_of(doc) -> str:
    """The kind of an indexed document: its ``kind`` when set, else ``'faq'`` when it has an ``answer`` (an FAQ entry
    indexed before documents had kinds), else ``'literature'``."""
    return doc.kind or ('faq' if doc.answer else 'literature')


REPLY_FIELDS = tuple(name for name in SourceFields.model_fields if name != 'id')
STORED_FIELDS = tuple(name for name in StoredFields.model_fields if name != 'id')


class MatchDoc(StoredFields):
    """A stored document as returned by search (no nested matches): its ranking ``score`` (the cosine, BM25 or the
    fused score, by the ranking) and its ``cosine`` with the query whatever ranked it."""

    score: Optional[float] = None
    cosine: Optional[float] = None
    label: Optional[str] = None  # feedback: 'accepted' | 'rejected' | None (unlabeled)


class QADoc(MatchDoc):
    """The document type of every endpoint of the Flow."""

    input_ids: Optional[NdArray] = None
    embedding: Optional[NdArray] = None
    model_version: Optional[int] = None
    matches: DocList[MatchDoc] = DocList[MatchDoc]()  # set by /search and /answer, best first
    answers: DocList[AnswerSpan] = DocList[AnswerSpan]()  # set by /answer, best first


class ReplyMatch(SourceFields):
    """A match as a client gets it: the document's :class:`SourceFields`, its ``score`` and ``cosine``."""

    score: Optional[float] = None
    cosine: Optional[float] = None


class SearchReply(BaseDoc):
    """A ``/search`` reply document: the query (``text``, the embedder ``model_version`` that ranked it) and its
    ``matches``, best first."""

    text: str = ''
    model_version: Optional[int] = None
    matches: DocList[ReplyMatch] = DocList[ReplyMatch]()


class AnswerReply(SearchReply):
    """An ``/answer`` reply document: the question's ``answers`` (:class:`AnswerSpan`, best first); ``matches``
    (the passages read) only with ``return_matches``."""

    answers: DocList[AnswerSpan] = DocList[AnswerSpan]()


def reply_match(match: MatchDoc) -> ReplyMatch:
    """``match`` without its training fields."""
    return ReplyMatch(id=match.id, score=match.score, cosine=match.cosine,
                      **{name: getattr(match, name) for name in REPLY_FIELDS})


def search_replies(docs: 'DocList[QADoc]') -> 'DocList[SearchReply]':
    """The ``/search`` reply of each query in ``docs``: its text, model version and matches (:func:`reply_match`)."""
    return DocList[SearchReply]([
        SearchReply(id=d.id, text=d.text, model_version=d.model_version,
                    matches=DocList[ReplyMatch]([reply_match(m) for m in d.matches])) for d in docs])


class StoredDoc(StoredFields):
    """What the indexer persists: the searchable fields plus the embedding (cosine space)."""

    model_version: int = 0
    embedding: NdArray = Field(space='cosine_sim')  # type: ignore[call-overload]  # docarray's index option


__all__ = ['AnswerReply', 'AnswerSpan', 'MatchDoc', 'QADoc', 'REPLY_FIELDS', 'ReplyMatch', 'SearchReply',
           'SourceFields', 'StoredDoc', 'StoredFields', 'STORED_FIELDS', 'DocList', 'reply_match', 'KINDS', 'kind_of',
           'search_replies']
