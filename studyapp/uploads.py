"""Reading uploaded files (admin forms and the API) into the text lines the importers take.

A file is read as a stream of lines, a chunk at a time, never whole: memory stays bounded
by the longest line, whatever the file's size. Django keeps an upload above
``FILE_UPLOAD_MAX_MEMORY_SIZE`` in a temporary file, so a large upload is not held in
memory before it reaches here either.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from django.core.files.uploadedfile import UploadedFile

from studyapp.importing import ExplanationsFileError, explanations_read
from studyformats.explanations import ExplanationRecord

# Far above any real item pool (a few thousand lines); stops a wrong file from filling memory.
UPLOAD_MAX_BYTES = 50 * 1024 * 1024
# An explanation line is a few hundred bytes; one far longer is not an explanations file.
LINE_MAX_BYTES = 1024 * 1024


class UploadError(Exception):
    """The upload is not a readable text file; the message says why."""


def upload_lines(upload: UploadedFile) -> Iterator[str]:
    """The uploaded file as text lines (UTF-8, a leading byte-order mark dropped), streamed.

    Lines end at "\\n", "\\r\\n" or "\\r", as ``io.StringIO(text, newline="")`` splits them.
    The size is checked at once; a line that is not UTF-8 or longer than ``LINE_MAX_BYTES``
    raises ``UploadError`` (naming the line) when the reader reaches it.
    """
    if upload.size is not None and upload.size > UPLOAD_MAX_BYTES:
        raise UploadError(
            f"the file is {upload.size / 1024 / 1024:.0f} MB; the limit is "
            f"{UPLOAD_MAX_BYTES // 1024 // 1024} MB"
        )
    upload.seek(0)
    return lines_decoded(upload.chunks())


def lines_decoded(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from UTF-8 bytes arriving in ``chunks`` (see ``upload_lines``)."""
    number = 0
    for raw in _byte_lines(chunks):
        try:
            text = raw.decode("utf-8-sig" if number == 0 else "utf-8")
        except UnicodeDecodeError:
            raise UploadError(f"line {number + 1}: the file is not UTF-8 text") from None
        if not text:  # a file holding only a byte-order mark
            continue
        # Split only on line ends: str.splitlines would also split JSON strings holding U+2028.
        for line in io.StringIO(text, newline="") if "\r" in text else (text,):
            number += 1
            yield line


def _byte_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines ending in b"\\n" (kept), the last one possibly without. A "\\n" byte never
    occurs inside a multi-byte UTF-8 character, so splitting before decoding is safe."""
    pending = b""
    number = 1
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            yield pending[start : end + 1]
            number += 1
            start = end + 1
        pending = pending[start:]
        if len(pending) > LINE_MAX_BYTES:
            raise UploadError(
                f"line {number} is longer than {LINE_MAX_BYTES // 1024 // 1024} MB; "
                "is this the right file?"
            )
    if pending:
        yield pending


def explanations_from_upload(upload: UploadedFile) -> list[ExplanationRecord]:
    """Validate an uploaded explanations file; raise ``ExplanationsFileError`` listing its
    problems (the first fifty, then how many more)."""
    try:
        return explanations_read(upload_lines(upload))
    except UploadError as exc:
        raise ExplanationsFileError([str(exc)]) from None
