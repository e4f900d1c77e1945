from __future__ import annotations

import json
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from analysis.__main__ import main as analysis_main
from analysis.load import ratings_load
from analysis.plan import plan_load
from studyapp.exports import ratings_rows
from studyapp.models import Study, StudyReport
from studyapp.studies.services import study_plan_set, study_status_change
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import participant_finish

pytestmark = pytest.mark.django_db


def test_it_writes_the_report_of_the_study_and_records_it(tmp_path):
    study = study_make(slug="pilot")
    for i in range(6):
        participant_finish(study, f"P{i}", seed=i, fail_checks=2 if i == 5 else 0)
    out = tmp_path / "report"
    stdout = StringIO()
    call_command("analyze_study", "pilot", "--out", str(out), stdout=stdout)
    summary = json.loads((out / "summary.json").read_text())
    exported = ratings_load(pd.DataFrame(ratings_rows(study)))
    assert summary["input"]["n_ratings"] == len(exported)
    assert summary["n_participants"] == 5  # the one with two failed checks is excluded
    assert summary["conditions"] == sorted(exported["condition"].unique())
    assert (out / "report.html").is_file()
    report = StudyReport.objects.get(study=study)
    assert report.n_ratings == summary["n_ratings"]
    assert f"wrote {out / 'report.html'}" in stdout.getvalue()


def test_an_unknown_study_names_the_known_ones(tmp_path):
    study_make(slug="pilot")
    with pytest.raises(CommandError, match=r"no study 'nope' \(studies: pilot\)"):
        call_command("analyze_study", "nope", "--out", str(tmp_path))


def test_a_study_without_ratings_is_refused(tmp_path):
    study_make(slug="empty")
    with pytest.raises(CommandError, match="has no ratings yet"):
        call_command("analyze_study", "empty", "--out", str(tmp_path / "r"))
    assert not StudyReport.objects.exists()


def test_ratings_the_analysis_cannot_use_give_its_message(tmp_path):
    study = study_make(slug="one", conditions=["MT:original"])
    participant_finish(study, "P1")
    with pytest.raises(CommandError, match="needs at least two; found only 'MT:original'"):
        call_command("analyze_study", "one", "--out", str(tmp_path / "r"))


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    study_make(slug="pilot")
    target = tmp_path / "report.txt"
    target.write_text("x")
    with pytest.raises(CommandError, match="is a file"):
        call_command("analyze_study", "pilot", "--out", str(target))


def test_the_exported_csv_through_the_cli_gives_the_same_summary(tmp_path):
    study = study_make(slug="pilot")
    for i in range(5):
        participant_finish(study, f"P{i}", seed=i)
    call_command("analyze_study", "pilot", "--out", str(tmp_path / "command"), stdout=StringIO())
    csv_path = tmp_path / "ratings.csv"
    call_command("export_ratings", "pilot", "--out", str(csv_path), stdout=StringIO())
    assert analysis_main([str(csv_path), "--out", str(tmp_path / "cli")]) == 0
    from_command = json.loads((tmp_path / "command" / "summary.json").read_text())
    from_cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert from_cli["anova"] == from_command["anova"]
    assert from_cli["descriptives"] == from_command["descriptives"]
    assert from_cli["n_ratings"] == from_command["n_ratings"] == 5 * 12


def _analysed(study, out, *args: str) -> tuple[dict, str]:
    stdout = StringIO()
    call_command("analyze_study", study.slug, "--out", str(out), *args, stdout=stdout)
    return json.loads((out / "summary.json").read_text()), stdout.getvalue()


@pytest.fixture
def paper_study():
    study = study_make(slug="pilot", live=False)
    study_plan_set(study=study, plan=plan_load("paper"))
    study_status_change(study=study, status=Study.Status.LIVE)
    for i in range(6):
        participant_finish(study, f"P{i}", seed=i, fail_checks=2 if i == 5 else 0)
    study.refresh_from_db()
    return study


def test_the_registered_plan_runs_unchanged_and_the_report_says_so(tmp_path, paper_study):
    summary, stdout = _analysed(paper_study, tmp_path / "named", "--plan", "paper")

    plan = summary["plan"]
    assert (plan["name"], plan["sha256"]) == ("paper", paper_study.plan_sha256)
    assert plan["deviations"] == []
    assert plan["registered"]["sha256"] == paper_study.plan_sha256
    assert plan["registered"]["unchanged"] is True
    # The paper's analysis keeps the participant with two failed attention checks.
    assert summary["n_participants"] == 6
    assert "ran under the study's registered plan unchanged" in stdout

    by_default, _ = _analysed(paper_study, tmp_path / "default")
    assert by_default["plan"]["name"] == "paper"
    assert by_default["plan"]["registered"]["unchanged"] is True


@pytest.mark.parametrize(
    ("flags", "setting", "participants"),
    [
        (["--attention-fail-threshold", "2"], "exclusions.attention", 5),
        (["--no-drop-outliers"], "outliers.enabled", 6),
    ],
)
def test_an_override_is_a_deviation_and_the_plan_no_longer_runs_unchanged(
    tmp_path, paper_study, flags, setting, participants
):
    summary, stdout = _analysed(paper_study, tmp_path / "r", "--plan", "paper", *flags)

    plan = summary["plan"]
    assert plan["name"] == "paper"
    assert [d["setting"] for d in plan["deviations"]] == [setting]
    assert plan["registered"]["unchanged"] is False
    assert summary["n_participants"] == participants
    assert f"deviations: {setting}; the study's registered plan, changed by the" in stdout


def test_another_plan_than_the_registered_one_is_reported_as_such(tmp_path, paper_study):
    summary, stdout = _analysed(paper_study, tmp_path / "r", "--plan", "standard")

    assert summary["plan"]["name"] == "standard"
    assert summary["plan"]["registered"]["unchanged"] is False
    assert f"not the study's registered plan (sha256 {paper_study.plan_sha256})" in stdout


def test_a_study_without_a_plan_runs_under_standard_with_no_registration(tmp_path):
    study = study_make(slug="pilot")
    for i in range(4):
        participant_finish(study, f"P{i}", seed=i)

    summary, stdout = _analysed(study, tmp_path / "r")

    assert summary["plan"]["name"] == "standard"
    assert summary["plan"]["sha256"] == plan_load("standard").sha256
    assert summary["plan"]["registered"] is None
    assert "the study registered no plan" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plan", "papper"], "neither a shipped plan"),
        (["--reference", "XX:none"], "XX:none"),
    ],
)
def test_a_bad_plan_or_override_is_explained(tmp_path, paper_study, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("analyze_study", "pilot", "--out", str(tmp_path / "r"), *args)
    assert not (tmp_path / "r" / "summary.json").exists()
