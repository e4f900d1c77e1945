from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from studyapp.models import (
    AttentionCheckResponse,
    Explanation,
    Participant,
    ParticipantDemographics,
    Study,
    StudyReport,
)
from studyapp.participation.services import participant_start
from tests.studyapp.participant_pool import explanation_lines, explanation_record, study_make
from tests.studyapp.researcher_data import client_for, participant_finish

pytestmark = pytest.mark.django_db

UPLOAD = reverse("admin:studyapp_study_upload")


@pytest.fixture
def researcher():
    return client_for("researcher")


def upload(client, lines: list[str], **fields):
    data = {"slug": "cqa", "title": "", "completion_code": "", "per_condition": "", **fields}
    data["explanations"] = SimpleUploadedFile("explanations.jsonl", "\n".join(lines).encode())
    return client.post(UPLOAD, data)


def page_messages(response) -> list[str]:
    page = BeautifulSoup(response.content, "html.parser")
    return [li.get_text().strip() for li in page.select("ul.messagelist li")]


def changelist_action(client, action: str, studies: list[Study]):
    return client.post(
        reverse("admin:studyapp_study_changelist"),
        {"action": action, "_selected_action": [s.pk for s in studies]},
    )


def test_add_leads_to_the_upload_form(researcher):
    response = researcher.get(reverse("admin:studyapp_study_add"))
    assert response.status_code == 302
    assert response["Location"] == UPLOAD
    page = researcher.get(UPLOAD)
    assert page.status_code == 200
    assert b'enctype="multipart/form-data"' in page.content


def test_an_uploaded_file_becomes_a_live_study(researcher):
    response = upload(researcher, explanation_lines(), live="on", completion_code="ABC123")
    study = Study.objects.get(slug="cqa")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:studyapp_study_dashboard", args=[study.pk])
    assert study.status == "live"
    assert study.completion_code == "ABC123"
    assert Explanation.objects.filter(condition__study=study).count() == 64


def test_a_bad_file_gets_the_line_numbered_report_and_imports_nothing(researcher):
    lines = explanation_lines()
    lines[1] = "[1, 2]"
    lines[4] = json.dumps(explanation_record("MT:original", 77, answer="moon"))
    lines[9] = json.dumps({k: v for k, v in json.loads(lines[9]).items() if k != "question"})
    response = upload(researcher, lines)
    assert response.status_code == 200
    report = BeautifulSoup(response.content, "html.parser").find(id="file-errors")
    assert report is not None
    items = [li.get_text() for li in report.find_all("li")]
    assert items == [
        "line 2: not a JSON object",
        "line 5: answer 'moon' is not among the choices",
        "line 10: missing field 'question'",
    ]
    assert "3 problems in the file; nothing was imported" in report.get_text()
    assert not Study.objects.filter(slug="cqa").exists()


def test_a_conflict_with_the_stored_study_is_explained(researcher):
    study_make(slug="cqa")
    lines = explanation_lines()
    changed = json.loads(lines[0])
    changed["explanation"] = "Something else entirely."
    lines[0] = json.dumps(changed)
    response = upload(researcher, lines)
    assert response.status_code == 200
    assert b"Nothing was imported" in response.content
    assert b"differs from the stored one" in response.content


def test_a_file_that_is_not_text_is_refused_clearly(researcher):
    data = {"slug": "cqa", "explanations": SimpleUploadedFile("e.jsonl", b"\x89PNG\r\n\x1a\n\xff")}
    response = researcher.post(UPLOAD, data)
    assert response.status_code == 200
    assert b"line 1: the file is not UTF-8 text" in response.content
    assert not Study.objects.exists()


def test_studies_are_opened_paused_and_closed_by_actions(researcher):
    draft = study_make(slug="draft-one", live=False)
    live = study_make(slug="live-one")
    changelist_action(researcher, "study_pause", [draft, live])
    draft.refresh_from_db()
    live.refresh_from_db()
    assert (draft.status, live.status) == ("draft", "paused")
    changelist_action(researcher, "study_open", [draft, live])
    assert set(Study.objects.values_list("status", flat=True)) == {"live"}
    changelist_action(researcher, "study_close", [draft])
    draft.refresh_from_db()
    assert draft.status == "closed"


