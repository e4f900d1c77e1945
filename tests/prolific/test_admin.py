"""The study's Prolific admin pages, the status buttons and API that follow on Prolific, and
the dashboard's Prolific panel, against the fake Prolific served on loopback."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import resolve, reverse

from studyapp.admin.forms import StudyChangeForm
from studyapp.models import (
    Participant,
    ParticipantDemographics,
    ProlificAction,
    ProlificBonusBatch,
    ProlificSubmission,
    Study,
)
from studyapp.prolific.client import ProlificClient
from studyapp.prolific.services import (
    StudyDraft,
    prolific_sync,
    study_create_on_prolific,
    study_publish,
)
from studyapp.studies.services import PROLIFIC_QUERY
from tests.prolific.fake import FakeProlific
from tests.studyapp.participant_pool import (
    page_instructed_value,
    page_step_token,
    rating_post,
    step_url,
    study_make,
)
from tests.studyapp.researcher_data import client_for, token_client_for, user_make

pytestmark = pytest.mark.django_db

SITE = "https://study.example.org"
REJECT_MESSAGE = (
    "You chose the answer the page asked you not to choose on two of the attention check "
    "pages, so we cannot use your ratings in this study."
)


# ---- helpers ----------------------------------------------------------------------------


def url(name: str, study: Study, *rest: object) -> str:
    return reverse(f"admin:studyapp_study_{name}", args=[study.pk, *rest])


def page_messages(response: Any) -> list[str]:
    page = BeautifulSoup(response.content, "html.parser")
    return [li.get_text(" ", strip=True) for li in page.select("ul.messagelist li")]


def one_message(response: Any) -> str:
    found = page_messages(response)
    assert len(found) == 1, found
    return found[0]


def element_text(response: Any, element_id: str) -> str:
    found = BeautifulSoup(response.content, "html.parser").find(id=element_id)
    assert found is not None, f"no #{element_id} on the page"
    return found.get_text(" ", strip=True)


def has_element(response: Any, element_id: str) -> bool:
    return BeautifulSoup(response.content, "html.parser").find(id=element_id) is not None


def requests_to(fake: FakeProlific, method: str, fragment: str) -> list[Any]:
    """The bodies of the requests the fake received whose path contains ``fragment``."""
    return [body for m, path, _, body in fake.requests if m == method and fragment in path]


def draft(**overrides: Any) -> StudyDraft:
    values: dict[str, Any] = {
        "name": "Rate explanations",
        "description": "Read answers and rate their explanations.",
        "reward": 225,
        "estimated_completion_time": 15,
        "total_available_places": 20,
        "site_url": SITE,
    }
    values.update(overrides)
    return StudyDraft(**values)


def on_prolific(study: Study, *, publish: bool = True, review: bool = True) -> Study:
    """Create ``study`` on the fake (completed submissions wait for review) and publish it."""
    with ProlificClient.from_settings() as client:
        study_create_on_prolific(
            study=study, draft=draft(review_completed=review), client=client, by=None
        )
        if publish:
            study_publish(study=study, client=client, by=None)
    study.refresh_from_db()
    return study


def sync(study: Study) -> None:
    with ProlificClient.from_settings() as client:
        prolific_sync(study=study, client=client)


class Arrival:
    """A participant who came from Prolific: their submission there and their browser here."""

    def __init__(self, fake: FakeProlific, study: Study, pid: str) -> None:
        self.fake = fake
        self.study = study
        self.pid = pid
        self.submission_id, link = fake.participant_arrive(study.prolific_study_id, pid)
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}" == SITE
        self.browser = Client()
        response = self.browser.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 302, response.status_code
        consent = reverse("studyapp:consent", kwargs={"slug": study.slug})
        if response["Location"] == consent:
            response = self.browser.post(consent, {"decision": "agree"})
            assert response.status_code == 302, response.status_code

    @property
    def participant(self) -> Participant:
        return Participant.objects.get(study=self.study, prolific_pid=self.pid)

    def finish_here(self, *, fail_checks: bool = False) -> str:
        """Answer every item here; the completion code the participant is shown."""
        for _ in range(100):
            page = self.browser.get(step_url(self.study))
            if page.status_code == 302:
                break
            token = page_step_token(page.content.decode())
            answer = 4
            if token.startswith("check-"):
                instructed = page_instructed_value(page.content.decode())
                answer = (instructed % 5) + 1 if fail_checks else instructed
            posted = self.browser.post(step_url(self.study), rating_post(token, answer))
            assert posted.status_code == 302, posted.status_code
        else:
            raise AssertionError("the participant never reached the end of the study")
        participant = self.participant
        assert participant.status == Participant.Status.COMPLETED
        self.study.refresh_from_db()
        return self.study.completion_code_for(participant)

    def finish(self, *, fail_checks: bool = False) -> str:
        """Finish here and enter the code on Prolific; Prolific's new status."""
        code = self.finish_here(fail_checks=fail_checks)
        return self.fake.participant_complete(self.submission_id, code)


@pytest.fixture
def researcher() -> Client:
    return client_for("researcher")


@pytest.fixture
def live(fake_prolific: FakeProlific) -> Study:
    """A study created here as a draft, then created and published on the fake."""
    return on_prolific(study_make(live=False))


# ---- 1. without a token ------------------------------------------------------------------


