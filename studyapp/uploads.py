"""Reading uploaded files (admin forms and the API) into the text lines the importers take."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import UploadedFile

from studyapp.importing import ExplanationRecord, ExplanationsFileError, explanations_read

# Far above any real item pool (a few thousand lines); stops a wrong file from filling memory.
UPLOAD_MAX_BYTES = 50 * 1024 * 1024


class UploadError(Exception):
    """The upload is not a readable text file; the message says why."""


def upload_lines(upload: UploadedFile) -> list[str]:
    """The uploaded file as text lines (UTF-8, a leading byte-order mark dropped)."""
    if upload.size is not None and upload.size > UPLOAD_MAX_BYTES:
        raise UploadError(
            f"the file is {upload.size / 1024 / 1024:.0f} MB; the limit is "
            f"{UPLOAD_MAX_BYTES // 1024 // 1024} MB"
        )
    data = upload.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UploadError(f"line {line}: the file is not UTF-8 text") from None
    # Split on line ends only: str.splitlines would also split JSON strings holding U+2028.
    return list(io.StringIO(text, newline=""))


def explanations_from_upload(upload: UploadedFile) -> list[ExplanationRecord]:
    """Validate an uploaded explanations file; raise ``ExplanationsFileError`` listing every bad line."""
    try:
        lines = upload_lines(upload)
    except UploadError as exc:
        raise ExplanationsFileError([str(exc)]) from None
    return explanations_read(lines)