def test_the_dashboard_buttons_change_the_status(researcher):
    study = study_make()
    url = reverse("admin:studyapp_study_status", args=[study.pk, "pause"])
    assert researcher.get(url).status_code == 405
    response = researcher.post(url)
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.status == "paused"
    history = LogEntry.objects.get(object_id=str(study.pk))
    assert (history.user.username, history.get_change_message()) == (
        "researcher",
        "paused the study",
    )
    assert (
        researcher.post(reverse("admin:studyapp_study_status", args=[study.pk, "x"])).status_code
        == 404
    )


def test_the_dashboard_shows_counts_charts_and_no_external_assets(researcher):
    study = study_make()
    participant_finish(study, "A", seed=1)
    participant_finish(study, "B", seed=2, fail_checks=1)
    participant_finish(study, "C", seed=3, items=2)
    response = researcher.get(reverse("admin:studyapp_study_dashboard", args=[study.pk]))
    page = BeautifulSoup(response.content, "html.parser")
    assert page.find(id="count-started").get_text() == "3"
    assert page.find(id="count-completed").get_text() == "2"
    assert page.find(id="median-time").get_text() == "1 min 38 s"
    # B failed one check; how many checks C met before stopping depends on where they fell.
    answered = AttentionCheckResponse.objects.filter(answered_at__isnull=False)
    assert answered.filter(passed=False).count() == 1
    assert page.find(id="attention-fail-rate").get_text() == f"{1 / answered.count():.1%}"
    charts = page.find_all("svg", class_="study-chart")
    assert len(charts) == 2
    condition_labels = [t.get_text() for t in charts[0].find_all("text")][::2]
    assert condition_labels == sorted(study.conditions.values_list("name", flat=True))
    exposure_labels = [t.get_text() for t in charts[1].find_all("text")][::2]
    assert exposure_labels == ["rated 0×", "rated 1×"]
    assert "No analysis report yet" in page.get_text()
    assert not [
        tag for tag in page.find_all(["script", "link", "img"]) if "//" in str(tag.get("src", ""))
    ]


def test_the_dashboard_links_the_latest_report(researcher, tmp_path):
    study = study_make()
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    for folder in (old_dir, new_dir):
        folder.mkdir()
        (folder / "report.html").write_text(f"<p>{folder.name}</p>")
    StudyReport.objects.create(study=study, out_dir=str(old_dir))
    latest = StudyReport.objects.create(study=study, out_dir=str(new_dir))
    response = researcher.get(reverse("admin:studyapp_study_dashboard", args=[study.pk]))
    link = BeautifulSoup(response.content, "html.parser").find(id="latest-report").find("a")
    assert link["href"] == reverse("admin:studyapp_study_report", args=[study.pk, latest.pk])
    report = researcher.get(link["href"])
    assert report.content.decode().endswith("<p>new</p>")


def test_a_report_links_back_to_its_dashboard(researcher, tmp_path):
    study = study_make()
    (tmp_path / "report.html").write_text(
        "<!doctype html><html><head><title>R</title></head><body><h1>Ratings analysis</h1>"
        "</body></html>"
    )
    report = StudyReport.objects.create(study=study, out_dir=str(tmp_path))

    response = researcher.get(reverse("admin:studyapp_study_report", args=[study.pk, report.pk]))

    page = BeautifulSoup(response.content, "html.parser")
    first = page.body.find(True)
    assert first.name == "nav"
    link = first.find("a")
    assert link["href"] == reverse("admin:studyapp_study_dashboard", args=[study.pk])
    assert "Back to the dashboard" in link.get_text()
    assert page.h1.get_text() == "Ratings analysis"
    # The file on disk is unchanged: it still opens on its own, without the admin.
    assert "nav" not in (tmp_path / "report.html").read_text()


def test_a_report_whose_folder_is_gone_is_a_clear_404(researcher, tmp_path):
    study = study_make()
    report = StudyReport.objects.create(study=study, out_dir=str(tmp_path / "gone"))
    response = researcher.get(reverse("admin:studyapp_study_report", args=[study.pk, report.pk]))
    assert response.status_code == 404


