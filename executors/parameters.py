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
    executors._common.BadRequest: unknown parameter(s) ['limt'] for /search; known parameters: ['batch_size', 'bm25_weight', 'collection', 'limit', 'max_length', 'retrieval']
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Dict, List, Literal, Optional, Tuple, Type, TypeVar, cast, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator

from covidqa.embedding.options import EmbedOptions
from covidqa.index.options import SearchOptions
from covidqa.options import bounds_of, choice, declare, describe_error, flag, integer, number, optional
from covidqa.reader.options import ReadOptions
from executors._common import BadRequest

MAX_WAIT_S = 3600
MAX_KEEP = 100_000  # DeleteParameters.keep
T = TypeVar('T', bound='Parameters')
V = TypeVar('V')


def or_default(value: Optional[V], default: V) -> V:
    """``value`` unless it is ``None`` (the parameter was not given)."""
    return default if value is None else value


# ---------------------------------------------------------------------------------------------------- field types
# The settings of a concept are declared once, in the library (covidqa.embedding.options, covidqa.index.options,
# covidqa.reader.options): a request parameter that overrides one is ``optional(Model, name)``, the same check,
# bounds and description, ``None`` = the Executor's configured value. The endpoints' own keys use the same checks.
def _file(description: str) -> Any:
    def check(value, info: ValidationInfo):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f'parameter {info.field_name!r} must be a file name under the data directory, '
                             f'got {value!r}')
        return value
    return declare(check, description)


def _text(description: str) -> Any:
    def check(value, info: ValidationInfo):
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 1000):
            raise ValueError(f'parameter {info.field_name!r} must be a non-empty id, got {value!r:.80}')
        return value
    return declare(check, description)


def _ids(description: str) -> Any:
    def check(value, info: ValidationInfo):
        if value is not None and (not isinstance(value, list) or len(value) > MAX_KEEP
                                  or not all(isinstance(v, str) and v for v in value)):
            raise ValueError(f'parameter {info.field_name!r} must be a list of at most {MAX_KEEP} document ids, '
                             f'got {str(value)[:80]}')
        return value
    return declare(check, description)


def _object(description: str) -> Any:
    def check(value, info: ValidationInfo):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f'parameter {info.field_name!r} must be an object of training arguments, got {value!r}')
        return value
    return declare(check, description)


MaxLength = Annotated[Optional[int], optional(EmbedOptions, 'max_length')]
BatchSize = Annotated[Optional[int], optional(EmbedOptions, 'batch_size')]
ContextField = Literal['auto', 'answer', 'text']  # AnswerParameters.context_field
Verdict = Literal['right', 'wrong']  # AnswerFeedbackParameters.verdict
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
            raise BadRequest('; '.join(describe_error(e) for e in error.errors())) from None


class IndexParameters(Parameters):
    """``/index`` and ``/update``: tokenizer and embedder settings (:class:`covidqa.embedding.options.EmbedOptions`)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/index', '/update')
    max_length: MaxLength = None
    batch_size: BatchSize = None


class SearchParameters(Parameters):
    """``/search``: the embedder's settings and the indexer's (:class:`covidqa.index.options.SearchOptions`)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/search',)
    limit: Annotated[Optional[int], optional(SearchOptions, 'limit')] = None
    max_length: MaxLength = None
    batch_size: BatchSize = None
    retrieval: Annotated[Optional[str], optional(SearchOptions, 'retrieval')] = None
    bm25_weight: Annotated[Optional[float], optional(SearchOptions, 'bm25_weight')] = None
    collection: Annotated[Optional[str], optional(SearchOptions, 'collection')] = None


class AnswerParameters(SearchParameters):
    """``/answer``: the ``/search`` settings plus the reader's (:class:`covidqa.reader.options.ReadOptions`,
    :data:`covidqa.reader.options.REQUEST_OPTIONS`; ``batch_size`` is the embedder's and the reader's)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/answer',)
    batch_size: Annotated[Optional[int], declare(
        bounds_of(EmbedOptions, 'batch_size').check,
        'texts per embedder pass (default 32) and windows per reader call (default 16)',
        bounds_of(EmbedOptions, 'batch_size').extra)] = None
    top_k: Annotated[Optional[int], optional(ReadOptions, 'top_k')] = None
    max_answer_length: Annotated[Optional[int], optional(ReadOptions, 'max_answer_length')] = None
    doc_stride: Annotated[Optional[int], optional(ReadOptions, 'doc_stride')] = None
    max_seq_length: Annotated[Optional[int], optional(ReadOptions, 'max_seq_length')] = None
    no_answer_threshold: Annotated[Optional[float], optional(ReadOptions, 'no_answer_threshold')] = None
    confidence_threshold: Annotated[Optional[float], optional(ReadOptions, 'confidence_threshold')] = None
    lexical_weight: Annotated[Optional[float], optional(ReadOptions, 'lexical_weight')] = None
    overlap_threshold: Annotated[Optional[float], optional(ReadOptions, 'overlap_threshold')] = None
    context_field: Annotated[Optional[ContextField],
                             choice(get_args(ContextField), "what the reader reads of a match ('auto': answer, "
                                                            'else text)')] = None
    return_matches: Annotated[Optional[bool], flag('also return the passages read (default false: the answers '
                                                   'only, each with its source)')] = None


class NoParameters(Parameters):
    """``/count``, ``/feedback``, ``/status``, ``/qa/status``, ``/export_feedback``, ``/eval_feedback``: no
    parameters."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/count', '/feedback', '/status', '/qa/status', '/export_feedback',
                                            '/eval_feedback')


