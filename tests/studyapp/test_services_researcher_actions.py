from __future__ import annotations

import pytest
from django.utils import timezone

from studyapp import selectors
from studyapp.models import Participant, ParticipantExclusion, Rating, Study
from studyapp.participation import queries
from studyapp.participation.services import participant_start
from studyapp.studies.services import (
    excluded_release,
    participant_exclusion_set,
    participant_stop,
    study_status_change,
)
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import rating_record, study_make
from tests.studyapp.researcher_data import participant_finish

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("start", "target", "changed", "end"),
    [
        ("draft", "live", True, "live"),
        ("paused", "live", True, "live"),
        ("closed", "live", True, "live"),
        ("live", "live", False, "live"),
        ("live", "paused", True, "paused"),
        ("draft", "paused", False, "draft"),
        ("closed", "paused", False, "closed"),
        ("live", "closed", True, "closed"),
        ("closed", "closed", False, "closed"),
    ],
)
def test_study_status_changes(start, target, changed, end):
    study = study_make(live=False)
    # A study that is (or was) open has its plan frozen; the database holds to that.
    frozen_at = None if start == "draft" else timezone.now()
    Study.objects.filter(pk=study.pk).update(status=start, plan_frozen_at=frozen_at)
    assert study_status_change(study=study, status=target) is changed
    assert study.status == end


def test_a_study_cannot_be_set_back_to_draft():
    with pytest.raises(ValueError, match="cannot be set to 'draft'"):
        study_status_change(study=study_make(), status="draft")


def test_exclusion_needs_a_reason_and_records_each_change_once():
    participant = participant_finish(study_make(), "P")
    with pytest.raises(ValueError, match="a reason is required"):
        participant_exclusion_set(participant=participant, excluded=True, reason=" ")
    assert participant_exclusion_set(participant=participant, excluded=True, reason="speeding")
    assert not participant_exclusion_set(participant=participant, excluded=True, reason="again")
    assert participant.excluded is True
    assert ParticipantExclusion.objects.get().reason == "speeding"


def test_stopping_a_participant_frees_their_unrated_items_for_the_next():
    study = study_make(max_ratings_per_explanation=1, per_condition=4)
    working = participant_finish(study, "W", items=2)
    now = timezone.now()
    held = set(selectors.explanation_exposures(study=study, now=now))
    assert len(held) == 16
    assert participant_stop(participant=working, status=Participant.Status.RETURNED)
    assert not participant_stop(participant=working, status=Participant.Status.TIMED_OUT)
    still_held = set(selectors.explanation_exposures(study=study, now=now))
    assert len(still_held) == 2
    assert still_held < held


def test_only_returned_or_timed_out_are_stop_statuses():
    participant = participant_finish(study_make(), "P", items=1)
    with pytest.raises(ValueError, match="cannot be stopped"):
        participant_stop(participant=participant, status=Participant.Status.COMPLETED)


def _filled_study() -> tuple[Study, list[Participant]]:
    """64 explanations, each rated at most once: five participants hold 60 of them."""
    study = study_make(max_ratings_per_explanation=1)
    return study, [participant_start(study=study, prolific_pid=f"p{n}") for n in range(5)]


def test_excluding_an_unfinished_participant_releases_their_items():
    study, participants = _filled_study()
    now = timezone.now()
    assert selectors.study_is_full(study=study, now=now)

    for bot in participants[:2]:
        assert participant_exclusion_set(participant=bot, excluded=True, reason="scripted IDs")

    assert [p.status for p in participants[:2]] == [Participant.Status.STOPPED] * 2
    assert not selectors.study_is_full(study=study, now=now)
    held = selectors.assignments_holding(study=study, now=now)
    assert not held.filter(participant__in=participants[:2]).exists()
    # The freed items go to newcomers, and the cap of one rating each still holds.
    newcomer = participant_start(study=study, prolific_pid="newcomer")
    assert newcomer.assignments.count() == 12
    assert max(selectors.explanation_exposures(study=study, now=now).values()) == 1


def test_an_excluded_participant_cannot_answer_any_more():
    _, participants = _filled_study()
    step = queries.participant_current_step(participants[0])
    assert step is not None
    participant_exclusion_set(participant=participants[0], excluded=True, reason="bot")

    outcome = rating_record(
        participant=participants[0],
        step_token=step.token,
        values=dict.fromkeys(PLAIN_5.keys, 3),
    )
    assert outcome is None
    assert not Rating.objects.exists()


def test_excluding_a_finished_participant_keeps_their_ratings_and_status():
    study = study_make()
    done = participant_finish(study, "P1")

    participant_exclusion_set(participant=done, excluded=True, reason="straight-lining")

    assert done.status == Participant.Status.COMPLETED
    assert Rating.objects.filter(assignment__participant=done).count() == 60


def test_re_including_a_stopped_participant_does_not_restart_them():
    _, participants = _filled_study()
    participant_exclusion_set(participant=participants[0], excluded=True, reason="mistake?")

    participant_exclusion_set(participant=participants[0], excluded=False, reason="mistake")

    assert participants[0].excluded is False
    assert participants[0].status == Participant.Status.STOPPED


def test_the_excluded_who_still_hold_items_are_released_on_request():
    study, participants = _filled_study()
    # Excluded without the service (an older version, a script): still active, still holding.
    Participant.objects.filter(pk__in=[p.pk for p in participants[:3]]).update(excluded=True)
    assert selectors.study_is_full(study=study, now=timezone.now())

    assert excluded_release(study=study) == 3
    assert excluded_release(study=study) == 0

    statuses = dict(Participant.objects.values_list("prolific_pid", "status"))
    assert [statuses[f"p{n}"] for n in range(5)] == ["stopped"] * 3 + ["active"] * 2
    assert not selectors.study_is_full(study=study, now=timezone.now())
