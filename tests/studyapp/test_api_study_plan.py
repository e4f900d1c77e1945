"""The analysis plan through the API: registered on creation or later, frozen once live."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse

from analysis.plan import plan_load
from studyapp.models import Study
from tests.studyapp.participant_pool import explanation_lines, study_make
from tests.studyapp.researcher_data import token_client_for

pytestmark = pytest.mark.django_db

CUSTOM = 'name = "pilot-plan"\n\n[regression]\nse = "HC3"\n'


@pytest.fixture
def api():
    return token_client_for("researcher")


def create(api, **fields):
    content = "\n".join(explanation_lines()).encode()
    data = {"slug": "from-api", "explanations": SimpleUploadedFile("e.jsonl", content), **fields}
    return api.post(reverse("api:study-list"), data)


def plan_url(slug: str = "pilot") -> str:
    return reverse("api:study-plan", kwargs={"slug": slug})


def test_a_study_is_created_with_a_shipped_plan_shown_in_its_detail(api):
    response = create(api, plan="paper")

    assert response.status_code == 201, response.json()
    paper = plan_load("paper")
    body = response.json()
    assert (body["plan_name"], body["plan_sha256"], body["plan_frozen"]) == (
        "paper",
        paper.sha256,
        False,
    )
    detail = api.get(reverse("api:study-detail", kwargs={"slug": "from-api"})).json()
    assert (detail["plan_name"], detail["plan_frozen_at"]) == ("paper", None)
    plan = api.get(plan_url("from-api")).json()
    assert plan == {
        "name": "paper",
        "sha256": paper.sha256,
        "text": paper.text,
        "frozen": False,
        "frozen_at": None,
    }


def test_a_study_created_live_with_a_plan_file_has_it_frozen(api):
    upload = SimpleUploadedFile("pilot.toml", CUSTOM.encode())
    response = create(api, plan_file=upload, live="true")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["plan_name"], body["plan_frozen"]) == ("pilot-plan", True)
    assert body["plan_frozen_at"] is not None
    assert Study.objects.get(slug="from-api").plan_text == CUSTOM


@pytest.mark.parametrize(
    ("fields", "key", "message"),
    [
        ({"plan": "papers"}, "plan", "is not a valid choice"),
        (
            {"plan_file": SimpleUploadedFile("p.toml", b"[tests]\nalpha = 2\n")},
            "plan_file",
            "tests.alpha must be a number > 0 and < 1; got 2",
        ),
        (
            {"plan_file": SimpleUploadedFile("p.toml", b"\xff\xfe")},
            "plan_file",
            "line 1: the file is not UTF-8 text",
        ),
        (
            {"plan": "paper", "plan_file": SimpleUploadedFile("p.toml", CUSTOM.encode())},
            "plan",
            "one way only",
        ),
    ],
)
def test_a_bad_plan_on_creation_is_a_400_naming_it_and_nothing_is_imported(
    api, fields, key, message
):
    response = create(api, **fields)

    assert response.status_code == 400
    assert message in str(response.json()[key])
    assert not Study.objects.filter(slug="from-api").exists()


def test_a_draft_study_gets_a_plan_changes_it_and_removes_it(api):
    study_make(slug="pilot", live=False)

    shipped = api.put(plan_url(), {"plan": "standard"}, content_type="application/json")
    assert shipped.status_code == 200, shipped.json()
    assert shipped.json()["name"] == "standard"

    pasted = api.put(plan_url(), {"toml": CUSTOM}, content_type="application/json")
    assert pasted.status_code == 200, pasted.json()
    assert (pasted.json()["name"], pasted.json()["text"]) == ("pilot-plan", CUSTOM)

    upload = {"file": SimpleUploadedFile("mine.toml", b"[regression]\nse = 'classical'\n")}
    uploaded = api.put(
        plan_url(), encode_multipart(BOUNDARY, upload), content_type=MULTIPART_CONTENT
    )
    assert uploaded.status_code == 200, uploaded.json()
    assert uploaded.json()["name"] == "mine"
    assert Study.objects.get(slug="pilot").plan_text == "[regression]\nse = 'classical'\n"

    removed = api.delete(plan_url())
    assert removed.status_code == 200
    assert removed.json()["name"] == ""
    assert not Study.objects.get(slug="pilot").plan_registered


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "got none"),
        ({"plan": "paper", "toml": CUSTOM}, "got plan, toml"),
        ({"toml": "[regression\n"}, "is not valid TOML"),
        ({"toml": "[exclusions]\nwhatever = 1\n"}, "unknown key 'exclusions.whatever'"),
    ],
)
def test_a_bad_plan_change_is_a_400_with_the_reason(api, body, message):
    study_make(slug="pilot", live=False)

    response = api.put(plan_url(), body, content_type="application/json")

    assert response.status_code == 400
    assert message in str(response.json())
    assert not Study.objects.get(slug="pilot").plan_registered


def test_going_live_through_the_api_freezes_the_plan_and_a_change_is_a_409(api):
    study_make(slug="pilot", live=False)
    api.put(plan_url(), {"plan": "paper"}, content_type="application/json")

    opened = api.post(
        reverse("api:study-status", kwargs={"slug": "pilot"}),
        {"status": "live"},
        content_type="application/json",
    )
    assert opened.status_code == 200
    assert opened.json()["plan_frozen"] is True

    changed = api.put(plan_url(), {"plan": "standard"}, content_type="application/json")
    assert changed.status_code == 409
    assert "'paper'" in changed.json()["detail"]
    assert "is frozen" in changed.json()["detail"]
    assert api.delete(plan_url()).status_code == 409
    again = create(api, slug="pilot", plan="standard")
    assert again.status_code == 409
    assert again.json()["detail"].startswith("nothing was imported: study 'pilot' went live")
    assert Study.objects.get(slug="pilot").plan_name == "paper"
    # Registering the plan it already has is no change.
    same = api.put(plan_url(), {"plan": "paper"}, content_type="application/json")
    assert same.status_code == 200
