"""A study's analysis plan: registered while the study is a draft, frozen once it goes live."""

from __future__ import annotations

import hashlib
import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction
from django.utils import timezone

from analysis.plan import plan_load, plan_parse
from studyapp.importing import explanations_read
from studyapp.models import Participant, Study, StudyPlanFrozenError
from studyapp.studies.services import (
    StudyConflictError,
    study_create_from_explanations,
    study_plan_set,
    study_status_change,
)
from tests.studyapp.participant_pool import explanation_lines, study_make

pytestmark = pytest.mark.django_db

CUSTOM = """\
name = "pilot-plan"

[exclusions]
straight_lining = false

[regression]
se = "HC3"
"""


def records():
    return explanations_read(explanation_lines())


def test_a_registered_plan_is_stored_whole_with_its_hash() -> None:
    paper = plan_load("paper")
    study = study_create_from_explanations(slug="pilot", records=records(), plan=paper)

    study = Study.objects.get(pk=study.pk)
    assert (study.plan_name, study.plan_text) == ("paper", paper.text)
    assert study.plan_sha256 == hashlib.sha256(paper.text.encode("utf-8")).hexdigest()
    assert study.plan_registered
    assert not study.plan_frozen
    assert study.status == Study.Status.DRAFT


def test_a_draft_study_changes_or_removes_its_plan() -> None:
    study = study_make(live=False)
    assert study_plan_set(study=study, plan=plan_parse(CUSTOM))
    assert (study.plan_name, study.plan_text) == ("pilot-plan", CUSTOM)
    assert not study_plan_set(study=study, plan=plan_parse(CUSTOM))
    assert study_plan_set(study=study, plan=None)
    study.refresh_from_db()
    assert (study.plan_name, study.plan_text, study.plan_sha256) == ("", "", "")


@pytest.mark.parametrize("route", ["status change", "import with live", "save"])
def test_going_live_freezes_the_plan_whatever_the_route(route: str) -> None:
    study = study_create_from_explanations(slug="pilot", records=records(), plan=plan_load("paper"))
    before = timezone.now()
    if route == "status change":
        assert study_status_change(study=study, status=Study.Status.LIVE)
    elif route == "import with live":
        study = study_create_from_explanations(slug="pilot", records=records(), live=True)
    else:
        study.status = Study.Status.LIVE
        study.save(update_fields=["status"])

    stored = Study.objects.get(pk=study.pk)
    assert stored.status == Study.Status.LIVE
    assert stored.plan_frozen_at is not None
    assert stored.plan_frozen_at >= before
    assert stored.plan_name == "paper"


def test_reopening_keeps_the_time_the_plan_was_first_frozen() -> None:
    study = study_make(live=False)
    opened = timezone.now() - timedelta(days=3)
    study_status_change(study=study, status=Study.Status.LIVE, now=opened)
    study_status_change(study=study, status=Study.Status.PAUSED)
    study_status_change(study=study, status=Study.Status.LIVE)
    assert Study.objects.get(pk=study.pk).plan_frozen_at == opened


def test_pausing_or_closing_a_draft_freezes_nothing() -> None:
    study = study_make(live=False)
    study_status_change(study=study, status=Study.Status.CLOSED)
    assert not Study.objects.get(pk=study.pk).plan_frozen


def test_a_frozen_plan_is_refused_a_change_and_a_removal() -> None:
    study = study_make(live=False)
    study_plan_set(study=study, plan=plan_load("paper"))
    study_status_change(study=study, status=Study.Status.LIVE)

    for plan in (plan_load("standard"), plan_parse(CUSTOM), None):
        with pytest.raises(StudyPlanFrozenError, match=r"went live on .*'paper'.*cannot change"):
            study_plan_set(study=study, plan=plan)
    with pytest.raises(StudyPlanFrozenError):
        study_create_from_explanations(slug="pilot", records=records(), plan=plan_load("standard"))
    assert Study.objects.get(pk=study.pk).plan_name == "paper"
    # The same plan again is no change: importing the same file twice stays idempotent.
    assert not study_plan_set(study=study, plan=plan_load("paper"))
    study_create_from_explanations(slug="pilot", records=records(), plan=plan_load("paper"))


def test_a_frozen_plan_is_refused_as_a_conflict_of_the_import() -> None:
    study = study_make(live=True)
    with pytest.raises(StudyConflictError, match="without an analysis plan; a plan can no longer"):
        study_create_from_explanations(slug=study.slug, records=records(), plan=plan_load("paper"))


def test_a_study_that_went_live_without_a_plan_cannot_register_one_later() -> None:
    study = study_make(live=True)
    with pytest.raises(StudyPlanFrozenError, match="analysed under the 'standard' plan"):
        study_plan_set(study=study, plan=plan_load("paper"))
    assert not Study.objects.get(pk=study.pk).plan_registered


def test_the_model_refuses_a_frozen_plan_edited_and_saved_directly() -> None:
    study = study_make(live=False)
    study_plan_set(study=study, plan=plan_load("paper"))
    study_status_change(study=study, status=Study.Status.LIVE)

    loaded = Study.objects.get(pk=study.pk)
    loaded.plan_text = CUSTOM
    with pytest.raises(StudyPlanFrozenError):
        loaded.save()
    loaded = Study.objects.get(pk=study.pk)
    loaded.plan_frozen_at = None
    with pytest.raises(StudyPlanFrozenError):
        loaded.save()
    # Other settings of a live study still change.
    loaded = Study.objects.get(pk=study.pk)
    loaded.title = "Renamed"
    loaded.save()
    assert Study.objects.get(pk=study.pk).title == "Renamed"


def test_the_database_refuses_a_live_study_without_a_frozen_plan() -> None:
    study = study_make(live=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        Study.objects.filter(pk=study.pk).update(status=Study.Status.LIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        Study.objects.filter(pk=study.pk).update(plan_name="paper")


def test_the_migration_freezes_studies_already_opened_before_plans_existed() -> None:
    migration = importlib.import_module("studyapp.migrations.0004_study_plan_explanation_truncated")
    started = timezone.now() - timedelta(days=10)
    paused = study_make(slug="paused", live=False)
    Participant.objects.create(study=paused, prolific_pid="p1", started_at=started)
    Study.objects.filter(pk=paused.pk).update(status=Study.Status.PAUSED)
    draft = study_make(slug="draft", live=False)

    migration.plans_freeze_opened(apps, None)

    assert Study.objects.get(pk=paused.pk).plan_frozen_at == started
    assert not Study.objects.get(pk=draft.pk).plan_frozen