def test_running_the_analysis_records_a_report_the_dashboard_links(researcher, tmp_path):
    pytest.importorskip("analysis.report")
    study = study_make()
    for i in range(4):
        participant_finish(study, f"P{i}", seed=i)
    with override_settings(RUNS_DIR=tmp_path):
        response = researcher.post(reverse("admin:studyapp_study_analyze", args=[study.pk]))
    assert response.status_code == 302
    report = StudyReport.objects.get(study=study)
    assert report.n_ratings == 48
    assert report.n_participants == 4
    assert (tmp_path / "reports" / study.slug) in Path(report.out_dir).parents
    page = researcher.get(reverse("admin:studyapp_study_report", args=[study.pk, report.pk]))
    assert b"<html" in page.content.lower()
    back = BeautifulSoup(page.content, "html.parser").select("body > nav:first-child a")
    assert [a["href"] for a in back] == [reverse("admin:studyapp_study_dashboard", args=[study.pk])]


def test_running_the_analysis_without_ratings_explains_why(researcher, tmp_path):
    study = study_make()
    with override_settings(RUNS_DIR=tmp_path):
        response = researcher.post(
            reverse("admin:studyapp_study_analyze", args=[study.pk]), follow=True
        )
    assert page_messages(response) == [
        "The analysis could not run: study 'pilot' has no ratings yet; there is nothing to analyse"
    ]
    assert not StudyReport.objects.exists()


def test_demographics_are_imported_from_the_dashboard(researcher):
    study = study_make()
    participant_finish(study, "P1")
    content = b"Participant id,Age,Sex\r\nP1,29,Male\r\nGHOST,40,Female\r\n"
    response = researcher.post(
        reverse("admin:studyapp_study_demographics", args=[study.pk]),
        {"demographics": SimpleUploadedFile("prolific.csv", content)},
        follow=True,
    )
    assert page_messages(response) == [
        "Demographics of 1 participants stored (1 new, 0 updated).",
        "1 participant id(s) in the file match nobody in the study: GHOST",
    ]
    assert ParticipantDemographics.objects.get().age == 29


def test_a_bad_demographics_file_lists_its_problems(researcher):
    study = study_make()
    content = b"Participant id,Age\r\nP1,old\r\n"
    response = researcher.post(
        reverse("admin:studyapp_study_demographics", args=[study.pk]),
        {"demographics": SimpleUploadedFile("prolific.csv", content)},
        follow=True,
    )
    assert page_messages(response) == [
        "Nothing was imported: 1 problem in the demographics file.",
        # The admin capitalises the first letter of every message.
        "Line 2: age 'old' is not a whole number of years from 1 to 120",
    ]
    assert not ParticipantDemographics.objects.exists()


def test_selected_studies_are_exported_as_one_csv(researcher):
    first = study_make(slug="first")
    second = study_make(slug="second")
    participant_finish(first, "A")
    participant_finish(second, "B")
    response = changelist_action(researcher, "ratings_export", [first, second])
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["study"] for r in rows] == ["first"] * 12 + ["second"] * 12


