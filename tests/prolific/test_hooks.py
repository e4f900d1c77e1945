"""The webhook endpoint: signatures, replays, duplicates, order, and what each event changes."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studyapp import selectors
from studyapp.models import Participant, ProlificHookDelivery, ProlificSubmission, Study
from studyapp.participation.services import participant_start
from studyapp.prolific.services import hook_deliveries_prune
from tests.prolific.fake import signed_delivery
from tests.prolific.hook_support import HOOK_PATH, hook_post
from tests.studyapp.participant_pool import study_make

pytestmark = pytest.mark.django_db

SECRET = "hook-secret-for-tests"
HOOK = HOOK_PATH


@pytest.fixture(autouse=True)
def hook_secret(settings: Any) -> None:
    settings.PROLIFIC_HOOK_SECRET = SECRET


post = hook_post


def submission_event(submission_id: str, status: str, pid: str = "P1") -> dict[str, str]:
    return {
        "resource_id": submission_id,
        "event_type": "submission.status.change",
        "participant_id": pid,
        "status": status,
    }


@pytest.fixture
def working() -> Participant:
    """A participant half-way through, who came with SESSION_ID (the submission id) S1."""
    study = study_make()
    participant = participant_start(study=study, prolific_pid="P1", prolific_session_id="S1")
    assert participant.assignments.count() == 12
    return participant


def held(participant: Participant) -> int:
    return len(set(selectors.explanation_exposures(study=participant.study, now=timezone.now())))


def test_the_url_is_the_documented_one() -> None:
    assert reverse("prolific_hook") == HOOK


def test_a_signed_return_releases_the_participants_items(working: Participant) -> None:
    assert held(working) == 12
    body, headers = signed_delivery(submission_event("S1", "RETURNED"), SECRET)

    response = post(body, headers)

    assert response.status_code == 200, response.content
    assert response.json() == {"detail": "released"}
    working.refresh_from_db()
    assert working.status == Participant.Status.RETURNED
    assert held(working) == 0
    stored = ProlificSubmission.objects.get(submission_id="S1")
    assert (stored.status, stored.participant_pid, stored.source) == ("RETURNED", "P1", "hook")


@pytest.mark.parametrize(
    ("status", "ours"),
    [("TIMED-OUT", "timed_out"), ("REJECTED", "stopped")],
)
def test_timed_out_and_rejected_release_too(working: Participant, status: str, ours: str) -> None:
    post(*signed_delivery(submission_event("S1", status), SECRET))
    working.refresh_from_db()
    assert working.status == ours
    assert held(working) == 0


def test_awaiting_review_is_recorded_and_releases_nothing(working: Participant) -> None:
    response = post(*signed_delivery(submission_event("S1", "AWAITING REVIEW"), SECRET))
    assert response.json() == {"detail": "recorded"}
    working.refresh_from_db()
    assert working.status == Participant.Status.ACTIVE
    assert held(working) == 12
    assert ProlificSubmission.objects.get().status == "AWAITING REVIEW"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace(b"RETURNED", b"REJECTED"), headers),
        lambda body, headers: (body, {**headers, "X-Prolific-Request-Timestamp": "1"}),
        lambda body, headers: (
            body,
            {**headers, "X-Prolific-Request-Signature": "bm90IGEgc2lnbmF0dXJl"},
        ),
        lambda body, headers: (
            body,
            {k: v for k, v in headers.items() if k != "X-Prolific-Request-Signature"},
        ),
        lambda body, headers: (
            body,
            {k: v for k, v in headers.items() if k != "X-Prolific-Request-Timestamp"},
        ),
    ],
    ids=["body-changed", "timestamp-changed", "bad-signature", "no-signature", "no-timestamp"],
)
def test_a_bad_signature_gets_403_and_changes_nothing(working: Participant, tamper: Any) -> None:
    body, headers = tamper(*signed_delivery(submission_event("S1", "RETURNED"), SECRET))

    response = post(body, headers)

    assert response.status_code == 403
    working.refresh_from_db()
    assert working.status == Participant.Status.ACTIVE
    assert not ProlificSubmission.objects.exists()
    assert not ProlificHookDelivery.objects.exists()


def test_another_secret_is_refused(working: Participant) -> None:
    response = post(*signed_delivery(submission_event("S1", "RETURNED"), "someone-else"))
    assert response.status_code == 403
    assert "signature" in response.json()["detail"]


def test_a_replay_after_the_tolerance_is_refused(working: Participant, settings: Any) -> None:
    settings.PROLIFIC_HOOK_TOLERANCE_SECONDS = 300
    old = int(time.time()) - 301
    response = post(*signed_delivery(submission_event("S1", "RETURNED"), SECRET, timestamp=old))
    assert response.status_code == 403
    assert "replay" in response.json()["detail"]
    working.refresh_from_db()
    assert working.status == Participant.Status.ACTIVE


def test_a_replayed_delivery_changes_nothing(working: Participant) -> None:
    first = signed_delivery(submission_event("S1", "RETURNED"), SECRET, event_id="evt-1")
    assert post(*first).json() == {"detail": "released"}
    ProlificSubmission.objects.update(status="APPROVED")  # anything newer

    again = post(*first)

    assert again.status_code == 200
    assert again.json() == {"detail": "already applied"}
    assert ProlificSubmission.objects.get().status == "APPROVED"
    assert ProlificHookDelivery.objects.count() == 1


def test_a_retry_with_the_same_event_id_and_a_new_signature_is_a_duplicate(
    working: Participant,
) -> None:
    event = submission_event("S1", "RETURNED")
    post(*signed_delivery(event, SECRET, event_id="evt-7"))
    retried = post(
        *signed_delivery(event, SECRET, event_id="evt-7", timestamp=int(time.time()) + 1)
    )
    assert retried.json() == {"detail": "already applied"}
    assert ProlificHookDelivery.objects.count() == 1


def test_news_older_than_what_is_stored_is_ignored(working: Participant) -> None:
    now = int(time.time())
    post(*signed_delivery(submission_event("S1", "AWAITING REVIEW"), SECRET, timestamp=now))
    late = post(*signed_delivery(submission_event("S1", "ACTIVE"), SECRET, timestamp=now - 60))
    assert late.status_code == 200
    assert ProlificSubmission.objects.get().status == "AWAITING REVIEW"


def test_the_raw_body_and_prolifics_redumped_form_both_verify(working: Participant) -> None:
    event = submission_event("S1", "RETURNED")
    compact = json.dumps(event, separators=(",", ":")).encode()
    _, headers = signed_delivery(event, SECRET)  # signs json.dumps(event), the docs' form
    response = post(compact, headers)
    assert response.status_code == 200
    assert response.json() == {"detail": "released"}


def test_a_submission_no_study_here_knows_is_acknowledged(working: Participant) -> None:
    response = post(*signed_delivery(submission_event("ELSEWHERE", "RETURNED", "P9"), SECRET))
    assert response.status_code == 200
    assert response.json() == {"detail": "no study here has this submission"}
    assert not ProlificSubmission.objects.exists()


def test_a_known_submission_is_found_without_the_session_id(working: Participant) -> None:
    Participant.objects.filter(pk=working.pk).update(prolific_session_id="")
    ProlificSubmission.objects.create(
        study=working.study, submission_id="S1", participant_pid="P1", status="ACTIVE"
    )
    assert post(*signed_delivery(submission_event("S1", "RETURNED"), SECRET)).json() == {
        "detail": "released"
    }


def test_a_study_paused_on_prolific_is_paused_here() -> None:
    study = study_make(prolific_study_id="abc123", prolific_status="ACTIVE")
    event = {"resource_id": "abc123", "event_type": "study.status.change", "status": "PAUSED"}
    response = post(*signed_delivery(event, SECRET))
    assert response.json() == {"detail": "study now paused"}
    study.refresh_from_db()
    assert (study.status, study.prolific_status) == (Study.Status.PAUSED, "PAUSED")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", json.dumps({"event_type": "x"}).encode()])
def test_a_signed_body_that_is_not_an_event_gets_400(body: bytes) -> None:
    stamp = str(int(time.time()))
    _, headers = signed_delivery({}, SECRET, timestamp=int(stamp))
    from studyapp.prolific.hooks import signature_for

    headers["X-Prolific-Request-Signature"] = signature_for(SECRET, stamp, body)
    assert post(body, headers).status_code == 400


def test_without_a_secret_hooks_get_503_so_prolific_retries(
    working: Participant, settings: Any
) -> None:
    body, headers = signed_delivery(submission_event("S1", "RETURNED"), SECRET)
    settings.PROLIFIC_HOOK_SECRET = ""
    response = post(body, headers)
    assert response.status_code == 503
    assert "PROLIFIC_HOOK_SECRET" in response.json()["detail"]
    working.refresh_from_db()
    assert working.status == Participant.Status.ACTIVE


def test_only_post_is_answered() -> None:
    assert Client().get(HOOK).status_code == 405


def test_deliveries_are_remembered_for_two_days_then_forgotten(working: Participant) -> None:
    post(*signed_delivery(submission_event("S1", "AWAITING REVIEW"), SECRET, event_id="old"))
    post(*signed_delivery(submission_event("S1", "AWAITING REVIEW"), SECRET, event_id="new"))
    now = timezone.now()
    ProlificHookDelivery.objects.filter(event_id="old").update(
        received_at=now - timedelta(days=2, seconds=1)
    )
    assert hook_deliveries_prune(now) == 1
    assert list(ProlificHookDelivery.objects.values_list("event_id", flat=True)) == ["new"]
