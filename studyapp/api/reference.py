"""The API reference page: the OpenAPI schema drf-spectacular generates, rendered as HTML.

The page is built on the server from the same schema that ``/api/schema/`` serves, so the two
never disagree. It needs no script of its own, so it works with JavaScript off and under the
site's Content-Security-Policy, and its markup is plain headings, lists and tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import AUTHENTICATION_CLASSES
from rest_framework.renderers import TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# The order methods are listed in under one path, as the HTTP specification lists them.
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
UNTAGGED = "other"
INLINE_CODE = re.compile(r"``(.+?)``|`([^`]+)`")
LIST_ITEM = re.compile(r"\A[*-] ")
ANCHOR_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
API_KEY_PLACES = {"header": "header", "cookie": "cookie", "query": "query parameter"}


@dataclass(frozen=True)
class Span:
    """A run of text: plain, code, or a link (``href``) to a schema on the page."""

    text: str
    code: bool = False
    href: str = ""


Spans = tuple[Span, ...]


@dataclass(frozen=True)
class TextBlock:
    """A paragraph (one entry in ``items``) or a bulleted list (one entry per item)."""

    kind: Literal["paragraph", "list"]
    items: tuple[Spans, ...]


@dataclass(frozen=True)
class Field:
    """A property of an object schema, or a parameter (``location`` says where it goes)."""

    name: str
    type: Spans
    required: bool
    notes: tuple[Spans, ...]
    description: tuple[TextBlock, ...]
    location: str = ""


@dataclass(frozen=True)
class Content:
    """One media type of a request or response body, and the schema of that body."""

    media_type: str
    type: Spans


@dataclass(frozen=True)
class ResponseDoc:
    status: str
    description: tuple[TextBlock, ...]
    contents: tuple[Content, ...]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    anchor: str
    summary: str
    description: tuple[TextBlock, ...]
    parameters: tuple[Field, ...]
    body: tuple[Content, ...]
    body_required: bool
    responses: tuple[ResponseDoc, ...]
    security: Spans
    deprecated: bool


@dataclass(frozen=True)
class TagGroup:
    name: str
    anchor: str
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class SchemaDoc:
    """A component schema: its type line, notes (values, limits) and fields."""

    name: str
    anchor: str
    type: Spans
    notes: tuple[Spans, ...]
    description: tuple[TextBlock, ...]
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class SecurityDoc:
    name: str
    anchor: str
    summary: Spans
    description: tuple[TextBlock, ...]


@dataclass(frozen=True)
class ApiReference:
    title: str
    version: str
    description: tuple[TextBlock, ...]
    security: tuple[SecurityDoc, ...]
    groups: tuple[TagGroup, ...]
    schemas: tuple[SchemaDoc, ...]


def anchor_make(prefix: str, name: str) -> str:
    """An HTML id from a name, safe in a URL fragment.

    Examples
    --------
    >>> anchor_make("op", "studies_ratings.csv_retrieve")
    'op-studies_ratings-csv_retrieve'
    """
    return f"{prefix}-{ANCHOR_UNSAFE.sub('-', name).strip('-')}"


def inline_spans(text: str) -> Spans:
    """Text with its ``code`` and `code` runs marked.

    Examples
    --------
    >>> [(s.text, s.code) for s in inline_spans("set ``status`` to `live`")]
    [('set ', False), ('status', True), (' to ', False), ('live', True)]
    """
    spans: list[Span] = []
    position = 0
    for match in INLINE_CODE.finditer(text):
        if match.start() > position:
            spans.append(Span(text[position : match.start()]))
        spans.append(Span(match.group(1) or match.group(2), code=True))
        position = match.end()
    if position < len(text):
        spans.append(Span(text[position:]))
    return tuple(spans)


def text_blocks(text: str | None) -> tuple[TextBlock, ...]:
    """A description as paragraphs and bulleted lists (blank lines separate blocks).

    Examples
    --------
    >>> [b.kind for b in text_blocks("Pick one.\\n\\n* `a` - A\\n* `b` - B")]
    ['paragraph', 'list']
    """
    blocks: list[TextBlock] = []
    for chunk in re.split(r"\n\s*\n", (text or "").strip()):
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if not lines:
            continue
        if all(LIST_ITEM.match(line) for line in lines):
            items = tuple(inline_spans(line[2:].strip()) for line in lines)
            blocks.append(TextBlock("list", items))
        else:
            blocks.append(TextBlock("paragraph", (inline_spans(" ".join(lines)),)))
    return tuple(blocks)


def ref_name(ref: str) -> str:
    """The component name a ``$ref`` points to (``#/components/schemas/Study``: ``Study``)."""
    return ref.rsplit("/", 1)[-1]


def type_spans(schema: Mapping[str, Any]) -> Spans:
    """A schema's type in words, with links to the component schemas it refers to.

    Examples
    --------
    >>> "".join(s.text for s in type_spans({"type": "array", "items": {"type": "integer"}}))
    'array of integer'
    >>> "".join(s.text for s in type_spans({"type": "string", "format": "date-time",
    ...                                     "nullable": True}))
    'string (date-time) or null'
    """
    spans: list[Span] = []
    if "$ref" in schema:
        name = ref_name(str(schema["$ref"]))
        spans.append(Span(name, code=True, href=f"#{anchor_make('schema', name)}"))
    elif any(key in schema for key in ("allOf", "oneOf", "anyOf")):
        key, joiner = next(
            (k, j)
            for k, j in (("allOf", " and "), ("oneOf", " or "), ("anyOf", " or "))
            if k in schema
        )
        for index, part in enumerate(schema[key]):
            if index:
                spans.append(Span(joiner))
            spans.extend(type_spans(part))
    elif schema.get("type") == "array":
        spans.append(Span("array of "))
        spans.extend(type_spans(schema.get("items") or {}))
    elif schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), dict):
        spans.append(Span("object of names to "))
        spans.extend(type_spans(schema["additionalProperties"]))
    elif "type" in schema:
        text = str(schema["type"])
        if "format" in schema:
            text += f" ({schema['format']})"
        spans.append(Span(text))
    else:
        spans.append(Span("any value"))
    if schema.get("nullable"):
        spans.append(Span(" or null"))
    return tuple(spans)


