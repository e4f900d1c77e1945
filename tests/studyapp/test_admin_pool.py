"""The item pool in the admin: explanations cut at the generation cap are visibly marked."""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup
from django.urls import reverse

from studyapp.importing import explanations_read
from studyapp.models import Explanation
from studyapp.studies.services import study_create_from_explanations
from tests.studyapp.participant_pool import explanation_lines
from tests.studyapp.researcher_data import client_for

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:studyapp_explanation_changelist")


@pytest.fixture
def researcher():
    return client_for("researcher")


@pytest.fixture
def study():
    lines = explanation_lines()
    for index in (1, 5):  # q000 and q001 of CF:original
        lines[index] = json.dumps({**json.loads(lines[index]), "truncated": True})
    return study_create_from_explanations(slug="pilot", records=explanations_read(lines))


def rows(response) -> list[BeautifulSoup]:
    return BeautifulSoup(response.content, "html.parser").select("#result_list tbody tr")


def test_the_pool_filters_to_the_cut_explanations_and_marks_them(researcher, study):
    everything = researcher.get(CHANGELIST)
    assert everything.status_code == 200
    assert len(rows(everything)) == 64

    cut = researcher.get(CHANGELIST, {"truncated__exact": "1"})
    found = rows(cut)
    assert len(found) == 2
    for row in found:
        assert row.select_one("td.field-truncated img")["alt"] == "True"
    assert {e.question.external_id for e in Explanation.objects.filter(truncated=True)} == {
        "q000",
        "q001",
    }


def test_the_explanations_cannot_be_edited_from_the_pool(researcher, study):
    explanation = Explanation.objects.filter(truncated=True).first()
    url = reverse("admin:studyapp_explanation_change", args=[explanation.pk])
    page = researcher.get(url)
    assert page.status_code == 200
    assert researcher.post(url, {"text": "rewritten"}).status_code == 403
    explanation.refresh_from_db()
    assert explanation.text != "rewritten"


def test_the_study_page_and_the_dashboard_count_the_cut_explanations(researcher, study):
    change = BeautifulSoup(
        researcher.get(reverse("admin:studyapp_study_change", args=[study.pk])).content,
        "html.parser",
    )
    # One labelled block per condition (a stacked inline: every field has its label).
    counts = {
        row.select_one(".field-name .readonly").get_text(strip=True): row.select_one(
            ".field-truncated_count .readonly"
        ).get_text(strip=True)
        for row in change.select("#conditions-group .inline-related.has_original")
    }
    assert counts == {
        "CF:original": "2",
        "MT+CF:original": "0",
        "MT+CF:revised": "0",
        "MT:original": "0",
    }

    dashboard = BeautifulSoup(
        researcher.get(reverse("admin:studyapp_study_dashboard", args=[study.pk])).content,
        "html.parser",
    )
    line = dashboard.find(id="truncated-count")
    assert "2 explanations" in line.get_text(" ", strip=True)
    listed = researcher.get(line.find("a")["href"])
    assert len(rows(listed)) == 2
