"""The item POST is the busiest request of a study: pin how many queries it makes.

Participants arrive in bursts and every one of them submits a dozen items, so one
extra query here is thousands more a study; the load benchmark
(benchmarks/load_participants.py) relies on these counts staying where they are.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from studyapp.models import Participant, Rating, Study
from studyapp.participation import queries
from studyapp.participation.services import RecordOutcome, participant_start
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import (
    entry_url,
    page_instructed_value,
    page_step_token,
    rating_post,
    rating_record,
    step_url,
    study_make,
)

pytestmark = pytest.mark.django_db


def _selects_from(captured: CaptureQueriesContext, table: str) -> int:
    return sum(q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"] for q in captured)


def test_item_submit_reads_the_participants_steps_once() -> None:
    participant = participant_start(study=study_make(), prolific_pid="p1")
    step = queries.participant_current_step(participant)
    assert step is not None

    with CaptureQueriesContext(connection) as captured:
        outcome = rating_record(
            participant=participant,
            step_token=step.token,
            values=dict.fromkeys(PLAIN_5.keys, 3),
        )

    assert outcome is RecordOutcome.RECORDED
    assert _selects_from(captured, "studyapp_assignment") == 1
    assert _selects_from(captured, "studyapp_attentioncheckresponse") == 1
    # Savepoint, lock, steps (2), claim, ratings, release.
    assert len(captured) == 7


def test_recording_the_last_step_completes_the_participant_without_rereading() -> None:
    participant = participant_start(study=study_make(), prolific_pid="p1")
    while (step := queries.participant_current_step(participant)) is not None:
        value = step.check.instructed_value if step.check else 4
        with CaptureQueriesContext(connection) as captured:
            rating_record(
                participant=participant,
                step_token=step.token,
                values=dict.fromkeys(PLAIN_5.keys, value),
            )
        assert _selects_from(captured, "studyapp_assignment") == 1

    assert participant.status == Participant.Status.COMPLETED
    assert Rating.objects.filter(assignment__participant=participant).count() == 12 * 5


def _on_first_step() -> tuple[Study, Client, str, int]:
    """A consented participant's browser on its first step, with the answer it will send."""
    study = study_make()
    browser = Client()
    browser.get(entry_url(study, "p1"))
    browser.post(f"/s/{study.slug}/consent/", {"decision": "agree"})
    page = browser.get(step_url(study)).content.decode()
    token = page_step_token(page)
    return study, browser, token, page_instructed_value(page) if token.startswith("check-") else 4


def test_an_item_post_without_javascript_makes_a_fixed_number_of_queries() -> None:
    study, browser, token, value = _on_first_step()

    with CaptureQueriesContext(connection) as captured:
        response = browser.post(step_url(study), rating_post(token, value))

    assert response.status_code == 302
    # Savepoint, the participant with its study read locked, steps (2), claim, ratings,
    # release: no session row is read (the binding is a signed cookie) and the locked row
    # is not read twice. The page it redirects to reads the steps itself.
    assert _selects_from(captured, "studyapp_assignment") == 1
    assert _selects_from(captured, "studyapp_participant") == 1
    assert not any("django_session" in q["sql"] for q in captured)
    assert len(captured) == 7


def test_an_htmx_item_post_answers_with_the_next_item_from_the_same_read() -> None:
    study, browser, token, value = _on_first_step()

    with CaptureQueriesContext(connection) as captured:
        response = browser.post(step_url(study), rating_post(token, value), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    following = queries.participant_current_step(Participant.objects.get())
    assert following is not None
    assert following.token != token
    assert page_step_token(response.content.decode()) == following.token
    # The next item's clock started in the same transaction as the answer was stored.
    assert following.answered_at is None
    shown = following.check or following.assignment
    assert shown is not None
    assert shown.shown_at is not None
    # Savepoint, the participant read locked, steps (2), claim, ratings, the next step's
    # clock, release: the partial is drawn from the steps already read.
    assert _selects_from(captured, "studyapp_assignment") == 1
    assert len(captured) == 8
