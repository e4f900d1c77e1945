"""The analysis plan in the admin: chosen on upload or in the study form, shown once frozen."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from analysis.plan import plan_load
from studyapp.models import Study, StudyReport
from studyapp.studies.services import study_plan_set, study_status_change
from tests.studyapp.participant_pool import explanation_lines, study_make
from tests.studyapp.researcher_data import client_for, participant_finish
from tests.studyapp.test_admin_study import change_form_data, changelist_action, upload

pytestmark = pytest.mark.django_db

CUSTOM = 'name = "pilot-plan"\n\n[regression]\nse = "HC3"\n'


@pytest.fixture
def researcher():
    return client_for("researcher")


def change_url(study: Study) -> str:
    return reverse("admin:studyapp_study_change", args=[study.pk])


def page_text(response) -> str:
    return BeautifulSoup(response.content, "html.parser").get_text(" ")


def test_a_plan_chosen_on_upload_is_registered_and_frozen_with_live(researcher):
    response = upload(researcher, explanation_lines(), plan="paper", live="on")

    assert response.status_code == 302
    study = Study.objects.get(slug="cqa")
    assert (study.plan_name, study.plan_sha256) == ("paper", plan_load("paper").sha256)
    assert study.plan_frozen


def test_a_plan_file_uploaded_with_the_explanations_is_registered(researcher):
    plan_file = SimpleUploadedFile("pilot.toml", CUSTOM.encode())
    response = upload(researcher, explanation_lines(), plan_file=plan_file)

    assert response.status_code == 302
    study = Study.objects.get(slug="cqa")
    assert (study.plan_name, study.plan_text, study.plan_frozen) == ("pilot-plan", CUSTOM, False)


def test_a_bad_plan_on_upload_is_a_form_error_and_nothing_is_imported(researcher):
    plan_file = SimpleUploadedFile("bad.toml", b"[regression]\nlength = 'tokens'\n")
    response = upload(researcher, explanation_lines(), plan_file=plan_file)

    assert response.status_code == 200
    assert "regression.length must be one of 'words', 'chars'; got 'tokens'" in page_text(response)
    assert not Study.objects.exists()


def test_the_change_form_of_a_draft_registers_a_shipped_or_pasted_plan(researcher):
    study = study_make(live=False)
    url = change_url(study)

    data = change_form_data(researcher, url)
    assert {"plan", "plan_toml", "plan_file"} <= set(data)
    data["plan"] = "standard"
    assert researcher.post(url, data).status_code == 302
    assert Study.objects.get(pk=study.pk).plan_name == "standard"

    data = change_form_data(researcher, url)
    data["plan_toml"] = CUSTOM
    assert researcher.post(url, data).status_code == 302
    assert Study.objects.get(pk=study.pk).plan_text == CUSTOM

    data = change_form_data(researcher, url)
    data["plan"] = "none"
    assert researcher.post(url, data).status_code == 302
    assert not Study.objects.get(pk=study.pk).plan_registered


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plan_toml": "[tests]\nposthoc = ['scheffe']\n"}, "tests.posthoc must be a list of"),
        ({"plan": "paper", "plan_toml": CUSTOM}, "Give the analysis plan one way only"),
    ],
)
def test_a_bad_plan_in_the_change_form_is_explained(researcher, fields, message):
    study = study_make(live=False)
    url = change_url(study)
    data = {**change_form_data(researcher, url), **fields}

    response = researcher.post(url, data)

    assert response.status_code == 200
    assert message in page_text(response)
    assert not Study.objects.get(pk=study.pk).plan_registered


def test_opening_a_study_from_the_list_freezes_its_plan(researcher):
    study = study_make(live=False)
    study_plan_set(study=study, plan=plan_load("paper"))

    changelist_action(researcher, "study_open", [study])

    assert Study.objects.get(pk=study.pk).plan_frozen


def test_a_frozen_plan_is_shown_read_only_and_a_change_is_refused(researcher):
    study = study_make(live=False)
    url = change_url(study)
    stale_form = change_form_data(researcher, url)
    study_plan_set(study=study, plan=plan_load("paper"))
    study_status_change(study=study, status=Study.Status.LIVE)

    page = researcher.get(url)
    html = BeautifulSoup(page.content, "html.parser")
    assert html.find(id="plan-text").get_text() == plan_load("paper").text
    assert plan_load("paper").sha256 in page_text(page)
    assert "frozen since" in page_text(page)
    assert html.find(attrs={"name": "plan"}) is None
    assert html.find(attrs={"name": "plan_toml"}) is None

    # A form opened before the study went live, sent after.
    stale_form["plan"] = "standard"
    response = researcher.post(url, stale_form)
    assert response.status_code == 200
    assert "The plan cannot change: study 'pilot' went live on" in page_text(response)
    assert Study.objects.get(pk=study.pk).plan_name == "paper"


def test_the_dashboard_shows_the_plan_and_analyses_under_it(researcher, tmp_path):
    study = study_make(live=False)
    study_plan_set(study=study, plan=plan_load("paper"))
    study_status_change(study=study, status=Study.Status.LIVE)
    for i in range(4):
        participant_finish(study, f"P{i}", seed=i)
    dashboard = reverse("admin:studyapp_study_dashboard", args=[study.pk])
    shown = BeautifulSoup(researcher.get(dashboard).content, "html.parser")
    assert "'paper'" in shown.find(id="analysis-plan").get_text()

    with override_settings(RUNS_DIR=tmp_path):
        researcher.post(reverse("admin:studyapp_study_analyze", args=[study.pk]))

    plan = StudyReport.objects.get(study=study).summary["plan"]
    assert (plan["name"], plan["sha256"], plan["deviations"]) == (
        "paper",
        study.plan_sha256,
        [],
    )
    assert (plan["registered"]["sha256"], plan["registered"]["unchanged"]) == (
        study.plan_sha256,
        True,
    )
    latest = BeautifulSoup(researcher.get(dashboard).content, "html.parser")
    assert "the registered plan, unchanged" in latest.find(id="latest-report").get_text()
