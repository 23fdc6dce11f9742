"""Request parameters of the Flow's endpoints: one pydantic model an endpoint, shared by every Executor on it.

Parameters travel to every Executor of the chain, so an endpoint's model holds the keys of all of its Executors
(``/answer``: the tokenizer's ``max_length``, the indexer's ``limit``, the reader's ``top_k``, ...). Unknown keys
are refused by name; jina-internal keys (``__results__``, ...) are ignored. ``None`` (or leaving a key out) means
the Executor's configured default (``uses_with``).

Each Executor validates the request's dict itself: ``params = SearchParameters.parse(parameters)``, which raises
:class:`BadRequest` naming the key. (jina 3.34 can also take the model as the ``parameters`` annotation, but its
HTTP gateway rebuilds the model from the JSON schema as a docarray document that silently drops unknown keys and
sends every field: an HTTP ``{'limt': 3}`` would no longer be refused. So the models are applied here, for gRPC and
HTTP alike.)

Example::

    >>> SearchParameters.parse({'limit': 3.0}).limit   # protobuf numbers arrive as floats
    3
    >>> SearchParameters.parse({'limt': 3})
    Traceback (most recent call last):
    executors._common.BadRequest: unknown parameter(s) ['limt'] for /search; known parameters: ['batch_size', 'bm25_weight', 'limit', 'max_length', 'retrieval']
"""
from __future__ import annotations

from typing import Annotated, Any, Callable, ClassVar, Dict, Literal, Optional, Tuple, Type, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from covidqa.index.hybrid import RETRIEVALS
from executors._common import BadRequest

MAX_WAIT_S = 3600
T = TypeVar('T', bound='Parameters')
V = TypeVar('V')


def or_default(value: Optional[V], default: V) -> V:
    """``value`` unless it is ``None`` (the parameter was not given)."""
    return default if value is None else value


# ---------------------------------------------------------------------------------------------------- field types
# Each factory returns the metadata of one field (its check, description and JSON-schema extras), used as
# ``name: Annotated[Optional[int], _integer(1, 100, 'what it is')] = None``: the type stays visible to type checkers.
def _field(kind: Any, check: Callable[[Any, ValidationInfo], Any], description: str,
           extra: Optional[Dict[str, Any]] = None) -> FieldInfo:
    annotated: Any = Annotated[kind, BeforeValidator(check), Field(description=description, json_schema_extra=extra)]
    return FieldInfo.from_annotation(annotated)


def _integer(minimum: int, maximum: int, description: str) -> FieldInfo:
    def check(value, info: ValidationInfo):
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON/protobuf numbers arrive as floats
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(f'parameter {info.field_name!r} must be an integer between {minimum} and {maximum}, '
                             f'got {value!r}')
        return value
    return _field(Optional[int], check, description, {'minimum': minimum, 'maximum': maximum})


def _number(minimum: float, maximum: float, description: str) -> FieldInfo:
    def check(value, info: ValidationInfo):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not minimum <= value <= maximum:
            raise ValueError(f'parameter {info.field_name!r} must be a number between {minimum} and {maximum}, '
                             f'got {value!r}')
        return float(value)
    return _field(Optional[float], check, description, {'minimum': minimum, 'maximum': maximum})


def _choice(choices: Tuple[str, ...], description: str) -> FieldInfo:
    def check(value, info: ValidationInfo):
        if value is not None and value not in choices:
            raise ValueError(f'parameter {info.field_name!r} must be one of {choices}, got {value!r}')
        return value
    return _field(Optional[Literal[choices]], check, description)


def _flag(description: str) -> FieldInfo:
    def check(value, info: ValidationInfo):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f'parameter {info.field_name!r} must be true or false, got {value!r}')
        return value
    return _field(Optional[bool], check, description)


def _file(description: str) -> FieldInfo:
    def check(value, info: ValidationInfo):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f'parameter {info.field_name!r} must be a file name under the data directory, '
                             f'got {value!r}')
        return value
    return _field(Optional[str], check, description)


def _object(description: str) -> FieldInfo:
    def check(value, info: ValidationInfo):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f'parameter {info.field_name!r} must be an object of training arguments, got {value!r}')
        return value
    return _field(Optional[Dict[str, Any]], check, description)


Limit = Annotated[Optional[int], _integer(1, 1000, 'matches per query (indexer; default: its uses_with limit, 10)')]
MaxLength = Annotated[Optional[int], _integer(1, 512, 'tokens per query/document embedded (tokenizer; default 50)')]
BatchSize = Annotated[Optional[int], _integer(1, 1024, 'texts (embedder) or windows (reader) per forward pass')]
ContextField = Literal['auto', 'answer', 'text']  # AnswerParameters.context_field
Retrieval = Literal['dense', 'lexical', 'hybrid']  # SearchParameters.retrieval (covidqa.index.hybrid.RETRIEVALS)
StartFrom = Literal['current', 'base']  # QATrainParameters.start_from


