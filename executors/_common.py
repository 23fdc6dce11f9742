"""Helpers shared by the Executors: request-parameter checks, input checks.

The Executors import :mod:`covidqa` as an installed package (``pip install -e .``, done by ``make venv``).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable

# Request-time knobs understood somewhere in the Flow, by endpoint. Parameters travel to every Executor of the
# chain, so each Executor checks against the Flow-wide list of its endpoint (unknown keys are refused by name).
FLOW_PARAMETERS: Dict[str, set] = {
    '/index': {'max_length', 'batch_size'},
    '/update': {'max_length', 'batch_size'},
    '/search': {'limit', 'max_length', 'batch_size'},
    '/answer': {'limit', 'top_k', 'max_length', 'batch_size', 'max_answer_length', 'doc_stride', 'max_seq_length',
                'no_answer_threshold', 'lexical_weight', 'context_field'},
    '/delete': set(),
    '/count': set(),
}

MAX_TEXT_CHARS = 100_000  # a FAQ entry or question larger than this is refused (passages go to the reader API)


class BadRequest(ValueError):
    """A client error: the message names the problem; the Flow keeps serving."""


def check_parameters(endpoint: str, parameters: Dict[str, Any], extra_known: Iterable[str] = ()) -> Dict[str, Any]:
    """Refuse unknown keys for ``endpoint`` (jina-internal keys starting with ``__`` are ignored)."""
    known = FLOW_PARAMETERS.get(endpoint, set()) | set(extra_known)
    given = {k: v for k, v in (parameters or {}).items() if not str(k).startswith('__')}
    unknown = sorted(set(given) - known)
    if unknown:
        raise BadRequest(
            f'unknown parameter(s) {unknown} for {endpoint}; known parameters: {sorted(known) or "none"}'
        )
    return given


def positive_int(parameters: Dict[str, Any], key: str, default: int, maximum: int = 10_000) -> int:
    value = parameters.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise BadRequest(f'parameter {key!r} must be an integer between 1 and {maximum}, got {value!r}')
    return value


def check_texts(docs, endpoint: str) -> None:
    """Every document needs a non-empty ``text`` of at most MAX_TEXT_CHARS characters."""
    for position, doc in enumerate(docs):
        text = doc.text
        if not isinstance(text, str) or not text.strip():
            raise BadRequest(f'{endpoint}: document {position} (id={doc.id}) has an empty text')
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(
                f'{endpoint}: document {position} (id={doc.id}) has {len(text)} characters; '
                f'the limit is {MAX_TEXT_CHARS}'
            )
