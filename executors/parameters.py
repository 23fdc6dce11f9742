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
    executors._common.BadRequest: unknown parameter(s) ['limt'] for /search; known parameters: ['batch_size', 'limit', 'max_length']
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Dict, Literal, Optional, Tuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from executors._common import BadRequest

MAX_WAIT_S = 3600


def or_default(value, default):
    """``value`` unless it is ``None`` (the parameter was not given)."""
    return default if value is None else value


# ---------------------------------------------------------------------------------------------------- field types
def _integer(minimum: int, maximum: int, description: str):
    def check(value, info: ValidationInfo):
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON/protobuf numbers arrive as floats
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(f'parameter {info.field_name!r} must be an integer between {minimum} and {maximum}, '
                             f'got {value!r}')
        return value
    return Annotated[Optional[int], BeforeValidator(check),
                     Field(description=description, json_schema_extra={'minimum': minimum, 'maximum': maximum})]


def _number(minimum: float, maximum: float, description: str):
    def check(value, info: ValidationInfo):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not minimum <= value <= maximum:
            raise ValueError(f'parameter {info.field_name!r} must be a number between {minimum} and {maximum}, '
                             f'got {value!r}')
        return float(value)
    return Annotated[Optional[float], BeforeValidator(check),
                     Field(description=description, json_schema_extra={'minimum': minimum, 'maximum': maximum})]


def _choice(choices: Tuple[str, ...], description: str):
    def check(value, info: ValidationInfo):
        if value is not None and value not in choices:
            raise ValueError(f'parameter {info.field_name!r} must be one of {choices}, got {value!r}')
        return value
    return Annotated[Optional[Literal[choices]], BeforeValidator(check), Field(description=description)]


def _flag(description: str):
    def check(value, info: ValidationInfo):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f'parameter {info.field_name!r} must be true or false, got {value!r}')
        return value
    return Annotated[Optional[bool], BeforeValidator(check), Field(description=description)]


def _file(description: str):
    def check(value, info: ValidationInfo):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f'parameter {info.field_name!r} must be a file name under the data directory, '
                             f'got {value!r}')
        return value
    return Annotated[Optional[str], BeforeValidator(check), Field(description=description)]


def _object(description: str):
    def check(value, info: ValidationInfo):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f'parameter {info.field_name!r} must be an object of training arguments, got {value!r}')
        return value
    return Annotated[Optional[Dict[str, Any]], BeforeValidator(check), Field(description=description)]


Limit = _integer(1, 1000, 'matches per query (indexer; default: its uses_with limit, 10)')
MaxLength = _integer(1, 512, 'tokens per query/document embedded (tokenizer; default 50)')
BatchSize = _integer(1, 1024, 'texts (embedder) or windows (reader) per forward pass')


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
    def parse(cls, parameters: Optional[dict], endpoint: str = '') -> 'Parameters':
        """The validated parameters of a request to ``endpoint`` (named in messages); raises :class:`BadRequest`
        naming the bad key(s)."""
        try:
            return cls.model_validate(parameters or {}, context={'endpoint': endpoint})
        except ValidationError as error:
            raise BadRequest('; '.join(_describe(e) for e in error.errors())) from None


def _describe(error: dict) -> str:
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


class AnswerParameters(SearchParameters):
    """``/answer``: the ``/search`` knobs plus the reader's (defaults: the reader's ``uses_with``)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/answer',)
    top_k: _integer(1, 100, 'answers per question') = None
    max_answer_length: _integer(1, 512, 'longest answer, in tokens') = None
    doc_stride: _integer(1, 512, 'overlap of the reader windows, in tokens') = None
    max_seq_length: _integer(1, 512, 'reader window length, in tokens') = None
    no_answer_threshold: _number(0.0, 1.0, 'best span scores below this answer "no answer"') = None
    lexical_weight: _number(0.0, 100.0, 'discount of spans outside the context sentences that best match the '
                                        "question's words (0 = the model alone)") = None
    context_field: _choice(('auto', 'answer', 'text'), "what the reader reads of a match ('auto': answer, else "
                                                        'text)') = None


class NoParameters(Parameters):
    """``/delete``, ``/count``, ``/feedback``, ``/status``: no parameters."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/delete', '/count', '/feedback', '/status')


class RoundParameters(Parameters):
    """``/train`` and ``/save_model``: whether to wait for the training round, and how long at most."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/train', '/save_model')
    wait: _flag('wait for the round to finish (default false)') = None
    timeout: _number(1, MAX_WAIT_S, 'seconds to wait at most (default 600)') = None


class RollbackParameters(Parameters):
    """``/rollback``: the embedder version to go back to (required)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/rollback',)
    version: _integer(0, 10 ** 6, 'an existing embedder version (0 = the base model)') = None


class QATrainParameters(Parameters):
    """``/qa/train``: a training file (else the request's labelled documents), evaluation file, arguments."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/qa/train',)
    file: _file('CSV or SQuAD JSON file under the reader data directory') = None
    eval_file: _file('labelled file evaluated after training') = None
    args: _object('QATrainArgs keys, e.g. {"num_train_epochs": 1}') = None
    start_from: _choice(('current', 'base'), "the served reader ('current', default) or the base model") = None


class QAFileParameters(Parameters):
    """``/qa/eval`` and ``/qa/test``: a file under the reader data directory (else the request's documents)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/qa/eval', '/qa/test')
    file: _file('CSV or SQuAD JSON file under the reader data directory') = None
