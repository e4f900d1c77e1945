from __future__ import annotations

import csv

import pytest
from django.core.management import CommandError, call_command

from studyapp.exports import participant_pseudonym
from studyapp.studies.services import questionnaire_import, study_questionnaire_set
from studyformats.questionnaire import questionnaire_parse
from studyformats.ratings import ratings_header
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import participant_finish

pytestmark = pytest.mark.django_db


def read(path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_it_writes_the_pseudonymised_export(tmp_path, capsys):
    study = study_make()
    participant_finish(study, "PID-1")
    out = tmp_path / "ratings.csv"
    call_command("export_ratings", "pilot", "--out", str(out))
    rows = read(out)
    assert len(rows) == 12
    assert {row["participant"] for row in rows} == {participant_pseudonym("PID-1")}
    assert "prolific_pid" not in rows[0]
    assert f"Wrote 12 rated items to {out}." in capsys.readouterr().out
    assert not (tmp_path / "ratings.csv.partial").exists()


def test_raw_prolific_ids_only_with_the_flag(tmp_path):
    study = study_make()
    participant_finish(study, "PID-1")
    out = tmp_path / "ratings.csv"
    call_command("export_ratings", "pilot", "--out", str(out), "--include-prolific-ids")
    assert {row["prolific_pid"] for row in read(out)} == {"PID-1"}


def test_a_study_without_ratings_gets_a_header_and_a_warning(tmp_path, capsys):
    study_make()
    out = tmp_path / "ratings.csv"
    call_command("export_ratings", "pilot", "--out", str(out))
    assert out.read_text().startswith("participant,study,position,")
    assert read(out) == []
    assert "has no ratings yet" in capsys.readouterr().out


def test_an_unknown_study_names_the_known_ones(tmp_path):
    study_make(slug="alpha")
    with pytest.raises(CommandError, match=r"no study 'beta' \(studies: alpha\)"):
        call_command("export_ratings", "beta", "--out", str(tmp_path / "x.csv"))


def test_an_unwritable_target_is_a_clear_error(tmp_path):
    study_make()
    with pytest.raises(CommandError, match="cannot write"):
        call_command("export_ratings", "pilot", "--out", str(tmp_path / "no" / "dir" / "x.csv"))
    with pytest.raises(CommandError, match="is a folder"):
        call_command("export_ratings", "pilot", "--out", str(tmp_path))


def test_it_writes_the_columns_of_the_studys_questionnaire(tmp_path):
    study = study_make()
    document = questionnaire_parse(
        """
name = "two-seven"
[scale]
points = 7
labels = ["1", "2", "3", "4", "5", "6", "7"]
[[dimensions]]
key = "faithfulness"
label = "Faithfulness"
statement = "The explanation reflects how the answer was reached."
[[dimensions]]
key = "clarity"
label = "Clarity"
statement = "The explanation is clearly written."
""",
        source="two-seven.toml",
    )
    study_questionnaire_set(study=study, questionnaire=questionnaire_import(document)[0])
    out = tmp_path / "ratings.csv"
    call_command("export_ratings", "pilot", "--out", str(out))
    header = out.read_text().splitlines()[0]
    assert header == ",".join(ratings_header(("faithfulness", "clarity"), 7))
    assert header.endswith(
        ",faithfulness,clarity,seconds_on_item,attention_failed,excluded,scale_points"
    )
