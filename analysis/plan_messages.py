"""One-line messages for plan settings that fail validation, naming the key and its accepted values."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ValidationError


def validation_message(exc: ValidationError, root: type[BaseModel], *, prefix: str = "") -> str:
    """The first problem of a validation error as one line: the key, what it accepts, the value.

    ``root`` is the model the error's locations start from; ``prefix`` names the table that
    model is, when it is not the whole document.
    """
    errors = exc.errors()
    first = errors[0]
    loc = [str(part) for part in first["loc"] if not isinstance(part, int)]
    if prefix:
        loc = [prefix, *loc]
    key = ".".join(loc)
    kind = first["type"]
    given = first.get("input")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if kind == "extra_forbidden":
        parent = loc[:-1]
        keys = ", ".join(_model_at(root, parent[1:] if prefix else parent).model_fields)
        where = f" in [{'.'.join(parent)}]" if parent else ""
        return f"unknown key {key!r}; accepted keys{where}: {keys}{more}"
    if kind == "value_error":
        return str(first["msg"]).removeprefix("Value error, ") + more
    accepted = _accepted(root, loc[1:] if prefix else loc)
    got = _show(given)
    return f"{key} must be {accepted}; got {got}{more}"


def _model_at(root: type[BaseModel], path: list[str]) -> type[BaseModel]:
    model = root
    for part in path:
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


def _accepted(root: type[BaseModel], loc: list[str]) -> str:
    if not loc:
        return "a TOML document of tables"
    model = _model_at(root, loc[:-1])
    field = model.model_fields.get(loc[-1])
    if field is None:
        return "a known key"
    return _describe(field.annotation, field.metadata)


def _describe(annotation: Any, metadata: list[Any]) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _describe(next(a for a in args if a is not type(None)), metadata)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        inner = args[0]
        if typing.get_origin(inner) is Literal:
            return "a list of any of " + ", ".join(repr(a) for a in typing.get_args(inner))
        return "a list of strings"
    if origin is dict:
        return "a table of strings"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a table"
    limits = [limit for limit in map(_bound, metadata) if limit]
    bounds = " " + " and ".join(limits) if limits else ""
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return f"a whole number{bounds}"
    if annotation is float:
        return f"a number{bounds}"
    if annotation is str:
        return "a non-empty string"
    return str(annotation)


def _bound(constraint: Any) -> str:
    for kind, attribute, symbol in (
        (annotated_types.Ge, "ge", "≥"),
        (annotated_types.Gt, "gt", ">"),
        (annotated_types.Le, "le", "≤"),
        (annotated_types.Lt, "lt", "<"),
    ):
        if isinstance(constraint, kind):
            return f"{symbol} {getattr(constraint, attribute):g}"
    return ""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)
