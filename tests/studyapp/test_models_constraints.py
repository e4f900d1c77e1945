"""The database itself refuses duplicates and out-of-range values, whatever the code does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from studyapp.models import (
    Assignment,
    AttentionCheckResponse,
    Condition,
    Explanation,
    Participant,
    Question,
    Rating,
    Study,
)
from studyapp.participation.services import participant_start
from tests.studyapp.participant_pool import study_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def participant() -> Participant:
    return participant_start(study=study_make(), prolific_pid="p1")


def _refused(write: Callable[[], object]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


def test_one_participant_per_study_and_prolific_id(participant: Participant) -> None:
    _refused(lambda: Participant.objects.create(study=participant.study, prolific_pid="p1"))


def test_one_assignment_per_position(participant: Participant) -> None:
    first = participant.assignments.get(position=1)
    other = Explanation.objects.exclude(question__assignments__participant=participant).first()
    assert other is not None

    _refused(
        lambda: Assignment.objects.create(
            participant=participant, position=1, explanation=other, question=other.question
        )
    )
    assert first.pk


def test_no_question_twice_for_one_participant(participant: Participant) -> None:
    taken = participant.assignments.select_related("explanation").get(position=1)
    sibling = (
        Explanation.objects.filter(question=taken.question).exclude(pk=taken.explanation_id).first()
    )
    assert sibling is not None

    _refused(
        lambda: Assignment.objects.create(
            participant=participant, position=13, explanation=sibling, question=sibling.question
        )
    )


@pytest.mark.parametrize("value", [0, 12])
def test_rating_values_lie_within_the_widest_scale(participant: Participant, value: int) -> None:
    # A value off the study's own scale is refused by the one path that writes ratings
    # (item_submit; see test_services_rating_record.py); the database holds the outer bounds.
    assignment = participant.assignments.get(position=1)

    _refused(
        lambda: Rating.objects.create(assignment=assignment, dimension="plausibility", value=value)
    )


def test_ratings_name_a_dimension(participant: Participant) -> None:
    assignment = participant.assignments.get(position=1)

    _refused(lambda: Rating.objects.create(assignment=assignment, dimension="", value=3))


def test_an_item_cannot_be_answered_before_it_was_shown(participant: Participant) -> None:
    now = timezone.now()

    _refused(
        lambda: Assignment.objects.filter(participant=participant, position=1).update(
            shown_at=now, answered_at=now - timedelta(seconds=1)
        )
    )


def test_an_answered_attention_check_has_a_result(participant: Participant) -> None:
    _refused(
        lambda: AttentionCheckResponse.objects.filter(participant=participant).update(
            answered_at=timezone.now(), passed=None
        )
    )


def test_attention_check_instructions_are_on_the_scale(participant: Participant) -> None:
    _refused(
        lambda: AttentionCheckResponse.objects.create(
            participant=participant, before_position=1, instructed_value=12
        )
    )


def test_condition_names_and_question_ids_are_unique_within_a_study() -> None:
    study = Study.objects.create(slug="s", title="S")
    Condition.objects.create(study=study, name="MT:original")
    Question.objects.create(study=study, external_id="q1", text="?", choices=["a", "b"], answer="a")

    _refused(lambda: Condition.objects.create(study=study, name="MT:original"))
    _refused(
        lambda: Question.objects.create(
            study=study, external_id="q1", text="?", choices=["a", "b"], answer="a"
        )
    )


def test_a_study_needs_at_least_one_item_per_condition() -> None:
    _refused(lambda: Study.objects.create(slug="s", title="S", per_condition=0))


def test_the_completion_url_carries_the_completion_code() -> None:
    study = Study(slug="s", title="S", completion_code="C0DE")

    assert study.completion_url() == "https://app.prolific.com/submissions/complete?cc=C0DE"


def test_the_completion_url_encodes_a_code_with_url_characters() -> None:
    study = Study(slug="s", title="S", completion_code="AB 12&x=1")

    assert study.completion_url() == (
        "https://app.prolific.com/submissions/complete?cc=AB%2012%26x%3D1"
    )