def test_without_a_token_the_page_says_how_and_no_action_does_anything(
    fake_prolific: FakeProlific, researcher: Client, settings: Any
) -> None:
    fresh = study_make(slug="fresh", live=False)
    known = study_make(slug="known", prolific_study_id="a" * 24, prolific_status="ACTIVE")
    submission = ProlificSubmission.objects.create(
        study=known, submission_id="b" * 24, participant_pid="P1", status="AWAITING REVIEW"
    )
    batch = ProlificBonusBatch.objects.create(
        study=known,
        bonus_id="c" * 24,
        csv_bonuses="P1,1.00\n",
        participants=1,
        amount=Decimal(100),
        total_amount=Decimal(140),
    )
    settings.PROLIFIC_API_TOKEN = ""

    for study in (fresh, known):
        page = researcher.get(url("prolific", study))
        assert page.status_code == 200
        assert "PROLIFIC_API_TOKEN" in element_text(page, "prolific-token-missing")
    create_page = researcher.get(url("prolific_create", fresh))
    assert "PROLIFIC_API_TOKEN" in element_text(create_page, "prolific-token-missing")

    form = {
        "name": "Rate explanations",
        "description": "Rate them.",
        "reward": "150",
        "estimated_completion_time": "10",
        "total_available_places": "5",
        "site_url": SITE,
        "completed_action": "approve",
        "devices": ["desktop"],
        "filter_set_id": "",
        "filters": "",
    }
    preview = researcher.post(url("prolific_create", fresh), form)
    assert preview.status_code == 200
    # Prolific's price cannot be asked without a token; the page says why.
    assert "PROLIFIC_API_TOKEN" in element_text(preview, "total-cost-missing")
    digest = BeautifulSoup(preview.content, "html.parser").find("input", {"name": "previewed"})
    assert digest is not None
    hidden = {
        str(field["name"]): str(field["value"])
        for field in BeautifulSoup(preview.content, "html.parser").select(
            "#prolific-create-preview input[type=hidden]"
        )
    }
    posts: list[tuple[str, dict[str, Any]]] = [
        (url("prolific_create", fresh), {**form, **hidden, "confirm": "yes"}),
        (url("prolific_publish", known), {"confirm": "yes"}),
        (url("prolific_sync", known), {}),
        (url("prolific_approve", known), {}),
        (
            url("prolific_reject", known),
            {
                "submission_id": submission.submission_id,
                "rejection_category": "FAILED_CHECK",
                "message": REJECT_MESSAGE,
            },
        ),
        (
            url("prolific_return", known),
            {"submission_id": submission.submission_id, "reasons": "No code"},
        ),
        (url("prolific_bonuses", known), {"rule_amount": "0.50"}),
        (url("prolific_bonus_pay", known, batch.pk), {"confirm": "yes"}),
        (url("prolific_demographics", known), {}),
    ]
    for target, data in posts:
        response = researcher.post(target, data, follow=True)
        assert response.status_code == 200, target
        message = one_message(response)
        assert message.startswith("Nothing was sent."), (target, message)
        assert "PROLIFIC_API_TOKEN" in message

    fresh.refresh_from_db()
    known.refresh_from_db()
    assert (fresh.prolific_study_id, fresh.failed_checks_code, fresh.status) == ("", "", "draft")
    assert (known.prolific_status, known.status) == ("ACTIVE", "live")
    assert not ProlificAction.objects.exists()
    batch.refresh_from_db()
    assert batch.paid_at is None
    submission.refresh_from_db()
    assert submission.status == "AWAITING REVIEW"
    assert fake_prolific.requests == []


# ---- 2. create ---------------------------------------------------------------------------

CREATE_FORM = {
    "name": "Rate explanations of answers",
    "description": "Read short answers and rate how well each is explained.",
    "reward": "225",
    "estimated_completion_time": "15",
    "total_available_places": "117",
    "site_url": SITE,
    "completed_action": "review",
    "devices": ["desktop", "tablet"],
    "filter_set_id": "",
    "filters": "",
}


def shown_body(response: Any) -> Any:
    """The JSON body the create preview shows under its request line."""
    shown = BeautifulSoup(response.content, "html.parser").find(id="create-request")
    assert shown is not None
    return json.loads(shown.get_text().partition("\n")[2])


def previewed_fields(response: Any) -> dict[str, str]:
    """The hidden fields of the preview that a confirmation posts back."""
    page = BeautifulSoup(response.content, "html.parser")
    fields = page.select("#prolific-create-preview input[type=hidden]")
    return {str(field["name"]): str(field["value"]) for field in fields}


