"""Settings declared once: typed options models whose fields carry their bounds, default and description.

A concept's options (reading: :class:`covidqa.reader.options.ReadOptions`; searching and embedding:
:mod:`covidqa.index.options`) are one :class:`Options` model. The same field declarations feed

- the library call (``ExtractiveReader(top_k=3)``, ``reader.read(..., top_k=3)``: :meth:`Options.with_overrides`),
- the Executor's ``uses_with`` (:meth:`Options.pop_from`),
- the endpoint parameters and so OpenAPI (:func:`optional`: the same check, ``None`` = the configured default),
- the command line (:func:`add_arguments`) and the README's parameter table (``python -m executors.parameters``).

Every check names the setting and its bounds: ``parameter 'top_k' must be an integer between 1 and 1000, got 0``.

Example::

    class ReadOptions(Options):
        top_k: Annotated[int, integer(1, 1000, 'answers per question')] = 1

    ReadOptions().with_overrides(top_k=3).top_k        # 3
    ReadOptions(top_k=0)                               # ValueError: parameter 'top_k' must be an integer ...
"""
from __future__ import annotations

import os
from typing import (
    Annotated,
    Any,
    Callable,
    ClassVar,
    Dict,
    Mapping,
    MutableMapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
)

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

OptionsT = TypeVar('OptionsT', bound='Options')


class OptionsError(ValueError):
    """A setting out of its bounds, of the wrong type, or unknown; the message names it."""


# ---------------------------------------------------------------------------------------------------- field checks
# Each factory returns the metadata of one field: a check that accepts None (a request parameter left out) and
# names the field, its description and the JSON-schema bounds. Use as ``Annotated[int, integer(1, 100, '...')]``.
class Bounds:
    """What one setting declares: its ``check`` (value, pydantic info) -> value, ``description`` and JSON-schema
    ``extra`` (``minimum``/``maximum`` or ``enum``)."""

    def __init__(self, check: Callable[[Any, ValidationInfo], Any], description: str, extra: Dict[str, Any]):
        self.check, self.description, self.extra = check, description, extra


def declare(check: Callable[[Any, ValidationInfo], Any], description: str,
            extra: Optional[Dict[str, Any]] = None) -> FieldInfo:
    """Field metadata from a ``check(value, info) -> value`` that raises ``ValueError`` naming the field (and lets
    ``None`` through), its description and JSON-schema ``extra``: for settings the factories below do not cover."""
    check.bounds = Bounds(check, description, extra or {})  # type: ignore[attr-defined]
    return FieldInfo.from_annotation(Annotated[Any, BeforeValidator(check),  # type: ignore[arg-type]
                                               Field(description=description, json_schema_extra=extra or None)])


def integer(minimum: int, maximum: int, description: str) -> Any:
    """An integer in ``[minimum, maximum]`` (a float with no fraction, as JSON and protobuf send numbers, counts)."""
    def check(value, info: ValidationInfo):
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(f'{info.field_name!r} must be an integer between {minimum} and {maximum}, got {value!r}')
        return value
    return declare(check, description, {'minimum': minimum, 'maximum': maximum})


def number(minimum: float, maximum: float, description: str, exclusive_minimum: bool = False) -> Any:
    """A number in ``[minimum, maximum]`` (``(minimum, maximum]`` with ``exclusive_minimum``), returned as a float;
    NaN, infinities and booleans refused."""
    def check(value, info: ValidationInfo):
        if value is None:
            return None
        low_ok = isinstance(value, (int, float)) and (value > minimum if exclusive_minimum else value >= minimum)
        if isinstance(value, bool) or not low_ok or not value <= maximum:
            span = f'above {minimum} and at most' if exclusive_minimum else f'between {minimum} and'
            raise ValueError(f'{info.field_name!r} must be a number {span} {maximum}, got {value!r}')
        return float(value)
    extra: Dict[str, Any] = {'minimum': minimum, 'maximum': maximum}
    if exclusive_minimum:
        extra['exclusiveMinimum'] = True
    return declare(check, description, extra)


def choice(choices: Tuple[str, ...], description: str) -> Any:
    """One of ``choices``."""
    def check(value, info: ValidationInfo):
        if value is not None and value not in choices:
            raise ValueError(f'{info.field_name!r} must be one of {choices}, got {value!r}')
        return value
    return declare(check, description, {'enum': list(choices)})


def flag(description: str) -> Any:
    """``true`` or ``false`` (no numbers, no strings)."""
    def check(value, info: ValidationInfo):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f'{info.field_name!r} must be true or false, got {value!r}')
        return value
    return declare(check, description)