class DeleteParameters(Parameters):
    """``/delete``: by document id or by whole document."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/delete',)
    documents: Annotated[Optional[bool], flag('the ids are document ids: delete each document with every passage '
                                              'cut from it (parent_id); default false: by document id')] = None
    keep: Annotated[Optional[List[str]], _ids(f'with documents: the ids of passages to keep (those just indexed: '
                                              f'what is left of an older version goes); at most {MAX_KEEP:,}')] = None


class AnswerFeedbackParameters(Parameters):
    """``/answer_feedback``: the verdict on one answer of an ``/answer`` reply (the request's one document: the
    answered question's id), optionally with the right span (:mod:`covidqa.feedback.answers`)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/answer_feedback',)
    answer: Annotated[Optional[int], integer(0, 1000, "the answer's position in the reply's answers (default 0)")
                      ] = None
    verdict: Annotated[Optional[Verdict], choice(get_args(Verdict), "whether that answer is 'right' or 'wrong' "
                                                                    '(required)')] = None
    correct_context_id: Annotated[Optional[str], _text('the passage (a match id read for the question) that holds '
                                                       'the right answer')] = None
    correct_start: Annotated[Optional[int], integer(0, 10 ** 7, "the right answer's first character in that "
                                                                'passage')] = None
    correct_end: Annotated[Optional[int], integer(1, 10 ** 7, "the character after the right answer's last")] = None


class RoundParameters(Parameters):
    """``/train`` and ``/save_model``: whether to wait for the training round, and how long at most."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/train', '/save_model')
    wait: Annotated[Optional[bool], flag('wait for the round to finish (default false)')] = None
    timeout: Annotated[Optional[float], number(1, MAX_WAIT_S, 'seconds to wait at most (default 600)')] = None


class RollbackParameters(Parameters):
    """``/rollback``: the embedder version to go back to (required)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/rollback',)
    version: Annotated[Optional[int],
                       integer(0, 10 ** 6, 'an existing embedder version (0 = the shipped embedder)')] = None


class QATrainParameters(Parameters):
    """``/qa/train``: a training file (else the request's labelled documents), evaluation file, arguments."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/qa/train',)
    file: Annotated[Optional[str], _file('CSV or SQuAD JSON file under the reader data directory')] = None
    eval_file: Annotated[Optional[str], _file('labelled file evaluated after training')] = None
    args: Annotated[Optional[Dict[str, Any]], _object('QATrainArgs keys, e.g. {"num_train_epochs": 1}')] = None
    start_from: Annotated[Optional[StartFrom],
                          choice(get_args(StartFrom), "the served reader ('current', default) or the base model")] = None
    wait: Annotated[Optional[bool], flag('wait for the training to end and return its summary (default false: '
                                          'return at once, progress in /qa/status)')] = None
    timeout: Annotated[Optional[float], number(1, 24 * 3600, 'seconds to wait at most (default 3600)')] = None


class QAFileParameters(Parameters):
    """``/qa/eval`` and ``/qa/test``: a file under the reader data directory (else the request's documents)."""

    endpoints: ClassVar[Tuple[str, ...]] = ('/qa/eval', '/qa/test')
    file: Annotated[Optional[str], _file('CSV or SQuAD JSON file under the reader data directory')] = None


ENDPOINT_MODELS: Tuple[Type[Parameters], ...] = (IndexParameters, SearchParameters, AnswerParameters, DeleteParameters,
                                                 AnswerFeedbackParameters, RoundParameters,
                                                 RollbackParameters, QATrainParameters, QAFileParameters)


def _number_text(value: float) -> str:
    if float(value).is_integer():
        return f'{int(value):,}' if value >= 100_000 else str(int(value))
    return f'{value:g}'


def parameter_table() -> str:
    """The README's table of every endpoint's parameters, made from the models above (so there is one copy):
    ``python -m executors.parameters`` prints it, ``tests/unit/test_parameters.py`` checks the README holds it."""
    rows = ['| endpoint | parameter | values | what it does |', '|---|---|---|---|']
    for model in ENDPOINT_MODELS:
        parent = cast(Type[Parameters], model.__mro__[1])
        inherited = set(parent.model_fields) if parent is not Parameters else set()
        names = [n for n in model.model_fields if n not in inherited
                 or model.model_fields[n].description != parent.model_fields[n].description]
        properties = model.model_json_schema()['properties']
        for position, name in enumerate(names):
            schema = properties[name]
            if 'minimum' in schema:
                values = f'{_number_text(schema["minimum"])}-{_number_text(schema["maximum"])}'
            elif 'enum' in schema:
                values = ', '.join(f'`{v}`' for v in schema['enum'])
            else:
                values = {'boolean': 'true / false', 'object': 'object', 'array': 'list of ids',
                          'string': 'file name' if name.endswith('file') else 'text'}.get(
                    next((t.get('type') for t in schema.get('anyOf', [schema]) if t.get('type') != 'null'), ''), '')
            endpoint = ', '.join(f'`{e}`' for e in model.endpoints) if position == 0 else ''
            if position == 0 and inherited:
                endpoint += f' (and those of `{parent.endpoints[0]}`)'
            rows.append(f'| {endpoint} | `{name}` | {values} | {schema.get("description", "")} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    print(parameter_table())