def test_create_previews_the_rate_the_price_and_the_request_then_creates_the_draft(
    fake_prolific: FakeProlific, researcher: Client
) -> None:
    study = study_make(slug="cqa-2024", live=False)
    create = url("prolific_create", study)

    form_page = researcher.get(create)
    assert form_page.status_code == 200
    fields = BeautifulSoup(form_page.content, "html.parser")
    assert fields.find("input", {"name": "name"})["value"] == study.title  # type: ignore[index]
    assert fields.find("input", {"name": "site_url"})["value"] == "http://testserver"  # type: ignore[index]
    assert fields.find("input", {"name": "estimated_completion_time"})["value"] == "15"  # type: ignore[index]
    assert not has_element(form_page, "prolific-create-preview")

    preview = researcher.post(create, CREATE_FORM)
    assert preview.status_code == 200
    # 225 pence for 15 minutes is 9.00 an hour; the fake prices 117 places at 1.4 x reward.
    assert "9.00 an hour" in element_text(preview, "hourly-rate")
    assert "2.25 per participant" in element_text(preview, "hourly-rate")
    assert "368.55" in element_text(preview, "total-cost")
    assert requests_to(fake_prolific, "POST", "study-cost-calculator") == [
        {"reward": 225, "total_available_places": 117}
    ]
    shown = BeautifulSoup(preview.content, "html.parser").find(id="create-request")
    assert shown is not None
    assert shown.get_text().partition("\n")[0] == "POST /api/v1/studies/"
    body = shown_body(preview)
    assert body["name"] == CREATE_FORM["name"]
    assert body["internal_name"] == "cqa-2024"
    assert body["external_study_url"] == f"{SITE}/s/cqa-2024/?{PROLIFIC_QUERY}"
    assert body["reward"] == 225
    assert body["device_compatibility"] == ["desktop", "tablet"]
    assert [c["code_type"] for c in body["completion_codes"]] == [
        "COMPLETED",
        "FAILED_ATTENTION_CHECK",
    ]
    assert body["completion_codes"][0]["code"] == study.completion_code
    failed_code = body["completion_codes"][1]["code"]
    assert failed_code
    assert failed_code != study.completion_code
    assert not requests_to(fake_prolific, "POST", "api/v1/studies/")
    assert not ProlificAction.objects.exists()

    created = researcher.post(
        create, {**CREATE_FORM, **previewed_fields(preview), "confirm": "yes"}
    )

    assert created.status_code == 302
    assert created["Location"] == url("prolific", study)
    study.refresh_from_db()
    assert study.prolific_study_id in fake_prolific.studies
    assert study.prolific_status == "UNPUBLISHED"
    assert study.failed_checks_code == failed_code
    remote = fake_prolific.studies[study.prolific_study_id]
    # What was created is exactly what was shown.
    assert requests_to(fake_prolific, "POST", "api/v1/studies/") == [body]
    assert remote["status"] == "UNPUBLISHED"
    assert [(c["code"], c["code_type"], c["actions"]) for c in remote["completion_codes"]] == [
        (study.completion_code, "COMPLETED", [{"action": "MANUALLY_REVIEW"}]),
        (failed_code, "FAILED_ATTENTION_CHECK", [{"action": "MANUALLY_REVIEW"}]),
    ]
    for name in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"):
        assert f"{name}={{{{%{name}%}}}}" in remote["external_study_url"]
    assert remote["external_study_url"].startswith(f"{SITE}/s/cqa-2024/?")
    action = ProlificAction.objects.get()
    assert (action.kind, action.ok, action.dry_run) == ("create", True, False)
    assert action.decided_by == User.objects.get(username="researcher")
    assert action.path == "/api/v1/studies/"
    page = researcher.get(url("prolific", study))
    assert element_text(page, "prolific-study-id") == study.prolific_study_id

    # Creating twice is refused, and nothing more is sent.
    again = researcher.post(
        create, {**CREATE_FORM, **previewed_fields(preview), "confirm": "yes"}, follow=True
    )
    assert f"already on Prolific as {study.prolific_study_id}" in one_message(again)
    assert len(fake_prolific.studies) == 1
    assert ProlificAction.objects.count() == 1


def test_a_change_after_the_preview_is_previewed_again_and_creates_nothing(
    fake_prolific: FakeProlific, researcher: Client
) -> None:
    study = study_make(live=False)
    create = url("prolific_create", study)
    preview = researcher.post(create, CREATE_FORM)
    digest = previewed_fields(preview)

    changed = researcher.post(create, {**CREATE_FORM, **digest, "reward": "300", "confirm": "yes"})

    assert changed.status_code == 200
    assert "12.00 an hour" in element_text(changed, "hourly-rate")
    assert shown_body(changed)["reward"] == 300
    assert shown_body(changed)["completion_codes"] == shown_body(preview)["completion_codes"]
    assert fake_prolific.studies == {}
    assert not requests_to(fake_prolific, "POST", "api/v1/studies/")
    study.refresh_from_db()
    assert (study.prolific_study_id, study.failed_checks_code) == ("", "")
    assert not ProlificAction.objects.exists()


def test_a_body_prolific_refuses_shows_its_answer_and_stores_nothing(
    fake_prolific: FakeProlific, researcher: Client
) -> None:
    study = study_make(live=False)
    create = url("prolific_create", study)
    form = {**CREATE_FORM, "filters": '[{"filter_id": "age"}]'}
    preview = researcher.post(create, form)
    assert preview.status_code == 200

    refused = researcher.post(create, {**form, **previewed_fields(preview), "confirm": "yes"})

    assert refused.status_code == 302
    message = one_message(researcher.get(refused["Location"]))
    assert message.startswith("Nothing changed: Prolific answered 400 to POST api/v1/studies/")
    assert "filters[0].selected_values" in message
    assert "This field is required." in message
    assert fake_prolific.studies == {}
    study.refresh_from_db()
    assert (study.prolific_study_id, study.failed_checks_code, study.prolific_status) == (
        "",
        "",
        "",
    )
    action = ProlificAction.objects.get()
    assert (action.kind, action.ok) == ("create", False)
    assert "selected_values" in action.answer


# ---- 3. publish --------------------------------------------------------------------------