# ------------------------------------------------------------------------------------------------------ the models
class Parameters(BaseModel):
    """Base of the endpoint models: unknown keys refused by name, ``__``-keys (jina's) ignored."""

    model_config = ConfigDict(extra='forbid', frozen=True)
    endpoints: ClassVar[Tuple[str, ...]] = ()

    @model_validator(mode='before')
    @classmethod
    def _known_keys_only(cls, data, info: ValidationInfo):
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f'parameters must be an object, got {data!r}')
        data = {k: v for k, v in data.items() if not str(k).startswith('__')}
        unknown = sorted(set(data) - set(cls.model_fields))
        if unknown:
            endpoint = (info.context or {}).get('endpoint') or ' or '.join(cls.endpoints) or 'this endpoint'
            raise ValueError(f'unknown parameter(s) {unknown} for {endpoint}; '
                             f'known parameters: {sorted(cls.model_fields) or "none"}')
        return data

    @classmethod
    def parse(cls: Type[T], parameters: Optional[dict], endpoint: str = '') -> T:
        """The validated parameters of a request to ``endpoint`` (named in messages); raises :class:`BadRequest`
        naming the bad key(s)."""
        try:
            return cls.model_validate(parameters or {}, context={'endpoint': endpoint})
        except ValidationError as error:
            raise BadRequest('; '.join(_describe(e) for e in error.errors())) from None


def _describe(error: ErrorDetails) -> str:
    message = error['msg']
    if error['type'] == 'value_error':  # our own messages, which name the key
        return message.removeprefix('Value error, ')
    where = '.'.join(str(part) for part in error['loc'])
    return f'parameter {where!r}: {message}, got {error.get("input")!r}'


class IndexParameters(Parameters):
    """``/index`` and ``/update``: tokenizer and embedder knobs."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/index', '/update')
    max_length: MaxLength = None
    batch_size: BatchSize = None


class SearchParameters(Parameters):
    """``/search``: tokenizer, embedder and indexer knobs."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/search',)
    limit: Limit = None
    max_length: MaxLength = None
    batch_size: BatchSize = None
    retrieval: Annotated[Optional[Retrieval],
                         _choice(RETRIEVALS, "how the indexer ranks: 'dense' (cosine), 'lexical' (BM25) or 'hybrid' "
                                             '(both, fused)')] = None
    bm25_weight: Annotated[Optional[float],
                           _number(0.0, 1.0, "BM25's share of the hybrid score (the cosine's: 1 - bm25_weight)")] = None


class AnswerParameters(SearchParameters):
    """``/answer``: the ``/search`` knobs plus the reader's (defaults: the reader's ``uses_with``)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/answer',)
    top_k: Annotated[Optional[int], _integer(1, 100, 'answers per question')] = None
    max_answer_length: Annotated[Optional[int], _integer(1, 512, 'longest answer, in tokens')] = None
    doc_stride: Annotated[Optional[int], _integer(1, 512, 'overlap of the reader windows, in tokens')] = None
    max_seq_length: Annotated[Optional[int], _integer(1, 512, 'reader window length, in tokens')] = None
    no_answer_threshold: Annotated[Optional[float],
                                   _number(0.0, 1.0, 'best span scores below this answer "no answer"')] = None
    lexical_weight: Annotated[Optional[float],
                              _number(0.0, 100.0, 'discount of spans outside the context sentences that best match '
                                                  "the question's words (0 = the model alone)")] = None
    overlap_threshold: Annotated[Optional[float],
                                 _number(0.0, 1.0, 'drop a span sharing more than this fraction of its characters '
                                                   'with a better answer of the same match (1 = keep all)')] = None
    context_field: Annotated[Optional[ContextField],
                             _choice(get_args(ContextField), "what the reader reads of a match ('auto': answer, "
                                                             'else text)')] = None


class NoParameters(Parameters):
    """``/delete``, ``/count``, ``/feedback``, ``/status``: no parameters."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/delete', '/count', '/feedback', '/status', '/qa/status')


class RoundParameters(Parameters):
    """``/train`` and ``/save_model``: whether to wait for the training round, and how long at most."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/train', '/save_model')
    wait: Annotated[Optional[bool], _flag('wait for the round to finish (default false)')] = None
    timeout: Annotated[Optional[float], _number(1, MAX_WAIT_S, 'seconds to wait at most (default 600)')] = None


class RollbackParameters(Parameters):
    """``/rollback``: the embedder version to go back to (required)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/rollback',)
    version: Annotated[Optional[int],
                       _integer(0, 10 ** 6, 'an existing embedder version (0 = the base model)')] = None


class QATrainParameters(Parameters):
    """``/qa/train``: a training file (else the request's labelled documents), evaluation file, arguments."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/qa/train',)
    file: Annotated[Optional[str], _file('CSV or SQuAD JSON file under the reader data directory')] = None
    eval_file: Annotated[Optional[str], _file('labelled file evaluated after training')] = None
    args: Annotated[Optional[Dict[str, Any]], _object('QATrainArgs keys, e.g. {"num_train_epochs": 1}')] = None
    start_from: Annotated[Optional[StartFrom],
                          _choice(get_args(StartFrom), "the served reader ('current', default) or the base model")] = None
    wait: Annotated[Optional[bool], _flag('wait for the training to end and return its summary (default false: '
                                          'return at once, progress in /qa/status)')] = None
    timeout: Annotated[Optional[float], _number(1, 24 * 3600, 'seconds to wait at most (default 3600)')] = None


class QAFileParameters(Parameters):
    """``/qa/eval`` and ``/qa/test``: a file under the reader data directory (else the request's documents)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/qa/eval', '/qa/test')
    file: Annotated[Optional[str], _file('CSV or SQuAD JSON file under the reader data directory')] = None