def path(description: str) -> Any:
    '''A file or folder path (a string or ``os.PathLike``), returned as a string.'''
    def check(value, info: ValidationInfo):
        if value is None:
            return None
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f'{info.field_name!r} must be a path string, got {value!r}')
        return str(value)
    return declare(check, description)


def bounds_of(model: Type[BaseModel], name: str) -> Bounds:
    """The check, description and bounds declared for setting ``name`` of an options model."""
    for item in model.model_fields[name].metadata:
        bounds = getattr(getattr(item, 'func', None), 'bounds', None)
        if isinstance(bounds, Bounds):
            return bounds
    raise KeyError(f'{model.__name__}.{name} was not declared with integer/number/choice/flag')


def describe_error(error: ErrorDetails, noun: str = 'parameter') -> str:
    """One pydantic error as the sentence a person reads: ``parameter 'top_k' must be ...`` (``noun`` names what
    the settings are: a request's parameters, a trainer's training arguments)."""
    message = error['msg']
    if error['type'] == 'value_error':
        message = message.removeprefix('Value error, ')
        return f'{noun} {message}' if message.startswith("'") else message  # a field's check names the field
    where = '.'.join(str(part) for part in error['loc'])
    return f'{noun} {where!r}: {message}, got {error.get("input")!r}'


# ---------------------------------------------------------------------------------------------------- the models
class Options(BaseModel):
    """Base of the options models: immutable, unknown keys refused by name, every check naming its setting."""

    model_config = ConfigDict(extra='forbid', frozen=True, validate_default=True)
    noun: ClassVar[str] = 'parameter'  # what the messages call a setting
    error: ClassVar[Type[OptionsError]] = OptionsError  # what a bad or unknown setting raises

    def __init__(self, **values: Any):
        unknown = sorted(str(k) for k in values if k not in type(self).model_fields)
        if unknown:
            raise self.error(f'unknown {self.noun}(s) {unknown}; known: {sorted(type(self).model_fields)}')
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise self.error('; '.join(describe_error(e, self.noun) for e in error.errors())) from None

    def with_overrides(self: OptionsT, overrides: Optional[Mapping[str, Any]] = None, **more: Any) -> OptionsT:
        """A checked copy with the given settings changed; ``None`` values (a parameter left out) keep the current
        value. Raises :class:`OptionsError` naming a bad or unknown setting."""
        changes = {k: v for k, v in {**(overrides or {}), **more}.items() if v is not None}
        if not changes:
            return self
        return type(self)(**{**self.model_dump(), **changes})

    @classmethod
    def pop_from(cls: Type[OptionsT], values: MutableMapping[str, Any]) -> OptionsT:
        """The options named in ``values`` (an Executor's ``uses_with`` keyword arguments), removed from it and
        checked; settings not given keep their defaults."""
        return cls(**{name: values.pop(name) for name in list(values) if name in cls.model_fields})


def optional(model: Type[Options], name: str) -> Any:
    """Field metadata for a request parameter that overrides ``model``'s setting ``name``: the same check and
    bounds, its description with the library default, ``None`` (left out) meaning the Executor's configured value
    (``uses_with``, else that default). Use as
    ``top_k: Annotated[Optional[int], optional(ReadOptions, 'top_k')] = None``."""
    bounds = bounds_of(model, name)
    default = model.model_fields[name].default
    shown = f'{bounds.description} (default {default!r})' if default is not None else bounds.description
    return declare(bounds.check, shown, {**bounds.extra, 'x-setting': f'{model.__name__}.{name}'})


def add_arguments(parser: Any, model: Type[Options], names: Sequence[str]) -> None:
    """Command-line options ``--max-seq-length`` ... for ``model``'s settings ``names`` on an ``argparse`` parser:
    the description, bounds and default in the help, ``None`` when not given (pass the parsed values to
    :meth:`Options.with_overrides`, which checks them)."""
    for name in names:
        bounds = bounds_of(model, name)
        extra, default = bounds.extra, model.model_fields[name].default
        kind = float if any(isinstance(extra.get(k), float) for k in ('minimum', 'maximum')) else int
        shown = (f' ({extra["minimum"]}-{extra["maximum"]}' if 'minimum' in extra else ' (') + f'; default {default})'
        parser.add_argument('--' + name.replace('_', '-'), dest=name, default=None,
                            type=kind if 'minimum' in extra else str, help=bounds.description + shown)
