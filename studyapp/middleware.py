"""Limits on what a participant page accepts, applied before anything reads the body.

Participant pages take small forms (a consent choice, five ratings and a step token: a
few hundred bytes). The CSRF check parses the body of every POST before the view runs,
so the limits live in a middleware placed before it: an oversized body is refused from
its headers alone, without reading a byte, and a small multipart body is parsed here,
in memory, with a handler that refuses any file in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse

# Far above a real form (about 300 bytes with the CSRF token), far below anything harmful.
PARTICIPANT_BODY_MAX_BYTES = 8 * 1024
_MARK = "participant_body_max_bytes"

V = TypeVar("V", bound=Callable[..., Any])


def participant_body_limited(view: V) -> V:
    """Mark ``view`` as a participant page: no file uploads, small bodies only.

    The mark is an attribute, so it survives decorators that copy the function's
    ``__dict__`` (``functools.wraps``, as Django's own decorators do).
    """
    setattr(view, _MARK, PARTICIPANT_BODY_MAX_BYTES)
    return view


class FileUploadRefused(Exception):
    """A participant page was sent a file."""


class FileRefusingUploadHandler(FileUploadHandler):
    """An upload handler that stores nothing: the first file part stops the parse."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        raise FileUploadRefused(kwargs.get("field_name") or (args[0] if args else ""))

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        raise FileUploadRefused("")  # never reached: new_file refuses first

    def file_complete(self, file_size: int) -> None:
        return None


def _refusal(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class ParticipantBodyLimitMiddleware:
    """Refuse bodies over the limit (413) and file uploads (415) on marked views."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        limit = getattr(view_func, _MARK, None)
        if limit is None:
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads no body without a valid length either
        if length > limit:
            return _refusal(
                f"The request body is {length} bytes; this page accepts at most {limit}.", 413
            )
        content_type = request.META.get("CONTENT_TYPE", "").strip().lower()
        if content_type.startswith("multipart/"):
            request.upload_handlers = [FileRefusingUploadHandler(request)]
            try:
                request.POST  # noqa: B018 - parsed now (it is small), with the refusing handler
            except FileUploadRefused:
                return _refusal("This page takes no file uploads.", 415)
        return None
