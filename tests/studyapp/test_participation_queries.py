"""The participation queries give exactly what the ORM gives (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, models, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from studyapp import selectors
from studyapp.models import (
    Assignment,
    AttentionCheckResponse,
    Explanation,
    Participant,
    Question,
    Rating,
    Study,
)
from studyapp.participation import queries
from studyapp.participation.services import participant_start
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import study_make

pytestmark = pytest.mark.django_db


def _fields(instance: models.Model) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


@pytest.fixture
def participant() -> Participant:
    participant = participant_start(study=study_make(), prolific_pid="p1")
    # Values of every kind the reads convert: a time, a boolean, JSON (the choices).
    first = participant.assignments.order_by("position").first()
    assert first is not None
    Assignment.objects.filter(pk=first.pk).update(shown_at=timezone.now() - timedelta(seconds=5))
    AttentionCheckResponse.objects.filter(participant=participant).update(passed=False)
    return participant


def test_the_bound_participant_and_study_match_the_orm(participant: Participant) -> None:
    found = queries.participant_bound(
        participant_id=participant.pk, prolific_pid="p1", slug=participant.study.slug
    )

    assert found is not None
    expected = Participant.objects.select_related("study").get(pk=participant.pk)
    assert _fields(found) == _fields(expected)
    assert _fields(found.study) == _fields(expected.study)
    assert found.started_at.tzinfo is not None


@pytest.mark.parametrize(
    "change", [{"prolific_pid": "p2"}, {"slug": "another"}, {"participant_id": 0}]
)
def test_a_binding_that_does_not_match_all_three_finds_nobody(
    participant: Participant, change: dict[str, Any]
) -> None:
    binding = {
        "participant_id": participant.pk,
        "prolific_pid": "p1",
        "slug": participant.study.slug,
        **change,
    }

    assert queries.participant_bound(**binding) is None


def test_the_steps_read_match_the_orm_with_their_explanations_and_questions(
    participant: Participant,
) -> None:
    assignments = queries.participant_assignments(participant)
    checks = queries.participant_checks(participant_id=participant.pk)

    expected = list(
        participant.assignments.select_related("explanation__question").order_by("position")
    )
    assert [_fields(a) for a in assignments] == [_fields(a) for a in expected]
    assert [_fields(a.explanation) for a in assignments] == [
        _fields(a.explanation) for a in expected
    ]
    questions = [_fields(a.explanation.question) for a in assignments]
    assert questions == [_fields(a.explanation.question) for a in expected]
    assert isinstance(assignments[0].explanation.question.choices, list)
    assert assignments[0].shown_at is not None
    assert assignments[0].shown_at.tzinfo is not None
    assert [_fields(c) for c in checks] == [
        _fields(c) for c in participant.attention_checks.order_by("before_position")
    ]
    assert all(c.passed is False for c in checks)


def test_a_second_steps_read_takes_the_explanations_from_the_process_cache(
    participant: Participant,
) -> None:
    queries.participant_assignments(participant)  # the first read fills the cache

    with CaptureQueriesContext(connection) as captured:
        again = queries.participant_assignments(participant)

    assert len(captured) == 1
    assert "studyapp_explanation" not in captured[0]["sql"]
    assert [a.explanation.question.text for a in again] == [
        a.explanation.question.text
        for a in participant.assignments.select_related("explanation__question").order_by(
            "position"
        )
    ]


def test_the_cache_never_gives_one_study_anothers_explanations() -> None:
    cache = queries.PoolCache(studies=1)
    first, second = study_make(slug="first"), study_make(slug="second")
    mine = list(Explanation.objects.filter(condition__study=first)[:2])
    theirs = Explanation.objects.filter(condition__study=second).first()
    assert theirs is not None

    known = cache.explanations(first, [e.pk for e in mine])
    # Only what a participant needs is read, each explanation with its question.
    assert set(known) == {e.pk for e in mine}
    assert all(e.question.pk == e.question_id for e in known.values())
    # Another study's id is not an explanation of this one, so it is never found.
    assert theirs.pk not in cache.explanations(first, [theirs.pk])
    # A study created again under the same id is another study: nothing carries over.
    recreated = Study.objects.get(pk=first.pk)
    recreated.created_at = first.created_at + timedelta(seconds=1)
    assert cache.explanations(recreated, []) == {}
    # One study kept: using the second forgets the others.
    cache.explanations(second, [theirs.pk])
    assert cache.explanations(first, []) == {}


def test_an_explanation_added_to_a_live_study_is_found() -> None:
    cache = queries.PoolCache()
    study = study_make()
    cache.explanations(study, [])
    added = Explanation.objects.filter(condition__study=study).first()
    assert added is not None
    added.pk = None
    added.question = Question.objects.create(
        study=study, external_id="late", text="Added later?", choices=["a", "b"], answer="a"
    )
    added.save()

    found = cache.explanations(study, [added.pk])

    assert found[added.pk].question.text == "Added later?"


def test_the_locked_read_matches_the_orm(participant: Participant) -> None:
    with transaction.atomic():
        locked = queries.participant_bound(
            participant_id=participant.pk, prolific_pid="p1", slug="pilot", lock=True
        )
    assert locked is not None
    assert _fields(locked) == _fields(Participant.objects.get(pk=participant.pk))


def test_an_item_is_claimed_once_and_its_ratings_written_in_one_statement(
    participant: Participant,
) -> None:
    assignment = participant.assignments.order_by("position")[1]
    now = timezone.now()

    assert queries.step_claim(model=Assignment, pk=assignment.pk, now=now)
    assert not queries.step_claim(
        model=Assignment, pk=assignment.pk, now=now + timedelta(seconds=1)
    )
    values = {d: n for n, d in enumerate(PLAIN_5.keys, start=1)}
    queries.ratings_insert(assignment_id=assignment.pk, values=values)

    assignment.refresh_from_db()
    assert assignment.answered_at == now
    assert assignment.shown_at == now  # never shown before: shown when answered
    stored = dict(Rating.objects.filter(assignment=assignment).values_list("dimension", "value"))
    assert stored == values


def test_a_check_is_claimed_once_with_its_result(participant: Participant) -> None:
    check = participant.attention_checks.first()
    assert check is not None
    now = timezone.now()

    assert queries.step_claim(model=AttentionCheckResponse, pk=check.pk, now=now, passed=True)
    assert not queries.step_claim(
        model=AttentionCheckResponse, pk=check.pk, now=now + timedelta(seconds=1), passed=False
    )

    check.refresh_from_db()
    assert (check.answered_at, check.shown_at, check.passed) == (now, now, True)


def test_a_step_clock_starts_once(participant: Participant) -> None:
    check = participant.attention_checks.first()
    assert check is not None
    first, later = timezone.now(), timezone.now() + timedelta(minutes=1)

    assert queries.step_shown(model=AttentionCheckResponse, pk=check.pk, now=first)
    assert not queries.step_shown(model=AttentionCheckResponse, pk=check.pk, now=later)

    check.refresh_from_db()
    assert check.shown_at == first


def test_the_locking_read_locks_the_participant_row_and_never_the_study(
    participant: Participant,
) -> None:
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        found = queries.participant_bound(
            participant_id=participant.pk,
            prolific_pid="p1",
            slug=participant.study.slug,
            lock=True,
        )

    assert found is not None
    assert found.pk == participant.pk
    sql = next(q["sql"] for q in captured if q["sql"].startswith("SELECT"))
    if connection.features.has_select_for_update_of:
        assert sql.endswith("FOR UPDATE OF p")
    else:  # SQLite: a write transaction already excludes other writers
        assert "FOR UPDATE" not in sql


def test_the_pool_holds_every_explanation_with_what_holds_it() -> None:
    study = study_make(questions=20)
    other = study_make(slug="other", questions=20)  # its participants hold none of this pool
    participant_start(study=other, prolific_pid="elsewhere")
    rated = participant_start(study=study, prolific_pid="rated")
    first = rated.assignments.order_by("position").first()
    assert first is not None
    Assignment.objects.filter(pk=first.pk).update(
        shown_at=timezone.now(), answered_at=timezone.now()
    )
    participant_start(study=study, prolific_pid="holding")
    # Ran out of time: the unrated items go back to the pool, the rated one stays counted.
    Participant.objects.filter(pk=rated.pk).update(started_at=timezone.now() - timedelta(hours=3))
    returned = participant_start(study=study, prolific_pid="returned")
    Participant.objects.filter(pk=returned.pk).update(status=Participant.Status.RETURNED)
    now = timezone.now()

    pool = selectors.pool_items(study=study, now=now)

    found = [pool.item(i) for i in range(len(pool))]
    exposures = selectors.explanation_exposures(study=study, now=now)
    expected = [
        (e, c, q, exposures.get(e, 0))
        for e, c, q in Explanation.objects.filter(condition__study=study).values_list(
            "id", "condition_id", "question_id"
        )
    ]
    assert sorted(
        (i.explanation_id, i.condition_id, i.question_id, i.exposure) for i in found
    ) == sorted(expected)
    assert len(found) == 80
    assert sorted(exposures.values()) == [1] * 13  # the rated item and the 12 held ones
