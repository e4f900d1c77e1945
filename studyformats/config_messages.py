"""One-line messages for settings files that fail validation: the key, what it accepts, the value.

The analysis plan, the run configuration and its teacher and data tables are read into
pydantic models (``BaseModel`` or pydantic dataclasses). :func:`validation_message` turns the
first problem of a ``ValidationError`` from any of them into one line that names the key as
it is written in the TOML file (``training.batch_size``, ``students[2].method``), what the key
accepts, and the value that was given.

What a key accepts is read from the model: its type, its bounds (``Field(ge=...)``), the
values of a :class:`Choices` annotation, or the field's ``description`` when one is set.
Rules that span several keys are model validators; they raise ``ValueError`` with the whole
message, or :class:`SettingError` when the table's place in the file is known only to the
caller (an entry of an array of tables).

Examples
--------
>>> from typing import Annotated
>>> from pydantic import BaseModel, ConfigDict, Field, ValidationError
>>> class Table(BaseModel):
...     model_config = ConfigDict(extra="forbid")
...     mode: Annotated[str, Choices(("fast", "exact"))] = "exact"
...     steps: int = Field(default=10, ge=1)
>>> try:
...     Table.model_validate({"mode": "quick"})
... except ValidationError as exc:
...     print(validation_message(exc, Table, prefix="run"))
run.mode must be one of 'fast', 'exact'; got 'quick'
>>> try:
...     Table.model_validate({"step": 3})
... except ValidationError as exc:
...     print(validation_message(exc, Table, prefix="run"))
unknown key 'run.step'; accepted keys in [run]: mode, steps
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, GetCoreSchemaHandler, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

# Error types that mean "this key is not one of the table's keys".
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
# pydantic's location part for the key (not the value) of a table of values.
_KEY_PART = "[key]"


class SettingError(ValueError):
    """A broken rule, worded for a key relative to the table that a validator checks.

    ``key`` is the key inside the table (``""`` for the value being validated itself);
    :func:`validation_message` puts the table's place in the file in front of it, so an
    entry of an array of tables is named ``students[2].study_seed`` without the validator
    knowing its position.
    """

    def __init__(self, problem: str, *, key: str = "") -> None:
        super().__init__(f"{key} {problem}".strip())
        self.key = key
        self.problem = problem


class Choices:
    """Annotation for a string that must be one of ``values``, a tuple defined elsewhere.

    ``Annotated[str, Choices(METHODS)]`` validates like ``Literal["mt", "cf", "mt+cf"]``
    while the accepted values stay named once, in the module that owns them.
    """

    def __init__(self, values: Iterable[str]) -> None:
        self.values = tuple(values)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.literal_schema(list(self.values))

    def __repr__(self) -> str:
        return f"Choices({self.values!r})"


def validation_message(exc: ValidationError, root: type, *, prefix: str = "") -> str:
    """The first problem of a validation error as one line: the key, what it accepts, the value.

    Parameters
    ----------
    exc : ValidationError
        The error that validating ``root`` raised.
    root : type
        The model (``BaseModel``, pydantic dataclass or dataclass) the error's locations
        start from.
    prefix : str
        The table that ``root`` is, when it is not the whole document (``"teacher"``).

    Returns
    -------
    str
        One line; when there is more than one problem it ends with how many more there are.
    """
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    kind = first["type"]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if kind in _UNKNOWN_KEY or (loc and loc[-1] == _KEY_PART):
        return _unknown_key(root, loc, prefix) + more
    error = first.get("ctx", {}).get("error") if kind == "value_error" else None
    if isinstance(error, SettingError):
        return f"{_key_name((*loc, error.key) if error.key else loc, prefix)} {error.problem}{more}"
    if kind == "value_error":
        return str(first["msg"]).removeprefix("Value error, ") + more
    loc = _list_items_dropped(loc)
    key = _key_name(loc, prefix)
    accepted = _accepted(root, loc)
    if kind == "missing":
        return f"{key} is required: {accepted}{more}"
    return f"{key} must be {accepted}; got {_show(first.get('input'))}{more}"


def _unknown_key(root: type, loc: tuple[Any, ...], prefix: str) -> str:
    if loc and loc[-1] == _KEY_PART:
        # A table of values whose keys are restricted: the keys are the accepted values.
        loc = loc[:-1]
        keys_type, metadata = _unwrap(_key_type(_field_at(root, loc[:-1]).annotation))
        accepted = ", ".join(_choices(keys_type, metadata) or ())
    else:
        accepted = ", ".join(_table_fields(_unwrap(_field_at(root, loc[:-1]).annotation)[0]))
    parent = _key_name(loc[:-1], prefix)
    where = f" in [{parent}]" if parent else ""
    return f"unknown key {_key_name(loc, prefix)!r}; accepted keys{where}: {accepted}"


def _key_name(loc: tuple[Any, ...], prefix: str) -> str:
    """``('students', 1, 'seeds')`` as ``students[2].seeds``: entries of arrays count from 1."""
    name = prefix
    for part in loc:
        if isinstance(part, int):
            name += f"[{part + 1}]"
        elif part != _KEY_PART:
            name = f"{name}.{part}" if name else str(part)
    return name


def _list_items_dropped(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A wrong item of a list of values is reported on the list's key."""
    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    return loc


