"""rating_record: one rating a dimension, written exactly once, checks recorded as pass/fail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from studyapp.models import Participant, Rating
from studyapp.participation import queries
from studyapp.participation.binding import Binding
from studyapp.participation.services import (
    RecordOutcome,
    item_submit,
    participant_start,
    step_mark_shown,
)
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import binding_of, rating_record, study_make

pytestmark = pytest.mark.django_db


def _values(value: int) -> dict[str, int]:
    return dict.fromkeys(PLAIN_5.keys, value)


@pytest.fixture
def participant() -> Participant:
    return participant_start(study=study_make(), prolific_pid="p1")


def _current(participant: Participant) -> queries.Step:
    step = queries.participant_current_step(participant)
    assert step is not None
    return step


def _advance_to_check(participant: Participant) -> queries.Step:
    while (step := _current(participant)).check is None:
        rating_record(participant=participant, step_token=step.token, values=_values(4))
    return step


def test_it_stores_one_rating_per_dimension_and_the_time_on_item(participant: Participant) -> None:
    step = _current(participant)
    shown = timezone.now() - timedelta(seconds=42)
    step_mark_shown(step=step, now=shown)

    outcome = rating_record(
        participant=participant,
        step_token=step.token,
        values={
            "plausibility": 1,
            "understandability": 2,
            "completeness": 3,
            "satisfaction": 4,
            "contrastiveness": 5,
        },
    )

    assert outcome is RecordOutcome.RECORDED
    assignment = participant.assignments.get(position=1)
    assert dict(assignment.ratings.values_list("dimension", "value")) == {
        "plausibility": 1,
        "understandability": 2,
        "completeness": 3,
        "satisfaction": 4,
        "contrastiveness": 5,
    }
    assert assignment.seconds_on_item is not None
    assert 41 <= assignment.seconds_on_item < 60


def test_showing_a_step_again_keeps_its_first_shown_time(participant: Participant) -> None:
    step = _current(participant)
    first = timezone.now() - timedelta(minutes=2)
    step_mark_shown(step=step, now=first)

    step_mark_shown(step=_current(participant), now=timezone.now())

    assert participant.assignments.get(position=1).shown_at == first


def test_submitting_the_same_item_twice_writes_it_once(participant: Participant) -> None:
    step = _current(participant)
    rating_record(participant=participant, step_token=step.token, values=_values(4))

    outcome = rating_record(participant=participant, step_token=step.token, values=_values(1))

    assert outcome is RecordOutcome.ALREADY_RECORDED
    assert list(Rating.objects.values_list("value", flat=True)) == [4] * 5


def test_a_step_that_is_not_the_current_one_is_not_written(participant: Participant) -> None:
    outcome = rating_record(participant=participant, step_token="item-5", values=_values(4))

    assert outcome is RecordOutcome.NOT_CURRENT
    assert not Rating.objects.exists()


@pytest.mark.parametrize(
    "values",
    [
        {**_values(3), "plausibility": 0},
        {**_values(3), "contrastiveness": 6},
        {k: 3 for k in PLAIN_5.keys if k != "completeness"},
    ],
)
def test_it_refuses_values_outside_the_scale_or_dimensions(
    participant: Participant, values: dict[str, int]
) -> None:
    outcome = rating_record(participant=participant, step_token="item-1", values=values)

    assert outcome is RecordOutcome.INVALID
    assert not Rating.objects.exists()


def test_keys_outside_the_questionnaire_are_not_stored(participant: Participant) -> None:
    outcome = rating_record(
        participant=participant, step_token="item-1", values={**_values(3), "novelty": 3}
    )

    assert outcome is RecordOutcome.RECORDED
    assert sorted(Rating.objects.values_list("dimension", flat=True)) == sorted(PLAIN_5.keys)


def test_an_attention_check_is_recorded_as_pass_and_never_as_ratings(
    participant: Participant,
) -> None:
    step = _advance_to_check(participant)
    ratings_before = Rating.objects.count()
    assert step.check is not None

    rating_record(
        participant=participant, step_token=step.token, values=_values(step.check.instructed_value)
    )

    step.check.refresh_from_db()
    assert step.check.passed is True
    assert step.check.answered_at is not None
    assert Rating.objects.count() == ratings_before
    participant.refresh_from_db()
    assert participant.attention_failures == 0


def test_a_failed_attention_check_is_counted(participant: Participant) -> None:
    step = _advance_to_check(participant)
    assert step.check is not None
    wrong = step.check.instructed_value % 5 + 1

    rating_record(participant=participant, step_token=step.token, values=_values(wrong))

    step.check.refresh_from_db()
    participant.refresh_from_db()
    assert step.check.passed is False
    assert participant.attention_failures == 1
    assert not participant.attention_failed


def test_failing_two_checks_flags_the_participant_who_still_completes(
    participant: Participant,
) -> None:
    while (step := queries.participant_current_step(participant)) is not None:
        value = step.check.instructed_value % 5 + 1 if step.check else 3
        rating_record(participant=participant, step_token=step.token, values=_values(value))

    participant.refresh_from_db()
    assert participant.attention_failures == 2
    assert participant.attention_failed
    assert participant.status == Participant.Status.COMPLETED


def test_answering_the_last_item_completes_the_participant(participant: Participant) -> None:
    while (step := queries.participant_current_step(participant)) is not None:
        value = step.check.instructed_value if step.check else 5
        rating_record(participant=participant, step_token=step.token, values=_values(value))

    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    assert participant.completed_at is not None
    assert Rating.objects.count() == 60
    assert not participant.attention_failed


def test_a_participant_past_the_time_limit_cannot_answer_and_is_timed_out(
    participant: Participant,
) -> None:
    Participant.objects.filter(pk=participant.pk).update(
        started_at=timezone.now() - timedelta(hours=2)
    )
    participant.refresh_from_db()

    outcome = rating_record(participant=participant, step_token="item-1", values=_values(3))
    assert outcome is None

    participant.refresh_from_db()
    assert participant.status == Participant.Status.TIMED_OUT
    assert not Rating.objects.exists()


def test_a_completed_participant_cannot_answer_again(participant: Participant) -> None:
    Participant.objects.filter(pk=participant.pk).update(status=Participant.Status.COMPLETED)

    outcome = rating_record(participant=participant, step_token="item-1", values=_values(3))
    assert outcome is None


def test_the_database_refuses_a_second_rating_of_a_dimension(participant: Participant) -> None:
    step = _current(participant)
    rating_record(participant=participant, step_token=step.token, values=_values(4))

    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.create(assignment=step.assignment, dimension="plausibility", value=2)


def test_a_binding_that_names_another_participant_or_study_writes_nothing(
    participant: Participant,
) -> None:
    other = participant_start(study=study_make(slug="other"), prolific_pid="p2")
    step = _current(participant)
    bindings = [
        Binding(pid="p2", participant=participant.pk),  # another Prolific ID
        Binding(pid="p1", participant=other.pk),  # another participant's id
        Binding(pid="p1"),  # arrived but never consented
    ]
    for binding in bindings:
        submission = item_submit(
            binding=binding,
            slug=participant.study.slug,
            step_token=step.token,
            values=_values(3),
        )
        assert submission is None
    assert (
        item_submit(
            binding=binding_of(participant), slug="other", step_token=step.token, values=_values(3)
        )
        is None
    )

    assert not Rating.objects.exists()
    assert _current(participant) == step


def test_answers_off_the_scale_or_missing_a_row_are_refused_and_nothing_is_stored(
    participant: Participant,
) -> None:
    step = _current(participant)
    for values in (
        _values(0),
        _values(6),
        {**_values(3), "plausibility": "3.5"},
        {**_values(3), "plausibility": True},
        {"plausibility": 3},
    ):
        submission = item_submit(
            binding=binding_of(participant),
            slug=participant.study.slug,
            step_token=step.token,
            values=values,
        )
        assert submission is not None
        assert submission.outcome is RecordOutcome.INVALID
        assert submission.following == step
    assert not Rating.objects.exists()
    assert _current(participant) == step
