from __future__ import annotations

import pytest
from django.utils import timezone

from studyapp import selectors
from studyapp.models import Participant, ParticipantExclusion, Study
from studyapp.services import participant_exclusion_set, participant_stop, study_status_change
from tests.studyapp.participant_pool import study_make
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
    Study.objects.filter(pk=study.pk).update(status=start)
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