def test_publish_needs_the_confirmation_then_opens_both(
    fake_prolific: FakeProlific, researcher: Client
) -> None:
    study = on_prolific(study_make(live=False), publish=False)
    fake_prolific.requests.clear()

    unconfirmed = researcher.post(url("prolific_publish", study), follow=True)
    assert "Tick the confirmation to publish" in one_message(unconfirmed)
    assert fake_prolific.requests == []
    study.refresh_from_db()
    assert (study.status, study.prolific_status) == ("draft", "UNPUBLISHED")

    published = researcher.post(url("prolific_publish", study), {"confirm": "yes"}, follow=True)

    assert one_message(published) == ("Published on Prolific (active); the study is open here.")
    assert fake_prolific.studies[study.prolific_study_id]["status"] == "ACTIVE"
    study.refresh_from_db()
    assert (study.status, study.prolific_status) == ("live", "ACTIVE")
    assert requests_to(fake_prolific, "POST", "/transition/") == [{"action": "PUBLISH"}]
    action = ProlificAction.objects.get(kind="publish")
    assert action.ok is True
    assert not has_element(published, "prolific-publish")


def test_a_refused_publish_leaves_our_study_as_it_was(
    fake_prolific: FakeProlific, researcher: Client
) -> None:
    study = on_prolific(study_make(live=False), publish=False)
    refusal = {
        "error": {
            "status": 400,
            "error_code": 140001,
            "title": "Insufficient funds",
            "detail": "Your balance is too low to publish this study; top up your wallet.",
        }
    }
    fake_prolific.fail_next(
        "POST", f"/api/v1/studies/{study.prolific_study_id}/transition/", 400, body=refusal
    )

    response = researcher.post(url("prolific_publish", study), {"confirm": "yes"}, follow=True)

    message = one_message(response)
    assert message.startswith("Nothing changed: Prolific answered 400")
    assert "Your balance is too low to publish this study; top up your wallet." in message
    assert fake_prolific.studies[study.prolific_study_id]["status"] == "UNPUBLISHED"
    study.refresh_from_db()
    assert (study.status, study.prolific_status) == ("draft", "UNPUBLISHED")
    action = ProlificAction.objects.get(kind="publish")
    assert action.ok is False
    assert "balance is too low" in action.answer


# ---- 4. our status changes move the Prolific study ---------------------------------------