def _values(label: str, values: Iterable[Any]) -> Spans:
    spans: list[Span] = [Span(label)]
    for index, value in enumerate(values):
        if index:
            spans.append(Span(", "))
        spans.append(Span(_literal(value), code=True))
    return tuple(spans)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def schema_notes(schema: Mapping[str, Any]) -> tuple[Spans, ...]:
    """What a schema allows beyond its type: access, values, limits, pattern and default.

    Examples
    --------
    >>> notes = schema_notes({"type": "integer", "minimum": 1, "maximum": 5, "readOnly": True})
    >>> ["".join(s.text for s in note) for note in notes]
    ['read-only', 'from 1 to 5']
    """
    notes: list[Spans] = []
    if schema.get("readOnly"):
        notes.append((Span("read-only"),))
    if schema.get("writeOnly"):
        notes.append((Span("write-only"),))
    if "enum" in schema:
        notes.append(_values("one of ", schema["enum"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        notes.append((Span(f"from {low} to {high}"),))
    elif low is not None:
        notes.append((Span(f"at least {low}"),))
    elif high is not None:
        notes.append((Span(f"at most {high}"),))
    if "minLength" in schema:
        notes.append((Span(f"at least {schema['minLength']} characters"),))
    if "maxLength" in schema:
        notes.append((Span(f"at most {schema['maxLength']} characters"),))
    if "pattern" in schema:
        notes.append((Span("matches "), Span(str(schema["pattern"]), code=True)))
    if "default" in schema:
        notes.append((Span("default "), Span(_literal(schema["default"]), code=True)))
    return tuple(notes)


def fields_build(schema: Mapping[str, Any]) -> tuple[Field, ...]:
    """The properties of an object schema, in the schema's order."""
    required = set(schema.get("required", ()))
    return tuple(
        Field(
            name=name,
            type=type_spans(prop),
            required=name in required,
            notes=schema_notes(prop),
            description=text_blocks(prop.get("description")),
        )
        for name, prop in schema.get("properties", {}).items()
    )


def parameter_build(parameter: Mapping[str, Any]) -> Field:
    schema = parameter.get("schema") or {}
    return Field(
        name=str(parameter["name"]),
        type=type_spans(schema),
        required=bool(parameter.get("required")),
        notes=schema_notes(schema),
        description=text_blocks(parameter.get("description")),
        location=str(parameter.get("in", "")),
    )


def contents_build(content: Mapping[str, Any]) -> tuple[Content, ...]:
    return tuple(
        Content(media_type=media_type, type=type_spans(entry.get("schema") or {}))
        for media_type, entry in content.items()
    )


def response_build(status: str, response: Mapping[str, Any]) -> ResponseDoc:
    """A response; one the schema leaves undescribed gets its HTTP reason phrase."""
    description = str(response.get("description") or "")
    if not description and status.isdigit():
        try:
            description = HTTPStatus(int(status)).phrase
        except ValueError:
            description = ""
    return ResponseDoc(
        status=status,
        description=text_blocks(description),
        contents=contents_build(response.get("content") or {}),
    )


def security_spans(requirements: Iterable[Mapping[str, Any]]) -> Spans:
    """The schemes an operation accepts, any one of which will do, linked to their notes.

    An empty requirement means the operation may be called without authentication.

    Examples
    --------
    >>> "".join(s.text for s in security_spans([{"tokenAuth": []}, {"cookieAuth": []}]))
    'tokenAuth or cookieAuth'
    """
    spans: list[Span] = []
    for requirement in requirements:
        if spans:
            spans.append(Span(" or "))
        if not requirement:
            spans.append(Span("none"))
        for index, name in enumerate(requirement):
            if index:
                spans.append(Span(" and "))
            spans.append(Span(name, code=True, href=f"#{anchor_make('security', name)}"))
    return tuple(spans)


def operation_build(path: str, method: str, operation: Mapping[str, Any]) -> Operation:
    body = operation.get("requestBody") or {}
    return Operation(
        method=method,
        path=path,
        anchor=anchor_make("op", str(operation.get("operationId") or f"{method}-{path}")),
        summary=str(operation.get("summary") or ""),
        description=text_blocks(operation.get("description")),
        parameters=tuple(parameter_build(p) for p in operation.get("parameters", ())),
        body=contents_build(body.get("content") or {}),
        body_required=bool(body.get("required")),
        responses=tuple(
            response_build(str(status), response)
            for status, response in operation.get("responses", {}).items()
        ),
        security=security_spans(operation.get("security", ())),
        deprecated=bool(operation.get("deprecated")),
    )


def groups_build(schema: Mapping[str, Any]) -> tuple[TagGroup, ...]:
    """Operations grouped under their first tag, in the schema's order of tags and paths."""
    by_tag: dict[str, list[Operation]] = {
        str(tag["name"]): [] for tag in schema.get("tags", ()) if "name" in tag
    }
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            tag = str(next(iter(operation.get("tags") or ()), UNTAGGED))
            by_tag.setdefault(tag, []).append(operation_build(path, method, operation))
    return tuple(
        TagGroup(name=tag, anchor=anchor_make("tag", tag), operations=tuple(operations))
        for tag, operations in by_tag.items()
        if operations
    )


def security_build(scheme_name: str, scheme: Mapping[str, Any]) -> SecurityDoc:
    """How a security scheme is sent, in words (the ``Authorization`` header, a cookie...).

    Examples
    --------
    >>> doc = security_build("cookieAuth", {"type": "apiKey", "in": "cookie", "name": "sessionid"})
    >>> "".join(s.text for s in doc.summary)
    'the sessionid cookie'
    """
    kind = scheme.get("type")
    summary: Spans
    if kind == "apiKey":
        place = API_KEY_PLACES.get(str(scheme.get("in")), str(scheme.get("in", "")))
        summary = (Span("the "), Span(str(scheme.get("name", "")), code=True), Span(f" {place}"))
    elif kind == "http":
        summary = (Span(f"HTTP {scheme.get('scheme', '')} authentication"),)
    else:
        summary = (Span(str(kind or "")),)
    return SecurityDoc(
        name=scheme_name,
        anchor=anchor_make("security", scheme_name),
        summary=summary,
        description=text_blocks(scheme.get("description")),
    )


def reference_build(schema: Mapping[str, Any]) -> ApiReference:
    """The page's content from an OpenAPI 3 schema (as ``SchemaGenerator.get_schema`` returns).

    Examples
    --------
    >>> reference = reference_build({
    ...     "info": {"title": "Demo", "version": "1"},
    ...     "paths": {"/items/": {"get": {"operationId": "items_list", "tags": ["items"],
    ...                                   "responses": {"200": {"description": ""}}}}},
    ... })
    >>> [(op.method, op.path) for group in reference.groups for op in group.operations]
    [('get', '/items/')]
    >>> reference.groups[0].operations[0].responses[0].description[0].items[0][0].text
    'OK'
    """
    info = schema.get("info", {})
    components = schema.get("components", {})
    return ApiReference(
        title=str(info.get("title", "API")),
        version=str(info.get("version", "")),
        description=text_blocks(info.get("description")),
        security=tuple(
            security_build(name, scheme)
            for name, scheme in components.get("securitySchemes", {}).items()
        ),
        groups=groups_build(schema),
        schemas=tuple(
            SchemaDoc(
                name=name,
                anchor=anchor_make("schema", name),
                type=type_spans(component),
                notes=schema_notes(component),
                description=text_blocks(component.get("description")),
                fields=fields_build(component),
            )
            for name, component in components.get("schemas", {}).items()
        ),
    )


class ApiReferenceView(APIView):
    """The API reference page, for the same accounts that may read the schema."""

    renderer_classes = [TemplateHTMLRenderer]
    permission_classes = spectacular_settings.SERVE_PERMISSIONS
    authentication_classes = AUTHENTICATION_CLASSES
    template_name = "api/reference.html"

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        generator = spectacular_settings.DEFAULT_GENERATOR_CLASS(
            urlconf=spectacular_settings.SERVE_URLCONF
        )
        schema = generator.get_schema(request=request, public=spectacular_settings.SERVE_PUBLIC)
        return Response({"reference": reference_build(schema)})
