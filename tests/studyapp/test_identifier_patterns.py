"""Every identifier validated by a pattern is matched whole: no final newline slips through.

Python's ``$`` matches before a final newline, so a pattern ending in it accepts ``"abc\\n"``
as well as ``"abc"``. These tests send the newline to each validator a request reaches.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.validators import RegexValidator
from django.urls import reverse

from studyapp.admin.forms import StudyUploadForm
from studyapp.api.serializers import StudyCreateSerializer
from studyapp.forms import EntryForm, RatingForm
from studyapp.importing import ExplanationsFileError, explanations_read
from studyapp.models import Study
from studyformats.explanations import CONDITION_PATTERN
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import explanation_lines, explanation_record
from tests.studyapp.researcher_data import token_client_for

VALID_IDS = {"PROLIFIC_PID": "5f9a1c2b3d4e", "STUDY_ID": "study-1", "SESSION_ID": "s_1"}
RATING = dict.fromkeys(PLAIN_5.keys, "3")


def _regex_validators(field: Any) -> list[RegexValidator]:
    return [v for v in field.validators if isinstance(v, RegexValidator)]


@pytest.mark.parametrize("form_class", [EntryForm, RatingForm])
def test_every_pattern_of_the_participant_forms_refuses_a_final_newline(
    form_class: type[forms.Form],
) -> None:
    samples = {**VALID_IDS, "step": "item-1"}
    checked = 0
    for name, field in form_class().fields.items():
        for validator in _regex_validators(field):
            assert validator.regex.search(samples[name]), (name, "the sample should be valid")
            assert not validator.regex.search(samples[name] + "\n"), name
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", sorted(VALID_IDS))
def test_the_entry_form_refuses_an_id_ending_in_a_newline(name: str) -> None:
    assert EntryForm(VALID_IDS).is_valid()

    form = EntryForm({**VALID_IDS, name: VALID_IDS[name] + "\n"})

    assert not form.is_valid()
    assert form.problems() == [f"{name} must be 1–64 letters, digits, '-' or '_'"]


@pytest.mark.parametrize("token", ["item-1\n", "check-2\n", "item-1\r\n", "\nitem-1"])
def test_the_rating_form_refuses_a_step_token_with_a_newline(token: str) -> None:
    assert RatingForm({"step": token.strip(), **RATING}).is_valid()
    assert not RatingForm({"step": token, **RATING}).is_valid()


def test_a_condition_name_is_matched_whole() -> None:
    assert CONDITION_PATTERN.fullmatch("MT+CF:revised")
    assert CONDITION_PATTERN.fullmatch("MT+CF:revised\n") is None
    assert CONDITION_PATTERN.fullmatch("MT+CF:revised\nCF:x") is None


def test_an_explanations_file_with_a_multi_line_condition_is_refused() -> None:
    lines = explanation_lines(questions=4, conditions=("MT:original",))
    lines.append(json.dumps(explanation_record("MT:original\nCF:x", 9)))

    with pytest.raises(ExplanationsFileError) as raised:
        explanations_read(lines)

    assert raised.value.errors == [
        "line 5: condition 'MT:original\nCF:x' is not in the format METHOD:variant "
        "(for example 'MT+CF:revised')"
    ]


def _upload() -> SimpleUploadedFile:
    lines = explanation_lines(questions=16)
    return SimpleUploadedFile("e.jsonl", "\n".join(lines).encode())


def test_the_api_serializer_refuses_a_slug_ending_in_a_newline() -> None:
    serializer = StudyCreateSerializer(data={"slug": "pilot\n", "explanations": _upload()})

    assert not serializer.is_valid()
    assert list(serializer.errors) == ["slug"]


@pytest.mark.django_db
def test_the_api_creates_no_study_for_a_slug_ending_in_a_newline() -> None:
    api = token_client_for("researcher")

    response = api.post(
        reverse("api:study-list"),
        {"slug": "pilot\n", "explanations": _upload()},
        format="multipart",
    )

    assert response.status_code == 400
    assert "slug" in response.json()
    assert not Study.objects.exists()


@pytest.mark.django_db
def test_the_admin_upload_form_matches_the_slug_whole() -> None:
    field = StudyUploadForm().fields["slug"]
    # The admin form trims what a researcher typed; what remains is checked whole.
    assert field.clean(" pilot\n") == "pilot"
    with pytest.raises(forms.ValidationError):
        field.clean("pilot\nother")