def test_the_dashboard_buttons_move_the_prolific_study(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    remote = fake_prolific.studies[live.prolific_study_id]
    for key, ours, theirs in (
        ("pause", "paused", "PAUSED"),
        ("open", "live", "ACTIVE"),
        ("close", "closed", "COMPLETED"),
    ):
        response = researcher.post(url("status", live, key), follow=True)
        assert response.status_code == 200
        # The admin shows messages with a capital first letter.
        assert f"Pilot: The Prolific study is now {theirs.lower()}." in page_messages(response)
        live.refresh_from_db()
        assert (live.status, live.prolific_status, remote["status"]) == (ours, theirs, theirs)
    assert requests_to(fake_prolific, "POST", "/transition/")[-3:] == [
        {"action": "PAUSE"},
        {"action": "START"},
        {"action": "STOP"},
    ]
    assert [a.kind for a in ProlificAction.objects.order_by("at", "pk")][-3:] == [
        "pause",
        "start",
        "stop",
    ]

    # Reopened here, Prolific cannot start a completed study: ours opens, the note says why.
    reopened = researcher.post(url("status", live, "open"), follow=True)
    note = next(m for m in page_messages(reopened) if m.startswith("Pilot: Prolific"))
    assert "Prolific did not follow" in note
    assert "Cannot START a study that is COMPLETED." in note
    live.refresh_from_db()
    assert (live.status, remote["status"]) == ("live", "COMPLETED")


@pytest.mark.parametrize("auth", ["token", "session"])
def test_the_api_status_endpoint_moves_the_prolific_study(
    fake_prolific: FakeProlific, live: Study, auth: str
) -> None:
    client = token_client_for("researcher") if auth == "token" else client_for("researcher")
    endpoint = f"/api/studies/{live.slug}/status/"
    remote = fake_prolific.studies[live.prolific_study_id]

    paused = client.post(endpoint, {"status": "paused"}, content_type="application/json")
    assert paused.status_code == 200, paused.content
    assert paused.json()["status"] == "paused"
    assert paused.json()["prolific_note"] == "The Prolific study is now paused."
    assert remote["status"] == "PAUSED"

    opened = client.post(endpoint, {"status": "live"}, content_type="application/json")
    assert opened.json()["prolific_note"] == "The Prolific study is now active."
    assert remote["status"] == "ACTIVE"

    closed = client.post(endpoint, {"status": "closed"}, content_type="application/json")
    assert closed.json()["prolific_note"] == "The Prolific study is now completed."
    assert remote["status"] == "COMPLETED"
    live.refresh_from_db()
    assert (live.status, live.prolific_status) == ("closed", "COMPLETED")
    user = User.objects.get(username="researcher")
    assert list(
        ProlificAction.objects.filter(kind__in=["pause", "start", "stop"]).values_list(
            "kind", "decided_by"
        )
    ) == [("stop", user.pk), ("start", user.pk), ("pause", user.pk)]


def test_a_study_not_published_on_prolific_changes_only_here(
    fake_prolific: FakeProlific, researcher: Client
) -> None:
    study = on_prolific(study_make(live=False), publish=False)
    fake_prolific.requests.clear()

    opened = researcher.post(url("status", study, "open"), follow=True)

    assert (
        "Pilot: The Prolific study is not published yet; publish it from the study's Prolific page."
        in page_messages(opened)
    )
    study.refresh_from_db()
    assert (study.status, study.prolific_status) == ("live", "UNPUBLISHED")

    api = token_client_for("superuser").post(
        f"/api/studies/{study.slug}/status/", {"status": "paused"}, content_type="application/json"
    )
    assert api.status_code == 200
    assert api.json()["status"] == "paused"
    assert "not published yet" in api.json()["prolific_note"]
    assert fake_prolific.studies[study.prolific_study_id]["status"] == "UNPUBLISHED"
    assert fake_prolific.requests == []
    assert not ProlificAction.objects.filter(kind__in=["start", "pause", "stop"]).exists()


# ---- 5. the sync button ------------------------------------------------------------------


def test_the_sync_button_releases_returned_participants_and_shows_the_counts(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    staying = Arrival(fake_prolific, live, "P-stays")
    leaving = Arrival(fake_prolific, live, "P-leaves")
    # Someone Prolific sent who never reached us, and completed there anyway.
    stranger, _ = fake_prolific.participant_arrive(live.prolific_study_id, "P-stranger")
    fake_prolific.participant_complete(stranger, "WRONGCODE")
    fake_prolific.participant_return(leaving.submission_id)
    assert leaving.participant.status == Participant.Status.ACTIVE

    response = researcher.post(url("prolific_sync", live), follow=True)

    assert one_message(response) == (
        "Read 3 submissions from Prolific: 3 changed, 1 participant(s) released."
    )
    assert leaving.participant.status == Participant.Status.RETURNED
    assert staying.participant.status == Participant.Status.ACTIVE
    stored = dict(ProlificSubmission.objects.values_list("participant_pid", "status"))
    assert stored == {
        "P-stays": "ACTIVE",
        "P-leaves": "RETURNED",
        "P-stranger": "AWAITING REVIEW",
    }
    counts = element_text(response, "prolific-counts")
    assert "Active 1" in counts
    assert "Returned 1" in counts
    assert "AWAITING REVIEW 1" in counts
    assert "RETURNED 1" in counts
    assert element_text(response, "prolific-disagreements") == (
        "P-stranger : awaiting review on Prolific, never arrived here"
    )
    live.refresh_from_db()
    assert live.prolific_synced_at is not None


# ---- 6. review ---------------------------------------------------------------------------


@pytest.fixture
def reviewed(fake_prolific: FakeProlific, live: Study) -> dict[str, Arrival]:
    """Five participants in every situation review must tell apart, synced."""
    people = {name: Arrival(fake_prolific, live, f"P-{name}") for name in ("good", "bad", "out")}
    assert people["good"].finish() == "AWAITING REVIEW"
    assert people["bad"].finish(fail_checks=True) == "AWAITING REVIEW"
    assert people["bad"].participant.attention_failures >= 2
    assert people["out"].finish() == "AWAITING REVIEW"
    Participant.objects.filter(pk=people["out"].participant.pk).update(excluded=True)
    # Entered the code on Prolific without finishing here.
    people["early"] = Arrival(fake_prolific, live, "P-early")
    fake_prolific.participant_complete(people["early"].submission_id, live.completion_code)
    sync(live)
    fake_prolific.requests.clear()
    return people


def fake_status(fake: FakeProlific, person: Arrival) -> str:
    return str(fake.submissions[person.submission_id]["status"])


def test_bulk_approve_approves_only_who_completed_here_and_passed(
    fake_prolific: FakeProlific, live: Study, researcher: Client, reviewed: dict[str, Arrival]
) -> None:
    page = researcher.get(url("prolific", live))
    assert "1 submission awaiting review" in element_text(page, "prolific-approve")

    dry = researcher.post(url("prolific_approve", live), {"dry_run": "on"}, follow=True)
    good_id = reviewed["good"].submission_id
    assert one_message(dry) == (
        "Dry run, nothing sent. Would send: POST /api/v1/submissions/bulk-approve/ "
        f'{{"submission_ids": ["{good_id}"]}}'
    )
    assert fake_prolific.requests == []
    action = ProlificAction.objects.get(kind="bulk_approve")
    assert (action.dry_run, action.ok, action.body) == (True, None, {"submission_ids": [good_id]})

    done = researcher.post(url("prolific_approve", live), follow=True)

    assert one_message(done) == "Asked Prolific to approve 1 submission(s)."
    assert requests_to(fake_prolific, "POST", "bulk-approve") == [{"submission_ids": [good_id]}]
    assert {name: fake_status(fake_prolific, p) for name, p in reviewed.items()} == {
        "good": "APPROVED",
        "bad": "AWAITING REVIEW",
        "out": "AWAITING REVIEW",
        "early": "AWAITING REVIEW",
    }
    assert ProlificSubmission.objects.get(submission_id=good_id).status == "APPROVED"
    sent = ProlificAction.objects.get(kind="bulk_approve", dry_run=False)
    assert sent.ok is True
    assert sent.decided_by == User.objects.get(username="researcher")

    # Nothing is left to approve: refused, nothing sent.
    again = researcher.post(url("prolific_approve", live), follow=True)
    assert "no submission awaits review" in one_message(again)
    assert len(requests_to(fake_prolific, "POST", "bulk-approve")) == 1


def reject_form(person: Arrival, message: str = REJECT_MESSAGE, **extra: str) -> dict[str, str]:
    return {
        "submission_id": person.submission_id,
        "rejection_category": "FAILED_CHECK",
        "message": message,
        **extra,
    }


def test_reject_only_a_fair_one_with_a_full_message(
    fake_prolific: FakeProlific, live: Study, researcher: Client, reviewed: dict[str, Arrival]
) -> None:
    reject = url("prolific_reject", live)
    bad = reviewed["bad"]
    page = researcher.get(url("prolific", live))
    forms = BeautifulSoup(page.content, "html.parser").select("form.prolific-reject")
    assert [f.find("input", {"name": "submission_id"})["value"] for f in forms] == [  # type: ignore[index]
        bad.submission_id
    ]

    passed = researcher.post(reject, reject_form(reviewed["good"]), follow=True)
    assert "cannot be rejected from here" in one_message(passed)
    assert "failed 2 or more attention checks" in one_message(passed)

    short = researcher.post(reject, reject_form(bad, "You failed the checks."), follow=True)
    assert one_message(short) == (
        "Nothing sent: Message: Ensure this value has at least 100 characters (it has 22)."
    )

    dry = researcher.post(reject, reject_form(bad, dry_run="on"), follow=True)
    assert one_message(dry).startswith(
        f"Dry run, nothing sent. Would send: POST /api/v1/submissions/{bad.submission_id}"
        "/transition/"
    )
    assert fake_prolific.requests == []
    assert fake_status(fake_prolific, bad) == "AWAITING REVIEW"
    assert ProlificAction.objects.get(kind="reject").dry_run is True

    done = researcher.post(reject, reject_form(bad), follow=True)

    assert one_message(done) == f"Rejected submission {bad.submission_id}."
    assert requests_to(fake_prolific, "POST", "/transition/") == [
        {"action": "REJECT", "message": REJECT_MESSAGE, "rejection_category": "FAILED_CHECK"}
    ]
    assert fake_status(fake_prolific, bad) == "REJECTED"
    assert fake_status(fake_prolific, reviewed["good"]) == "AWAITING REVIEW"
    assert ProlificSubmission.objects.get(submission_id=bad.submission_id).status == "REJECTED"
    assert ProlificAction.objects.filter(kind="reject", dry_run=False, ok=True).count() == 1


def test_ask_to_return_is_recorded_on_prolific(
    fake_prolific: FakeProlific, live: Study, researcher: Client, reviewed: dict[str, Arrival]
) -> None:
    early = reviewed["early"]
    asking = {"submission_id": early.submission_id, "reasons": "No ratings here\nPlease return"}

    dry = researcher.post(url("prolific_return", live), {**asking, "dry_run": "on"}, follow=True)
    assert one_message(dry).startswith("Dry run, nothing sent.")
    assert fake_prolific.requests == []
    assert fake_prolific.submissions[early.submission_id]["return_requested"] is None

    done = researcher.post(url("prolific_return", live), asking, follow=True)

    assert one_message(done) == (
        f"Asked the participant of submission {early.submission_id} to return it."
    )
    remote = fake_prolific.submissions[early.submission_id]
    assert remote["return_requested"] is not None
    assert remote["return_reasons"] == ["No ratings here", "Please return"]
    assert ProlificAction.objects.get(kind="request_return", dry_run=False).ok is True


# ---- 7. bonuses --------------------------------------------------------------------------


def test_bonuses_are_set_up_then_paid_once_with_confirmation(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    done = [Arrival(fake_prolific, live, pid) for pid in ("P-1", "P-2")]
    for person in done:
        person.finish()
    Arrival(fake_prolific, live, "P-working")
    bonuses = url("prolific_bonuses", live)

    dry = researcher.post(bonuses, {"rule_amount": "0.50", "dry_run": "on"}, follow=True)
    assert one_message(dry) == (
        "Dry run, nothing sent. Would send: POST /api/v1/submissions/bonus-payments/ "
        f'{{"csv_bonuses": "P-1,0.50\\nP-2,0.50\\n", "study_id": "{live.prolific_study_id}"}}'
    )
    assert fake_prolific.bonuses == {}
    assert not ProlificBonusBatch.objects.exists()

    set_up = researcher.post(bonuses, {"rule_amount": "0.50"}, follow=True)

    batch = ProlificBonusBatch.objects.get()
    # The fake adds 33 % fees and 20 % VAT on the fees: 100 + 33 + 6.60 pence.
    assert one_message(set_up) == (
        f"Bonus batch {batch.bonus_id} set up for 2 participant(s): 1.00 in bonuses, 1.40 with "
        "fees and VAT. Nothing is paid until you pay it below."
    )
    assert list(fake_prolific.bonuses) == [batch.bonus_id]
    assert fake_prolific.bonuses[batch.bonus_id]["lines"] == [
        ("P-1", Decimal("0.50")),
        ("P-2", Decimal("0.50")),
    ]
    assert (batch.amount, batch.total_amount, batch.participants) == (
        Decimal(100),
        Decimal("139.60"),
        2,
    )
    assert "1.40" in element_text(set_up, "prolific-bonus-batches")
    assert fake_prolific.payments == []

    pay = url("prolific_bonus_pay", live, batch.pk)
    unconfirmed = researcher.post(pay, follow=True)
    assert one_message(unconfirmed) == "Tick the confirmation to pay 1.40; nothing was paid."
    assert fake_prolific.payments == []

    paid = researcher.post(pay, {"confirm": "yes"}, follow=True)
    assert one_message(paid).startswith(f"Paid bonus batch {batch.bonus_id}: 1.40")
    assert len(fake_prolific.payments) == 1
    assert fake_prolific.paid_total() == Decimal("1.00")
    batch.refresh_from_db()
    assert batch.paid_at is not None
    assert batch.paid_by == User.objects.get(username="researcher")

    twice = researcher.post(pay, {"confirm": "yes"}, follow=True)
    assert f"Nothing changed: bonus batch {batch.bonus_id} was paid at" in one_message(twice)
    assert len(fake_prolific.payments) == 1
    assert len(requests_to(fake_prolific, "POST", "/pay/")) == 1


def test_a_bonus_list_naming_a_stranger_is_refused_before_sending(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    Arrival(fake_prolific, live, "P-1").finish()
    fake_prolific.requests.clear()

    refused = researcher.post(
        url("prolific_bonuses", live), {"csv_bonuses": "P-1,1.00\nP-nobody,2.00\n"}, follow=True
    )

    assert one_message(refused) == (
        f"Nothing changed: line 2: 'P-nobody' took no part in study '{live.slug}'"
    )
    assert fake_prolific.requests == []
    assert fake_prolific.bonuses == {}
    assert not ProlificBonusBatch.objects.exists()
    assert not ProlificAction.objects.filter(kind="bonus_setup").exists()

    listed = researcher.post(
        url("prolific_bonuses", live), {"csv_bonuses": "P-1,1.00\n", "dry_run": "on"}, follow=True
    )
    assert one_message(listed).startswith("Dry run, nothing sent.")
    assert fake_prolific.requests == []
    assert ProlificAction.objects.get(kind="bonus_setup").dry_run is True


def test_a_bonus_csv_file_sets_up_the_batch_and_a_bad_one_is_refused(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    Arrival(fake_prolific, live, "P-1").finish()
    bonuses = url("prolific_bonuses", live)
    upload = SimpleUploadedFile("bonuses.csv", b"\xef\xbb\xbfparticipant id,amount\r\nP-1,2.25\r\n")

    set_up = researcher.post(bonuses, {"csv_file": upload}, follow=True)

    batch = ProlificBonusBatch.objects.get()
    assert one_message(set_up).startswith(f"Bonus batch {batch.bonus_id} set up for 1 participant")
    assert fake_prolific.bonuses[batch.bonus_id]["lines"] == [("P-1", Decimal("2.25"))]

    latin1 = SimpleUploadedFile("bonuses.csv", "P-1,1.00 \u00e9\n".encode("latin-1"))
    refused = researcher.post(bonuses, {"csv_file": latin1}, follow=True)
    assert one_message(refused).startswith("Nothing set up: The CSV file cannot be read: line 1")
    both = SimpleUploadedFile("bonuses.csv", b"P-1,1.00\n")
    twice = researcher.post(bonuses, {"csv_file": both, "rule_amount": "1.00"}, follow=True)
    assert one_message(twice) == (
        "Nothing set up: Give one of: an amount for everyone, a list, or a CSV file."
    )
    assert ProlificBonusBatch.objects.count() == 1


def test_codes_set_on_prolific_from_here_cannot_change_here(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    assert live.prolific_created_here
    change = reverse("admin:studyapp_study_change", args=[live.pk])
    page = researcher.get(change).content.decode()
    assert page.count("Fixed: the study was created on Prolific from here with it.") == 3
    form = StudyChangeForm(
        instance=live,
        data={"completion_code": "CHANGED", "failed_checks_code": "CHANGED2"},
    )
    form.is_valid()
    assert (form.cleaned_data["completion_code"], form.cleaned_data["failed_checks_code"]) == (
        live.completion_code,
        live.failed_checks_code,
    )
    assert (
        not StudyChangeForm(instance=study_make(slug="by-hand")).fields["completion_code"].disabled
    )


# ---- 8. demographics ---------------------------------------------------------------------


def test_the_demographics_button_reaches_its_view(
    fake_prolific: FakeProlific, live: Study, researcher: Client, settings: Any
) -> None:
    target = url("prolific_demographics", live)
    assert resolve(target).url_name == "studyapp_study_prolific_demographics"
    user = user_make("staff")
    assert user is not None
    user.user_permissions.add(Permission.objects.get(codename="view_study"))
    viewer = Client()
    viewer.force_login(user)
    assert viewer.post(target).status_code == 403
    settings.PROLIFIC_API_TOKEN = ""
    fake_prolific.requests.clear()
    response = researcher.post(target, follow=True)
    assert response.status_code == 200
    assert one_message(response).startswith("Nothing was sent.")
    assert fake_prolific.requests == []


def test_demographics_are_fetched_for_the_studys_participants_only(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    Arrival(fake_prolific, live, "P-1").finish()
    Arrival(fake_prolific, live, "P-2")
    fake_prolific.participant_arrive(live.prolific_study_id, "P-elsewhere")
    other = study_make(slug="other")
    Participant.objects.create(study=other, prolific_pid="P-1")
    fake_prolific.demographics = {
        "P-1": {"age": 34, "sex": "Female", "country": "United Kingdom", "language": "English"},
        "P-2": {"age": 51, "sex": "Male", "country": "Ireland", "nationality": "Irish"},
        "P-elsewhere": {"age": 20, "sex": "Male"},
    }

    response = researcher.post(url("prolific_demographics", live), follow=True)

    found = page_messages(response)
    assert "Demographics of 2 participants stored (2 new, 0 updated)." in found
    assert any("P-elsewhere" in message for message in found), found
    stored = {
        d.participant.prolific_pid: (d.participant.study.slug, d.age, d.sex, d.country)
        for d in ParticipantDemographics.objects.select_related("participant__study")
    }
    assert stored == {
        "P-1": (live.slug, 34, "Female", "United Kingdom"),
        "P-2": (live.slug, 51, "Male", "Ireland"),
    }
    first = ParticipantDemographics.objects.get(participant__prolific_pid="P-2")
    assert first.nationality == "Irish"
    assert requests_to(fake_prolific, "POST", "demographic-export") == [{"filters": []}]


# ---- 9. a token Prolific refuses ---------------------------------------------------------


def test_a_refused_token_is_reported_with_prolifics_answer(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    fake_prolific.tokens = set()

    response = researcher.post(url("prolific_sync", live), follow=True)

    message = one_message(response)
    assert message.startswith(
        "Nothing changed: Prolific refused the API token (Not authenticated: Invalid token.)."
    )
    assert "PROLIFIC_API_TOKEN" in message
    live.refresh_from_db()
    assert live.prolific_synced_at is None

    paused = researcher.post(url("status", live, "pause"), follow=True)
    note = next(m for m in page_messages(paused) if "Prolific did not follow" in m)
    assert "Invalid token." in note


def test_an_unknown_prolific_study_id_is_reported_with_prolifics_answer(
    fake_prolific: FakeProlific, researcher: Client
) -> None:
    study = study_make(slug="typo", prolific_study_id="f" * 24, prolific_status="ACTIVE")

    response = researcher.post(url("prolific_sync", study), follow=True)

    message = one_message(response)
    assert message.startswith(
        f"Nothing changed: Prolific has no such object: GET api/v1/studies/{'f' * 24}/ answered 404"
    )
    study.refresh_from_db()
    assert study.prolific_synced_at is None
    assert not ProlificSubmission.objects.filter(study=study).exists()


# ---- 10. permissions ---------------------------------------------------------------------


def test_without_the_change_permission_every_prolific_page_is_forbidden(
    fake_prolific: FakeProlific, live: Study
) -> None:
    user = user_make("staff")
    assert user is not None
    user.user_permissions.add(Permission.objects.get(codename="view_study"))
    viewer = Client()
    viewer.force_login(user)
    batch = ProlificBonusBatch.objects.create(
        study=live,
        bonus_id="c" * 24,
        csv_bonuses="P1,1.00\n",
        participants=1,
        amount=Decimal(100),
        total_amount=Decimal(140),
    )
    fake_prolific.requests.clear()
    actions = ProlificAction.objects.count()

    assert viewer.get(url("dashboard", live)).status_code == 200
    assert viewer.get(url("prolific", live)).status_code == 403
    assert viewer.get(url("prolific_create", live)).status_code == 403
    for name in (
        "prolific_create",
        "prolific_publish",
        "prolific_sync",
        "prolific_approve",
        "prolific_reject",
        "prolific_return",
        "prolific_bonuses",
        "prolific_demographics",
    ):
        assert viewer.post(url(name, live), {"confirm": "yes"}).status_code == 403, name
    assert (
        viewer.post(url("prolific_bonus_pay", live, batch.pk), {"confirm": "yes"}).status_code
        == 403
    )
    assert viewer.post(url("status", live, "pause")).status_code == 403
    assert fake_prolific.requests == []
    assert ProlificAction.objects.count() == actions
    batch.refresh_from_db()
    assert batch.paid_at is None
    live.refresh_from_db()
    assert live.status == "live"


# ---- 11. the dashboard panel -------------------------------------------------------------


def test_the_dashboard_shows_the_prolific_panel_only_for_a_study_on_prolific(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    Arrival(fake_prolific, live, "P-1").finish()
    Arrival(fake_prolific, live, "P-2")
    sync(live)
    # Prolific says P-2 returned; nothing told us yet.
    ProlificSubmission.objects.filter(participant_pid="P-2").update(status="RETURNED")
    plain = study_make(slug="plain")

    dashboard = researcher.get(url("dashboard", live))

    panel = element_text(dashboard, "dashboard-prolific")
    assert panel.startswith("On Prolific (ACTIVE)")
    assert "AWAITING REVIEW 1" in panel
    assert "RETURNED 1" in panel
    assert element_text(dashboard, "dashboard-prolific-disagreements") == (
        "1 participant disagrees with Prolific, for example P-2 : active here but returned on "
        "Prolific."
    )
    assert not has_element(researcher.get(url("dashboard", plain)), "dashboard-prolific")


def test_the_audit_lists_each_request_with_who_sent_it(
    fake_prolific: FakeProlific, live: Study, researcher: Client
) -> None:
    researcher.post(url("status", live, "pause"))
    page = researcher.get(url("prolific", live))
    audit = element_text(page, "prolific-audit")
    assert re.search(
        r"researcher pause \w{24} POST /api/v1/studies/\w{24}/transition/ accepted", audit
    )
