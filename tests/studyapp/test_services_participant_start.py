"""participant_start: balanced, least-rated-first assignment of a participant's items."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from studyapp import selectors
from studyapp.models import Assignment, Explanation, Participant, Study
from studyapp.participation import queries
from studyapp.participation.services import (
    StudyUnavailableError,
    participant_decline,
    participant_start,
)
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import rating_record, study_make

pytestmark = pytest.mark.django_db


def _exposures(study: Study) -> list[int]:
    counts = Counter(
        Assignment.objects.filter(participant__study=study).values_list("explanation_id", flat=True)
    )
    return [
        counts[e]
        for e in Explanation.objects.filter(condition__study=study).values_list("id", flat=True)
    ]


def _answer_all(participant: Participant, value: int = 3) -> None:
    values = dict.fromkeys(PLAIN_5.keys, value)
    while (step := queries.participant_current_step(participant)) is not None:
        if step.check is not None:
            values = dict.fromkeys(values, step.check.instructed_value)
        rating_record(participant=participant, step_token=step.token, values=values)


def test_it_gives_three_items_of_each_condition_and_no_question_twice() -> None:
    study = study_make()

    participant = participant_start(study=study, prolific_pid="p1", rng=random.Random(1))

    assignments = list(participant.assignments.select_related("explanation__condition"))
    assert sorted(a.position for a in assignments) == list(range(1, 13))
    per_condition = Counter(a.explanation.condition.name for a in assignments)
    assert set(per_condition.values()) == {3}
    assert len(per_condition) == 4
    assert len({a.question_id for a in assignments}) == 12
    assert all(a.question_id == a.explanation.question_id for a in assignments)


def test_the_presentation_order_is_shuffled_and_stored() -> None:
    study = study_make()

    orders = set()
    for n in range(5):
        participant = participant_start(study=study, prolific_pid=f"p{n}", rng=random.Random(n))
        orders.add(
            tuple(
                participant.assignments.order_by("position").values_list(
                    "explanation__condition__name", flat=True
                )
            )
        )

    assert len(orders) > 1


def test_it_places_two_attention_checks_between_items() -> None:
    study = study_make()

    participant = participant_start(study=study, prolific_pid="p1", rng=random.Random(3))

    checks = list(participant.attention_checks.all())
    assert len(checks) == 2
    assert len({c.before_position for c in checks}) == 2
    assert all(2 <= c.before_position <= 12 for c in checks)
    assert all(1 <= c.instructed_value <= 5 for c in checks)


def test_it_follows_the_study_items_per_condition() -> None:
    study = study_make(per_condition=2)

    participant = participant_start(study=study, prolific_pid="p1")

    assert participant.assignments.count() == 8


def test_starting_the_same_prolific_id_twice_returns_the_same_items() -> None:
    study = study_make()
    first = participant_start(study=study, prolific_pid="p1")
    items = list(first.assignments.values_list("position", "explanation_id"))

    second = participant_start(study=study, prolific_pid="p1")

    assert second.pk == first.pk
    assert list(second.assignments.values_list("position", "explanation_id")) == items
    assert Assignment.objects.count() == 12


def test_it_draws_least_rated_first_so_exposure_never_differs_by_more_than_one() -> None:
    study = study_make()
    rng = random.Random(7)

    for n in range(11):
        participant_start(study=study, prolific_pid=f"p{n}", rng=rng)
        exposures = _exposures(study)
        assert max(exposures) - min(exposures) <= 1, (n, exposures)


def test_equally_rated_explanations_are_drawn_at_random() -> None:
    study = study_make()

    chosen = set()
    for seed in range(4):
        # Each participant is removed again, so every draw starts from the same empty pool.
        participant = participant_start(study=study, prolific_pid="p", rng=random.Random(seed))
        chosen.add(frozenset(participant.assignments.values_list("explanation_id", flat=True)))
        participant.delete()

    assert len(chosen) > 1


def test_every_explanation_can_be_rated_exactly_once() -> None:
    # The paper's design: 375 distinct explanations, each rated by exactly one participant.
    conditions = ("MT:original", "CF:original", "MT+CF:original", "MT+CF:revised", "ST:original")
    study = study_make(questions=75, conditions=conditions, max_ratings_per_explanation=1)
    rng = random.Random(11)

    for n in range(25):
        participant_start(study=study, prolific_pid=f"p{n}", rng=rng)
    with pytest.raises(StudyUnavailableError) as caught:
        participant_start(study=study, prolific_pid="one-too-many", rng=rng)

    assert caught.value.reason == "full"
    assert Explanation.objects.filter(condition__study=study).count() == 375
    assert _exposures(study) == [1] * 375


def test_items_of_a_participant_past_the_time_limit_are_released() -> None:
    study = study_make(questions=12, max_ratings_per_explanation=1)
    late = participant_start(study=study, prolific_pid="late")
    for n in range(3):
        participant_start(study=study, prolific_pid=f"p{n}")
    with pytest.raises(StudyUnavailableError):
        participant_start(study=study, prolific_pid="waiting")

    Participant.objects.filter(pk=late.pk).update(started_at=timezone.now() - timedelta(minutes=61))
    newcomer = participant_start(study=study, prolific_pid="waiting")

    late.refresh_from_db()
    assert late.status == Participant.Status.TIMED_OUT
    assert set(newcomer.assignments.values_list("explanation_id", flat=True)) == set(
        late.assignments.values_list("explanation_id", flat=True)
    )


def test_rated_items_of_a_timed_out_participant_stay_counted() -> None:
    study = study_make()
    late = participant_start(study=study, prolific_pid="late")
    step = queries.participant_current_step(late)
    assert step is not None
    rating_record(
        participant=late,
        step_token=step.token,
        values=dict.fromkeys(PLAIN_5.keys, 2),
    )
    Participant.objects.filter(pk=late.pk).update(started_at=timezone.now() - timedelta(hours=2))

    exposures = selectors.explanation_exposures(study=study, now=timezone.now())

    assert exposures == {step.assignment.explanation_id: 1}


def test_completed_participants_keep_their_items_counted_after_the_time_limit() -> None:
    study = study_make()
    done = participant_start(study=study, prolific_pid="done")
    _answer_all(done)
    later = timezone.now() + timedelta(hours=3)

    exposures = selectors.explanation_exposures(study=study, now=later)

    assert sum(exposures.values()) == 12


@pytest.mark.parametrize("status", [Study.Status.DRAFT, Study.Status.PAUSED, Study.Status.CLOSED])
def test_only_a_live_study_admits_participants(status: str) -> None:
    study = study_make(status=status)

    with pytest.raises(StudyUnavailableError) as caught:
        participant_start(study=study, prolific_pid="p1")

    assert caught.value.reason == status
    assert not Participant.objects.exists()


def test_a_study_with_enough_participants_is_full_until_one_times_out() -> None:
    study = study_make(max_participants=2)
    first = participant_start(study=study, prolific_pid="p1")
    participant_start(study=study, prolific_pid="p2")
    participant_decline(study=study, prolific_pid="p3")

    with pytest.raises(StudyUnavailableError, match="full"):
        participant_start(study=study, prolific_pid="p4")

    Participant.objects.filter(pk=first.pk).update(started_at=timezone.now() - timedelta(hours=2))
    assert participant_start(study=study, prolific_pid="p4").assignments.count() == 12


def test_declining_records_only_the_decline() -> None:
    study = study_make()

    participant = participant_decline(study=study, prolific_pid="p1", prolific_session_id="s")

    assert participant.status == Participant.Status.NO_CONSENT
    assert not participant.assignments.exists()
    assert not participant.attention_checks.exists()


def test_declining_after_consent_keeps_the_participant_unchanged() -> None:
    study = study_make()
    started = participant_start(study=study, prolific_pid="p1")

    declined = participant_decline(study=study, prolific_pid="p1")

    assert declined.pk == started.pk
    assert declined.status == Participant.Status.ACTIVE


def test_a_study_with_a_prolific_id_admits_only_that_study_id() -> None:
    study = study_make(prolific_study_id="64f0c0ffee")

    with pytest.raises(StudyUnavailableError) as refused:
        participant_start(study=study, prolific_pid="made-up", prolific_study_id="other")
    with pytest.raises(StudyUnavailableError):
        participant_start(study=study, prolific_pid="no-study-id", prolific_study_id="")
    admitted = participant_start(study=study, prolific_pid="p1", prolific_study_id="64f0c0ffee")

    assert refused.value.reason == "wrong_study"
    assert list(Participant.objects.values_list("prolific_pid", flat=True)) == ["p1"]
    assert admitted.assignments.count() == 12


def test_a_study_without_a_prolific_id_admits_any_study_id() -> None:
    study = study_make()

    participant_start(study=study, prolific_pid="p1", prolific_study_id="anything")

    assert Participant.objects.count() == 1