# -- the type at a location ---------------------------------------------------------------------
class _Field(typing.NamedTuple):
    annotation: Any
    metadata: list[Any]
    description: str | None


def _field_at(root: type, loc: tuple[Any, ...]) -> _Field:
    """The annotation found by following ``loc`` from ``root`` through tables and lists."""
    current = _Field(root, [], None)
    for part in loc:
        annotation, _ = _unwrap(current.annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            if typing.get_origin(annotation) is tuple and args:
                current = _Field(args[0], [], None)
            continue
        if part == _KEY_PART:
            continue
        if typing.get_origin(annotation) in (dict, Mapping):
            current = _Field(typing.get_args(annotation)[1], [], None)
            continue
        fields = _table_fields(annotation)
        if part not in fields:
            return _Field(None, [], None)
        current = fields[part]
    return current


def _table_fields(table: Any) -> dict[str, _Field]:
    if isinstance(table, type) and issubclass(table, BaseModel):
        return {
            name: _Field(info.annotation, list(info.metadata), info.description)
            for name, info in table.model_fields.items()
        }
    pydantic_fields = getattr(table, "__pydantic_fields__", None)
    if pydantic_fields is not None:
        return {
            name: _Field(info.annotation, list(info.metadata), info.description)
            for name, info in pydantic_fields.items()
        }
    if isinstance(table, type) and dataclasses.is_dataclass(table):
        hints = typing.get_type_hints(table, include_extras=True)
        return {item.name: _Field(hints[item.name], [], None) for item in dataclasses.fields(table)}
    return {}


def _key_type(annotation: Any) -> Any:
    annotation, _ = _unwrap(annotation)
    args = typing.get_args(annotation)
    return args[0] if args else str


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The annotation without ``Annotated`` and ``None`` alternatives, and its metadata."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                # Field(...) inside Annotated carries its constraints as metadata of its own.
                metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        elif origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation, metadata


# -- what a key accepts -------------------------------------------------------------------------
def _accepted(root: type, loc: tuple[Any, ...]) -> str:
    if not loc:
        return "a TOML document of tables"
    field = _field_at(root, loc)
    if field.annotation is None:
        return "a known key"
    if field.description:
        return field.description
    return _describe(field.annotation, field.metadata)


def _describe(annotation: Any, metadata: list[Any]) -> str:
    annotation, inner = _unwrap(annotation)
    metadata = [*inner, *metadata]
    choices = _choices(annotation, metadata)
    if choices is not None:
        return "one of " + ", ".join(repr(c) for c in choices)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is tuple:
        item, item_metadata = _unwrap(args[0]) if args else (str, [])
        item_choices = _choices(item, item_metadata)
        if item_choices is not None:
            return "a list of any of " + ", ".join(repr(c) for c in item_choices)
        size = "a non-empty list" if _min_length(metadata) else "a list"
        return f"{size} of {_plural(item, item_metadata)}"
    if origin in (dict, Mapping):
        value, value_metadata = _unwrap(args[1]) if args else (str, [])
        return f"a table of {_plural(value, value_metadata)}"
    if isinstance(annotation, type) and (
        issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)
    ):
        return "a table"
    bounds = _bounds(metadata)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return f"a whole number{bounds}"
    if annotation is float:
        return f"a number{bounds}"
    if annotation is str:
        return "a non-empty string" if _min_length(metadata) else "a string"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "a path"
    return str(annotation)


def _plural(annotation: Any, metadata: list[Any]) -> str:
    bounds = _bounds(metadata)
    if annotation is int:
        return f"whole numbers{bounds}"
    if annotation is float:
        return f"numbers{bounds}"
    if annotation is str:
        return "non-empty strings" if _min_length(metadata) else "strings"
    return _describe(annotation, metadata)


def _choices(annotation: Any, metadata: list[Any]) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    for item in metadata:
        if isinstance(item, Choices):
            return item.values
    return None


def _min_length(metadata: list[Any]) -> bool:
    return any((getattr(item, "min_length", None) or 0) >= 1 for item in metadata)


def _bounds(metadata: list[Any]) -> str:
    limits = []
    for item in metadata:
        for attribute, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            limit = getattr(item, attribute, None)
            if isinstance(limit, int | float) and not isinstance(limit, bool):
                limits.append(f"{symbol} {limit:g}")
    return " " + " and ".join(limits) if limits else ""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)
