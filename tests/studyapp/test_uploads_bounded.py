"""Uploads are streamed and their problem lists capped, so no upload can fill memory.

A file of invalid lines used to become one message per line (millions of them, in a
response of hundreds of megabytes). Now the first fifty problems are listed, the rest of
the file is only counted, and the file is read a chunk at a time.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from studyapp import importing
from studyapp.demographics import DemographicsFileError, demographics_read
from studyapp.importing import ExplanationsFileError, explanations_read
from studyapp.problems import PROBLEMS_SHOWN
from studyapp.uploads import LINE_MAX_BYTES, UploadError, lines_decoded, upload_lines
from tests.conftest import ROOT
from tests.studyapp.participant_pool import explanation_lines, explanation_record
from tests.studyapp.researcher_data import client_for, token_client_for

BAD = "this is not JSON"


def _chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@given(
    lines=st.lists(
        st.tuples(
            st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"])),
            st.sampled_from(["\n", "\r\n", "\r", ""]),
        ),
        max_size=8,
    ),
    bom=st.booleans(),
    chunk=st.integers(1, 7),
)
def test_lines_are_split_as_before_whatever_the_chunks(
    lines: list[tuple[str, str]], bom: bool, chunk: int
) -> None:
    text = "".join(body + end for body, end in lines)
    data = ("\ufeff" if bom else "").encode() + text.encode()

    streamed = list(lines_decoded(_chunked(data, chunk)))

    assert streamed == list(io.StringIO(text, newline=""))


def test_the_file_is_read_a_chunk_at_a_time() -> None:
    read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(1000):
            read.append(n)
            yield b"line\n" * 100

    lines = lines_decoded(chunks())
    first = [next(lines) for _ in range(150)]

    assert first[0] == "line\n"
    assert len(read) == 2  # two chunks of the thousand


def test_a_line_that_is_not_utf8_is_named() -> None:
    data = b"one\ntwo\nth\xffree\n"

    with pytest.raises(UploadError, match=r"^line 3: the file is not UTF-8 text$"):
        list(lines_decoded(_chunked(data, 4)))


def test_a_line_longer_than_the_limit_is_refused_without_holding_it() -> None:
    def endless() -> Iterator[bytes]:
        yield b"ok\n"
        while True:
            yield b"x" * 65536

    with pytest.raises(UploadError, match=r"^line 2 is longer than 1 MB"):
        list(lines_decoded(endless()))
    assert LINE_MAX_BYTES == 1024 * 1024


def test_an_upload_over_the_size_limit_is_refused_before_reading() -> None:
    upload = SimpleUploadedFile("e.jsonl", b"x")
    upload.size = 51 * 1024 * 1024

    with pytest.raises(UploadError, match="the limit is 50 MB"):
        upload_lines(upload)


def test_checking_stops_after_the_cap_and_counts_the_rest() -> None:
    lines = [BAD] * 10_000
    with (
        mock.patch.object(importing, "_record_parse", wraps=importing._record_parse) as parse,
        pytest.raises(ExplanationsFileError) as raised,
    ):
        explanations_read(iter(lines))

    errors = raised.value.errors
    assert parse.call_count == PROBLEMS_SHOWN
    assert len(errors) == PROBLEMS_SHOWN + 1
    assert errors[0].startswith("line 1: not valid JSON")
    assert errors[PROBLEMS_SHOWN - 1].startswith(f"line {PROBLEMS_SHOWN}: ")
    assert errors[-1].startswith(f"… and {10_000 - PROBLEMS_SHOWN} more lines not checked")
    assert raised.value.summary == f"at least {PROBLEMS_SHOWN} problems in the explanations file"


def test_a_short_list_of_problems_is_complete() -> None:
    lines = explanation_lines(questions=12)
    lines[3] = BAD
    lines[7] = BAD

    with pytest.raises(ExplanationsFileError) as raised:
        explanations_read(lines)

    assert [e.split(":")[0] for e in raised.value.errors] == ["line 4", "line 8"]
    assert raised.value.summary == "2 problems in the explanations file"


def test_consistency_problems_are_capped_too() -> None:
    # Every question appears with another text than on its first line: one problem a line.
    first = [json.dumps(explanation_record("MT:original", q)) for q in range(100)]
    second = [
        json.dumps(explanation_record("CF:original", q, question=f"Changed {q}?"))
        for q in range(100)
    ]

    with pytest.raises(ExplanationsFileError) as raised:
        explanations_read(first + second)

    errors = raised.value.errors
    assert len(errors) == PROBLEMS_SHOWN + 1
    assert errors[-1] == f"… and {100 - PROBLEMS_SHOWN} more problems"


def _bad_file(megabytes: int) -> bytes:
    line = (BAD + "\n").encode()
    return line * (megabytes * 1024 * 1024 // len(line))


@pytest.mark.django_db
def test_the_api_answers_a_large_bad_file_with_a_small_response() -> None:
    upload = SimpleUploadedFile("e.jsonl", _bad_file(5))

    response = token_client_for("researcher").post(
        reverse("api:study-list"), {"slug": "big", "explanations": upload}
    )

    assert response.status_code == 400
    assert len(response.content) < 10_000
    assert len(response.json()["explanations"]) == PROBLEMS_SHOWN + 1


@pytest.mark.django_db
def test_the_admin_page_for_a_large_bad_file_stays_small() -> None:
    upload = SimpleUploadedFile("e.jsonl", _bad_file(1))

    response = client_for("researcher").post(
        reverse("admin:studyapp_study_upload"), {"slug": "big", "explanations": upload}
    )

    assert response.status_code == 200
    assert len(response.content) < 100_000
    assert b"at least 50 problems in the file; nothing was imported" in response.content


def test_the_demographics_problems_are_capped() -> None:
    lines = ["Participant id,Age\n"] + [f"p{n},old\n" for n in range(5000)]

    with pytest.raises(DemographicsFileError) as raised:
        demographics_read(lines)

    errors = raised.value.errors
    assert len(errors) == PROBLEMS_SHOWN + 1
    assert errors[-1].startswith(f"… and {5000 - PROBLEMS_SHOWN} more lines not checked")


PEAK_RSS_PROBE = """
import resource, sys
import django
django.setup()
from django.core.files.uploadedfile import TemporaryUploadedFile
from studyapp.importing import ExplanationsFileError
from studyapp.uploads import explanations_from_upload

line = b"this is not JSON\\n" * 4096
upload = TemporaryUploadedFile("e.jsonl", "application/jsonl", 0, "utf-8")
while upload.file.tell() + len(line) <= 49 * 1024 * 1024:
    upload.write(line)
upload.size = upload.file.tell()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    explanations_from_upload(upload)
except ExplanationsFileError as exc:
    errors = exc.errors
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(upload.size, len(errors), before, after)
"""


@pytest.mark.slow
def test_a_49_mb_invalid_file_is_checked_in_bounded_memory() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_PROBE],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "config.settings_test", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    size, errors, before, after = map(int, result.stdout.split())
    assert size > 48 * 1024 * 1024
    assert errors == PROBLEMS_SHOWN + 1
    # ru_maxrss is in kilobytes on Linux: the check itself adds less than 16 MB to the peak.
    assert after - before < 16 * 1024
