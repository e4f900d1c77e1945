"""A "returned" from Prolific while the same participant posts an item (PostgreSQL, real locks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from studyapp import selectors
from studyapp.models import Participant, Rating
from studyapp.participation import queries
from studyapp.participation.services import RecordOutcome, participant_start
from studyformats.questionnaire import PLAIN_5
from tests.prolific.fake import signed_delivery
from tests.prolific.hook_support import hook_sink
from tests.studyapp.participant_pool import rating_record, study_make

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SECRET = "concurrency-secret"


@pytest.fixture(autouse=True)
def hook_secret(settings: Any) -> None:
    settings.PROLIFIC_HOOK_SECRET = SECRET


def returned_hook(submission_id: str, pid: str) -> int:
    payload = {
        "resource_id": submission_id,
        "event_type": "submission.status.change",
        "participant_id": pid,
        "status": "RETURNED",
    }
    return hook_sink(*signed_delivery(payload, SECRET))


def in_thread(target: Callable[[], Any], results: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        except BaseException as exc:  # reported by the test
            results.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def waiting_on_a_lock() -> int:
    """Sessions of this database waiting for a row lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


def held(participant: Participant) -> int:
    exposures = selectors.explanation_exposures(study=participant.study, now=timezone.now())
    return sum(exposures.values())


def test_a_return_waits_for_the_item_being_posted_then_releases_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = study_make()
    participant = participant_start(study=study, prolific_pid="P1", prolific_session_id="S1")
    step = queries.participant_current_step(participant)
    assert step is not None
    assert step.check is None

    inside, go = threading.Event(), threading.Event()
    original_insert = queries.ratings_insert

    def insert_then_wait(**kwargs: Any) -> None:
        original_insert(**kwargs)
        inside.set()  # the participant's row is locked and the rating written, not committed
        assert go.wait(timeout=30)

    monkeypatch.setattr(queries, "ratings_insert", insert_then_wait)
    posted: list[Any] = []
    hooked: list[Any] = []
    poster = in_thread(
        lambda: rating_record(
            participant=participant, step_token=step.token, values=dict.fromkeys(PLAIN_5.keys, 3)
        ),
        posted,
    )
    assert inside.wait(timeout=30)
    hook = in_thread(lambda: returned_hook("S1", "P1"), hooked)
    deadline = time.monotonic() + 30
    while waiting_on_a_lock() == 0:  # the hook waits for the participant's row
        assert time.monotonic() < deadline, "the hook never waited for the item being posted"
        time.sleep(0.02)
    go.set()
    poster.join(timeout=60)
    hook.join(timeout=60)

    assert posted == [RecordOutcome.RECORDED]
    assert hooked == [200]
    participant.refresh_from_db()
    assert participant.status == Participant.Status.RETURNED
    # The item posted while the return arrived is kept; the other eleven went back.
    assert Rating.objects.filter(assignment__participant=participant).count() == 5
    assert held(participant) == 1


def test_an_item_posted_after_the_return_is_refused_and_nothing_is_written() -> None:
    study = study_make()
    participant = participant_start(study=study, prolific_pid="P1", prolific_session_id="S1")
    step = queries.participant_current_step(participant)
    assert step is not None
    assert returned_hook("S1", "P1") == 200

    outcome = rating_record(
        participant=participant, step_token=step.token, values=dict.fromkeys(PLAIN_5.keys, 3)
    )

    assert outcome is not RecordOutcome.RECORDED
    assert not Rating.objects.exists()
    assert held(participant) == 0


ROUNDS = 8


def test_returns_racing_item_posts_never_lose_or_hold_an_item() -> None:
    """Many participants, each posting items while their "returned" arrives: whatever order
    the two take, a rating is either kept with its item or never written, and no returned
    participant holds an unrated item."""
    study = study_make(questions=16)
    failures: list[BaseException] = []
    participants = [
        participant_start(study=study, prolific_pid=f"P{n}", prolific_session_id=f"S{n}")
        for n in range(ROUNDS)
    ]
    barrier = threading.Barrier(2 * ROUNDS)

    def post_items(participant: Participant) -> None:
        try:
            barrier.wait(timeout=30)
            while (step := queries.participant_current_step(participant)) is not None:
                value = step.check.instructed_value if step.check else 2
                outcome = rating_record(
                    participant=participant,
                    step_token=step.token,
                    values=dict.fromkeys(PLAIN_5.keys, value),
                )
                if outcome is not RecordOutcome.RECORDED:
                    break
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    def return_midway(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            time.sleep(0.01 * n)
            assert returned_hook(f"S{n}", f"P{n}") == 200
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post_items, args=(p,)) for p in participants]
    threads += [threading.Thread(target=return_midway, args=(n,)) for n in range(ROUNDS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures, failures
    for participant in Participant.objects.filter(study=study):
        answered = participant.assignments.filter(answered_at__isnull=False)
        ratings = Rating.objects.filter(assignment__participant=participant)
        assert ratings.count() == 5 * answered.count()
        assert participant.status in (Participant.Status.RETURNED, Participant.Status.COMPLETED)
        if participant.status == Participant.Status.COMPLETED:
            assert answered.count() == 12
    # Only rated items count: every returned participant's unrated items went back.
    rated = sum(
        p.assignments.filter(answered_at__isnull=False).count()
        for p in Participant.objects.filter(study=study)
    )
    assert held(participants[0]) == rated