def test_a_researcher_goes_from_a_file_to_a_live_study_to_a_csv_without_a_shell(researcher):
    upload(researcher, explanation_lines(), live="on")
    study = Study.objects.get(slug="cqa")
    participant_finish(study, "P1")
    response = researcher.get(reverse("admin:studyapp_study_ratings_csv", args=[study.pk]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 12
    assert {r["study"] for r in rows} == {"cqa"}


def change_form_data(client, url: str) -> dict[str, str]:
    """The values a browser would send back from the change form, unedited."""
    form = BeautifulSoup(client.get(url).content, "html.parser").find("form", id="study_form")
    data: dict[str, str] = {}
    for field in form.find_all(["input", "textarea", "select"]):
        name = field.get("name")
        if not name or field.get("type") in ("submit", "checkbox"):
            continue
        if field.name == "textarea":
            data[name] = field.get_text()
        elif field.name == "select":
            chosen = field.find("option", selected=True)
            data[name] = chosen["value"] if chosen else ""
        else:
            data[name] = field.get("value", "")
    return data


def test_a_study_is_edited_with_its_conditions_inline(researcher):
    study = study_make()
    url = reverse("admin:studyapp_study_change", args=[study.pk])
    data = change_form_data(researcher, url)
    data.update({"title": "Renamed", "time_limit_minutes": "45", "conditions-0-student": "t5-base"})
    response = researcher.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    study.refresh_from_db()
    assert (study.title, study.time_limit_minutes, study.status) == ("Renamed", 45, "live")
    # The inline lists conditions by name, so the first row is "CF:original".
    assert dict(study.conditions.values_list("name", "student")) == {
        "CF:original": "t5-base",
        "MT+CF:original": "t5-v1_1-small",
        "MT+CF:revised": "t5-v1_1-small",
        "MT:original": "t5-v1_1-small",
    }


@pytest.mark.parametrize(
    ("per_condition", "with_participant", "message"),
    [
        ("5", False, "4 conditions x 5 items need 20 different questions; the pool has 16."),
        ("2", True, "The study already has participants"),
    ],
)
def test_items_per_condition_stay_possible_and_fixed_once_started(
    researcher, per_condition, with_participant, message
):
    study = study_make()
    if with_participant:
        participant_finish(study, "P1", items=1)
    url = reverse("admin:studyapp_study_change", args=[study.pk])
    data = change_form_data(researcher, url)
    data["per_condition"] = per_condition
    response = researcher.post(url, data)
    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    study.refresh_from_db()
    assert study.per_condition == 3


def test_items_per_condition_change_before_anyone_started(researcher):
    study = study_make()
    url = reverse("admin:studyapp_study_change", args=[study.pk])
    data = change_form_data(researcher, url)
    data["per_condition"] = "4"
    assert researcher.post(url, data).status_code == 302
    study.refresh_from_db()
    assert study.per_condition == 4


def test_an_out_of_range_items_per_condition_is_explained_not_a_server_error(researcher):
    # PostgreSQL refuses it as out of the column's range; SQLite as a pool too small.
    response = upload(researcher, explanation_lines(), per_condition="40000")
    assert response.status_code == 200
    assert b"Nothing was imported" in response.content
    assert not Study.objects.filter(slug="cqa").exists()


def test_the_dashboard_releases_the_items_excluded_participants_still_hold(researcher):
    study = study_make(max_ratings_per_explanation=1)
    for n in range(5):
        participant_start(study=study, prolific_pid=f"p{n}")
    # Excluded without being stopped (an older version, a script): their items stay held.
    Participant.objects.filter(prolific_pid__in=["p0", "p1"]).update(excluded=True)
    dashboard = reverse("admin:studyapp_study_dashboard", args=[study.pk])

    page = BeautifulSoup(researcher.get(dashboard).content, "html.parser")
    assert page.find(id="count-excluded-holding").get_text() == "2"
    form = page.find("form", id="release-excluded")
    assert form is not None

    response = researcher.post(form["action"])

    assert response.status_code == 302
    assert set(Participant.objects.filter(excluded=True).values_list("status", flat=True)) == {
        Participant.Status.STOPPED
    }
    assert "Stopped 2 excluded participant(s)" in " ".join(page_messages(researcher.get(dashboard)))
    assert b"release-excluded" not in researcher.get(dashboard).content
    assert participant_start(study=study, prolific_pid="newcomer").assignments.count() == 12


def test_releasing_the_excluded_needs_the_participant_change_permission():
    study = study_make()
    participant_start(study=study, prolific_pid="p0")
    Participant.objects.update(excluded=True)
    viewer = client_for("staff")
    url = reverse("admin:studyapp_study_release_excluded", args=[study.pk])

    assert viewer.post(url).status_code == 403
    assert Participant.objects.get().status == Participant.Status.ACTIVE


def test_the_demographics_file_input_has_a_label(researcher):
    study = study_make()
    response = researcher.get(reverse("admin:studyapp_study_dashboard", args=[study.pk]))

    page = BeautifulSoup(response.content, "html.parser")
    file_input = page.find("input", attrs={"type": "file", "name": "demographics"})
    assert file_input is not None
    label = page.find("label", attrs={"for": file_input["id"]})
    assert label is not None
    assert label.get_text(strip=True) == "Demographics file"
