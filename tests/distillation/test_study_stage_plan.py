from __future__ import annotations

from pathlib import Path

import pytest

from analysis.plan import plan_load
from distillation.config import StudyConfig
from distillation.services import study_from_explanations
from studyapp.models import Study

ROOT = Path(__file__).resolve().parents[2]
EXPLANATIONS = ROOT / "studyapp" / "fixtures" / "demo_explanations.jsonl"


@pytest.mark.django_db
def test_the_study_stage_registers_the_configured_plan_and_freezes_it_on_going_live():
    slug = study_from_explanations(EXPLANATIONS, StudyConfig(slug="staged", plan="paper"))
    study = Study.objects.get(slug=slug)
    paper = plan_load("paper")
    assert (study.plan_name, study.plan_sha256, study.plan_text) == (
        "paper",
        paper.sha256,
        paper.text,
    )
    assert study.is_live
    assert study.plan_frozen


@pytest.mark.django_db
def test_a_study_stage_without_a_plan_registers_none():
    slug = study_from_explanations(EXPLANATIONS, StudyConfig(slug="plain", live=False))
    study = Study.objects.get(slug=slug)
    assert not study.plan_registered
    assert not study.plan_frozen
