"""Lines that used to crash an import: deep nesting, a NUL, a lone surrogate.

Each reaches the importer three ways (the API, the admin upload and ``create_study``) and
must get the same line-numbered report as any other bad line, with nothing imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from studyapp.demographics import DemographicsFileError, demographics_read
from studyapp.importing import ExplanationsFileError, explanations_read
from studyapp.models import Condition, Explanation, Question, Study
from tests.studyapp.participant_pool import explanation_lines, study_make
from tests.studyapp.researcher_data import client_for, token_client_for

pytestmark = pytest.mark.django_db

BAD_LINE = 3  # the hostile line replaces the third line of a valid file


def _nested() -> str:
    return '{"condition": ' + "[" * 100_000 + "]" * 100_000 + "}"


def _with_field(field: str, value: object) -> str:
    record = json.loads(explanation_lines(questions=1)[0])
    record[field] = value
    record["question_id"] = "q-hostile"
    return json.dumps(record)  # ensure_ascii: NUL and surrogates are written as \u escapes


CASES = {
    "nested": (_nested, "line 3: not valid JSON for an explanation (nested too deeply)"),
    "nul-in-explanation": (
        lambda: _with_field("explanation", "fine\x00text"),
        "line 3: field 'explanation' contains a NUL character (\\u0000)",
    ),
    "nul-in-a-choice": (
        lambda: _with_field("choices", ["bank", "lib\x00rary"]),
        "line 3: field 'choices' contains a NUL character (\\u0000)",
    ),
    "surrogate-in-question": (
        lambda: _with_field("question", "Where\ud800?"),
        "line 3: field 'question' contains a lone surrogate (an unpaired \\ud800–\\udfff "
        "escape), which is not text",
    ),
    "surrogate-in-condition": (
        lambda: _with_field("condition", "MT:x\udfff"),
        "line 3: field 'condition' contains a lone surrogate (an unpaired \\ud800–\\udfff "
        "escape), which is not text",
    ),
}


def _lines(case: str) -> list[str]:
    lines = explanation_lines()
    lines[BAD_LINE - 1] = CASES[case][0]()
    return lines


def _nothing_imported() -> None:
    assert not Study.objects.exists()
    assert not Condition.objects.exists()
    assert not Question.objects.exists()
    assert not Explanation.objects.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_reader_reports_the_line(case: str) -> None:
    with pytest.raises(ExplanationsFileError) as raised:
        explanations_read(_lines(case))

    assert raised.value.errors == [CASES[case][1]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_api_answers_400_with_the_line(case: str) -> None:
    upload = SimpleUploadedFile("e.jsonl", "\n".join(_lines(case)).encode())

    response = token_client_for("researcher").post(
        reverse("api:study-list"), {"slug": "cqa", "explanations": upload}
    )

    assert response.status_code == 400
    assert response.json() == {"explanations": [CASES[case][1]]}
    _nothing_imported()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_admin_upload_lists_the_line(case: str) -> None:
    upload = SimpleUploadedFile("e.jsonl", "\n".join(_lines(case)).encode())

    response = client_for("researcher").post(
        reverse("admin:studyapp_study_upload"), {"slug": "cqa", "explanations": upload}
    )

    assert response.status_code == 200
    report = BeautifulSoup(response.content, "html.parser").find(id="file-errors")
    assert report is not None
    assert [li.get_text() for li in report.find_all("li")] == [CASES[case][1]]
    _nothing_imported()


@pytest.mark.parametrize("case", sorted(CASES))
def test_create_study_names_the_line(case: str, tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(_lines(case)), encoding="utf-8")

    with pytest.raises(CommandError) as raised:
        call_command("create_study", "cqa", "--explanations", str(path))

    assert CASES[case][1] in str(raised.value)
    _nothing_imported()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[" * 100_000, "application/json"),
        ('{"status": ' + "[" * 100_000 + "]" * 100_000 + "}", "application/json"),
    ],
    ids=["open", "closed"],
)
def test_a_deeply_nested_json_body_gets_a_400_from_the_api(body: str, content_type: str) -> None:
    study_make(slug="pilot", live=False)
    api = token_client_for("researcher")

    response = api.post(
        reverse("api:study-status", kwargs={"slug": "pilot"}), body, content_type=content_type
    )
    plan = api.put(
        reverse("api:study-plan", kwargs={"slug": "pilot"}), body, content_type=content_type
    )

    assert response.status_code == plan.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
    assert Study.objects.get().status == Study.Status.DRAFT


def test_a_demographics_row_with_a_nul_is_a_numbered_problem() -> None:
    lines = ["Participant id,Age,Sex\n", "p1,30,Female\n", "p2,4\x000,Male\n"]

    with pytest.raises(DemographicsFileError) as raised:
        demographics_read(lines)

    assert raised.value.errors == ["line 3: contains a NUL character"]
