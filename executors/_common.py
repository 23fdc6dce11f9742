"""Helpers shared by the Executors: the client-error type and input checks (request parameters:
:mod:`executors.parameters`).

The Executors import :mod:`covidqa` as an installed package (``pip install -e .``, done by ``make venv``).
"""
from __future__ import annotations

import inspect
import uuid
from typing import Dict

MAX_TEXT_CHARS = 100_000  # a FAQ entry or question larger than this is refused (passages go to the reader API)


class BadRequest(ValueError):
    """A client error: the message names the problem; the Flow keeps serving."""


def check_texts(docs, endpoint: str) -> None:
    """A request needs at least one document, and every document a non-empty ``text`` of at most MAX_TEXT_CHARS
    characters; else :class:`BadRequest` naming the problem. (An HTTP body ``{"data": []}`` reached the tokenizer
    with no documents and failed inside the tokenizer library: a 500 instead of a 400.)

    Example::

        check_texts(DocList[QADoc]([QADoc(text='Can pets get it?')]), '/search')   # passes
        check_texts(DocList[QADoc](), '/search')    # BadRequest: /search: no documents: ...
    """
    if len(docs) == 0:
        raise BadRequest(f'{endpoint}: no documents: send at least one document with a text '
                         f'(HTTP: {{"data": [{{"text": "..."}}]}})')
    for position, doc in enumerate(docs):
        text = doc.text
        if not isinstance(text, str) or not text.strip():
            raise BadRequest(f'{endpoint}: document {position} (id={doc.id}) has an empty text')
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(
                f'{endpoint}: document {position} (id={doc.id}) has {len(text)} characters; '
                f'the limit is {MAX_TEXT_CHARS}'
            )


def prepare_texts(docs, endpoint: str, unique_ids: bool = False) -> None:
    """What the first Executor of a request does before any work: :func:`check_texts`, then an id for every
    document without one (HTTP clients may leave ids out; given here, once, before any shard sees it).
    ``unique_ids`` (queries): refuse two documents with one id, because the shards' answers are joined by id and
    their matches would be mixed up; ``/index`` takes them (the later one replaces the earlier, as in two requests)."""
    from docarray.typing import ID

    check_texts(docs, endpoint)
    first: Dict[str, int] = {}
    for position, doc in enumerate(docs):
        if not doc.id:
            doc.id = ID(uuid.uuid4().hex)
        if unique_ids and doc.id in first:
            raise BadRequest(f'{endpoint}: documents {first[doc.id]} and {position} have the same id {doc.id!r}; '
                             'give every query of a request its own id')
        first[doc.id] = position


# what jina itself hands an Executor's __init__ besides its uses_with
JINA_INIT_KEYS = frozenset({'metas', 'requests', 'runtime_args', 'workspace', 'dynamic_batching'})


def settings_of(*models):
    """Class decorator for an Executor whose ``__init__`` takes the settings of options ``models``
    (:mod:`covidqa.options`) through ``**kwargs`` (``Model.pop_from(kwargs)``): its signature lists them, so jina,
    which compares a Flow's ``uses_with`` keys with the signature, does not warn about them.

    Example: ``@settings_of(ReadOptions) class Reader(Executor): ...``
    """
    def decorate(cls):
        init = cls.__init__
        signature = inspect.signature(init)
        given = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        rest = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
        names = {p.name for p in given}
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=field.default)
                 for model in models for name, field in model.model_fields.items() if name not in names]
        init.__signature__ = signature.replace(parameters=[*given, *added, *rest])
        return cls
    return decorate


def refuse_unknown_settings(executor: str, kwargs: Dict) -> None:
    """Raise ``ValueError`` naming the ``uses_with`` keys left in ``kwargs`` once an Executor took its own (jina
    would ignore them silently: a misspelt setting must stop the start)."""
    unknown = sorted(set(kwargs) - JINA_INIT_KEYS)
    if unknown:
        raise ValueError(f'{executor}: unknown setting(s) {unknown} in uses_with')
