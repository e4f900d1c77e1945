"""Participants arriving and rating at the same moment (PostgreSQL, real row locks)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection

from studyapp.models import Assignment, Explanation, Participant, Rating
from studyapp.participation import queries
from studyapp.participation.services import participant_decline, participant_start
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import rating_record, study_make

THREADS = 16
PARTICIPANTS = 12  # threads beyond this reuse a Prolific ID: a double click or a second tab


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_arrivals_and_ratings_keep_uniqueness_and_balance() -> None:
    study = study_make()
    barrier = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def participant_session(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            participant = participant_start(study=study, prolific_pid=f"p{n % PARTICIPANTS}")
            while (step := queries.participant_current_step(participant)) is not None:
                value = step.check.instructed_value if step.check else 1 + n % 5
                outcome = rating_record(
                    participant=participant,
                    step_token=step.token,
                    values=dict.fromkeys(PLAIN_5.keys, value),
                )
                if outcome is None:
                    break  # the participant's other tab answered the last item first
                participant.refresh_from_db()
        except BaseException as exc:  # reported below, with the thread that raised it
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=participant_session, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures, failures
    assert Participant.objects.count() == PARTICIPANTS
    assert Participant.objects.filter(status=Participant.Status.COMPLETED).count() == PARTICIPANTS
    assert Assignment.objects.count() == PARTICIPANTS * 12
    assert Rating.objects.count() == PARTICIPANTS * 12 * 5
    for participant in Participant.objects.all():
        assert participant.assignments.values("question_id").distinct().count() == 12
        assert participant.attention_checks.filter(passed=True).count() == 2
    exposure = Counter(Assignment.objects.values_list("explanation_id", flat=True))
    counts = [exposure[e] for e in Explanation.objects.values_list("id", flat=True)]
    assert max(counts) - min(counts) <= 1


RACES = 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_agree_and_decline_by_the_same_prolific_id_at_once_never_deadlock() -> None:
    """Consent and refusal of one Prolific ID racing each other, many times over.

    Both lock the study's row before they touch the participant's, in that order, so one
    waits for the other; taken in opposite orders they deadlocked on PostgreSQL.
    """
    study = study_make()
    failures: list[BaseException] = []

    def run(barrier: threading.Barrier, action: Callable[..., Participant], pid: str) -> None:
        try:
            barrier.wait(timeout=30)
            action(study=study, prolific_pid=pid)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    for race in range(RACES):
        barrier = threading.Barrier(2)
        pid = f"racer-{race}"
        threads = [
            threading.Thread(target=run, args=(barrier, action, pid))
            for action in (participant_start, participant_decline)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert not failures, failures
    assert Participant.objects.count() == RACES
    for participant in Participant.objects.all():
        # Whichever came first decided: items for a start, none for a refusal.
        started = participant.status == Participant.Status.ACTIVE
        assert participant.assignments.exists() == started, participant.status
