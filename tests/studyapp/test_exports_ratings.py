from __future__ import annotations

import csv
import io
import json
import random
from datetime import timedelta

import pandas as pd
import pytest
from bs4 import BeautifulSoup
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from analysis import load as analysis_load
from analysis.__main__ import main as analysis_main
from analysis.load import ratings_load
from studyapp.api.serializers import RatingRowSerializer
from studyapp.exports import (
    RATINGS_COLUMNS,
    RatingsExportError,
    cell_escape,
    participant_pseudonym,
    ratings_export_write,
    ratings_rows,
    ratings_write_csv,
)
from studyapp.importing import explanations_read
from studyapp.models import Assignment, Explanation, Participant, ParticipantDemographics, Rating
from studyapp.participation.queries import participant_current_step
from studyapp.participation.services import RecordOutcome, participant_start, step_mark_shown
from studyapp.studies.services import (
    participant_exclusion_set,
    questionnaire_default,
    questionnaire_import,
    study_create_from_explanations,
    study_questionnaire_set,
)
from studyformats.questionnaire import questionnaire_from_data, questionnaire_parse
from studyformats.ratings import FORMULA_PREFIXES, cell_unescape, ratings_header
from tests.studyapp.participant_pool import (
    CONDITIONS,
    explanation_record,
    rating_record,
    study_make,
)
from tests.studyapp.researcher_data import client_for, participant_finish

pytestmark = pytest.mark.django_db

# The analysis package reads exactly these columns; both sides follow docs/formats.md.
DOCUMENTED_COLUMNS = list(analysis_load.RATINGS_COLUMNS)


def export_csv(study, **options) -> str:
    buffer = io.StringIO()
    ratings_write_csv(study, buffer, **options)
    return buffer.getvalue()


def csv_read(study, **options) -> list[dict[str, str]]:
    buffer = io.StringIO()
    ratings_write_csv(study, buffer, **options)
    return list(csv.DictReader(io.StringIO(buffer.getvalue())))


def test_the_columns_are_those_of_the_design_in_order():
    assert list(RATINGS_COLUMNS) == DOCUMENTED_COLUMNS
    study = study_make()
    participant_finish(study, "P1")
    header = io.StringIO()
    ratings_write_csv(study, header)
    assert header.getvalue().splitlines()[0] == ",".join(DOCUMENTED_COLUMNS)


def test_the_csv_equals_the_database_row_for_row():
    study = study_make()
    finished = [participant_finish(study, f"P{i}", seed=i, fail_checks=i % 2) for i in range(3)]
    participant_finish(study, "half", seed=9, items=5)
    rows = csv_read(study)

    answered = Assignment.objects.filter(
        participant__study=study, answered_at__isnull=False
    ).select_related("participant", "explanation__condition", "question")
    assert len(rows) == answered.count() == 3 * 12 + 5
    by_key = {(row["participant"], int(row["position"])): row for row in rows}
    assert len(by_key) == len(rows)
    for assignment in answered:
        participant = assignment.participant
        row = by_key[(participant_pseudonym(participant.prolific_pid), assignment.position)]
        assert row["study"] == study.slug
        assert row["question_id"] == assignment.question.external_id
        assert row["condition"] == assignment.explanation.condition.name
        assert int(row["explanation_id"]) == assignment.explanation_id
        assert int(row["explanation_length"]) == assignment.explanation.length
        stored = dict(assignment.ratings.values_list("dimension", "value"))
        assert {d: int(row[d]) for d in stored} == stored
        assert float(row["seconds_on_item"]) == pytest.approx(assignment.seconds_on_item)
        assert int(row["attention_failed"]) == participant.attention_failures
        assert row["excluded"] == "false"
    assert Rating.objects.filter(assignment__participant__study=study).count() == 5 * len(rows)
    assert {p.attention_failures for p in finished} == {0, 1}


def test_participants_are_pseudonymised_and_raw_ids_only_on_request():
    study = study_make()
    participant_finish(study, "5f1a2b3c4d5e6f7a8b9c0d1e")
    rows = csv_read(study)
    assert {row["participant"] for row in rows} == {
        participant_pseudonym("5f1a2b3c4d5e6f7a8b9c0d1e")
    }
    assert "5f1a2b3c4d5e6f7a8b9c0d1e" not in str(rows)
    assert "prolific_pid" not in rows[0]

    with_ids = csv_read(study, include_prolific_ids=True)
    assert {row["prolific_pid"] for row in with_ids} == {"5f1a2b3c4d5e6f7a8b9c0d1e"}


def test_the_pseudonym_depends_on_the_salt():
    with override_settings(PSEUDONYM_SALT="salt-one"):
        first = participant_pseudonym("PID")
        assert participant_pseudonym("PID") == first
        assert participant_pseudonym("PID2") != first
    with override_settings(PSEUDONYM_SALT="salt-two"):
        assert participant_pseudonym("PID") != first


def test_excluded_participants_are_flagged_not_dropped():
    study = study_make()
    kept = participant_finish(study, "kept")
    dropped = participant_finish(study, "dropped", seed=1)
    participant_exclusion_set(participant=dropped, excluded=True, reason="straight-lining")
    rows = csv_read(study)
    flags = {row["participant"]: row["excluded"] for row in rows}
    assert flags == {
        participant_pseudonym(kept.prolific_pid): "false",
        participant_pseudonym(dropped.prolific_pid): "true",
    }
    assert len(rows) == 24


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        (-3, "-3"),
        (2.5, "2.5"),
        (True, "true"),
        (None, ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_escaped(value, expected):
    assert cell_escape(value) == expected


def test_formula_cells_from_the_data_are_escaped_in_the_file():
    study = study_make()
    participant = participant_finish(study, "=cmd|'/C calc'!A0")
    ParticipantDemographics.objects.create(participant=participant, country="@evil", sex="-")
    rows = csv_read(study, include_prolific_ids=True)
    assert {row["prolific_pid"] for row in rows} == {"'=cmd|'/C calc'!A0"}
    assert {row["country"] for row in rows} == {"'@evil"}
    assert {row["sex"] for row in rows} == {"'-"}


def test_demographic_covariates_are_joined_per_participant():
    study = study_make()
    first = participant_finish(study, "A", seed=1)
    participant_finish(study, "B", seed=2)
    ParticipantDemographics.objects.create(participant=first, age=34, sex="Female", country="UK")
    rows = csv_read(study)
    assert list(rows[0])[: len(DOCUMENTED_COLUMNS)] == DOCUMENTED_COLUMNS
    # Only the demographic columns that hold a value for someone.
    assert list(rows[0])[len(DOCUMENTED_COLUMNS) :] == ["age", "sex", "country"]
    by_participant = {row["participant"]: row for row in rows}
    a = by_participant[participant_pseudonym("A")]
    b = by_participant[participant_pseudonym("B")]
    assert (a["age"], a["sex"], a["country"]) == ("34", "Female", "UK")
    assert (b["age"], b["sex"], b["country"]) == ("", "", "")


def test_ratings_rows_keep_types_for_data_frames():
    study = study_make()
    participant_finish(study, "A")
    row = ratings_rows(study)[0]
    assert list(row) == DOCUMENTED_COLUMNS
    assert isinstance(row["position"], int)
    assert isinstance(row["excluded"], bool)
    assert isinstance(row["seconds_on_item"], float)


def test_a_study_without_ratings_exports_the_header_only():
    study = study_make()
    Participant.objects.create(study=study, prolific_pid="declined", status="no_consent")
    assert csv_read(study) == []
    assert ratings_rows(study) == []


def test_the_export_of_a_completed_study_loads_into_the_analysis_with_no_row_lost(tmp_path):
    load = analysis_load
    study = study_make()
    for i in range(4):
        participant_finish(study, f"P{i}", seed=i, fail_checks=i % 3)
    path = tmp_path / "ratings.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        written = ratings_write_csv(study, handle)
    frame = load.ratings_load(path)
    assert len(frame) == written == 48
    assert sorted(frame["condition"].unique()) == sorted(
        study.conditions.values_list("name", flat=True)
    )
    assert frame["attention_failed"].tolist().count(2) == 12
    from_rows = load.ratings_load(pd.DataFrame(ratings_rows(study)))
    assert len(from_rows) == 48


def test_the_explanation_length_is_given_in_words_and_then_in_characters():
    lines = [
        json.dumps(
            explanation_record(
                condition,
                q,
                explanation=f"Item {q} — naïve café reasoning 🙂 by {condition}" + " yes" * q,
            )
        )
        for q in range(16)
        for condition in CONDITIONS
    ]
    study = study_create_from_explanations(
        slug="chars", records=explanations_read(lines), live=True
    )
    participant_finish(study, "P1")

    assert RATINGS_COLUMNS.index("explanation_chars") == (
        RATINGS_COLUMNS.index("explanation_length") + 1
    )
    rows = csv_read(study)
    texts = dict(Explanation.objects.values_list("id", "text"))
    assert len(rows) == 12
    for row in rows:
        text = texts[int(row["explanation_id"])]
        assert int(row["explanation_chars"]) == len(text)
        assert int(row["explanation_length"]) == len(text.split())
    assert {type(row["explanation_chars"]) for row in ratings_rows(study)} == {int}


@given(st.text())
def test_escaping_round_trips_and_never_leaves_a_formula(text):
    escaped = cell_escape(text)

    assert cell_unescape(escaped) == text
    assert not escaped.startswith(FORMULA_PREFIXES)


@pytest.mark.django_db
def test_a_condition_named_like_a_formula_reaches_the_analysis_unchanged(tmp_path):
    conditions = ("+MT:x", "-CF:y", "MT+CF:original", "CF:original")
    study = study_make(conditions=conditions)
    for n in range(6):
        participant_finish(study, f"P{n}", seed=n)
    path = tmp_path / "ratings.csv"
    path.write_text(export_csv(study), encoding="utf-8")

    raw = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    loaded = ratings_load(path)

    assert {row["condition"] for row in raw} == {
        "'+MT:x",
        "'-CF:y",
        "MT+CF:original",
        "CF:original",
    }
    assert set(loaded["condition"]) == set(conditions)
    assert set(loaded["condition"]) == set(study.conditions.values_list("name", flat=True))


@pytest.mark.django_db
def test_the_analysis_tables_escape_condition_names_and_keep_numbers(tmp_path):
    study = study_make(conditions=("+MT:x", "-CF:y", "MT+CF:original", "CF:original"))
    for n in range(8):
        participant_finish(study, f"P{n}", seed=n)
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(export_csv(study), encoding="utf-8")
    out = tmp_path / "report"

    assert analysis_main([str(ratings), "--out", str(out), "--plan", "paper"]) == 0

    cells = [
        cell
        for table in (out / "tables").glob("*.csv")
        for row in csv.reader(table.open(encoding="utf-8"))
        for cell in row
    ]
    texts = [cell for cell in cells if cell.startswith(("+", "-", "'"))]
    assert any(cell == "'+MT:x" or cell.startswith("'+MT:x") for cell in texts), texts[:20]
    # Anything left starting with + or - is a number (a negative estimate), never a name.
    for cell in texts:
        if cell.startswith(("+", "-")):
            float(cell)
    # And the tables read back through the analysis's own reader give the names again.
    assert {cell_unescape(c) for c in cells if "MT:x" in c} >= {"+MT:x"}


# -- a study under its own questionnaire ----------------------------------------------------

# Today's header, written out: the default questionnaire must keep it byte for byte.
DEFAULT_HEADER = (
    "participant,study,position,question_id,condition,explanation_id,explanation_length,"
    "explanation_chars,plausibility,understandability,completeness,satisfaction,"
    "contrastiveness,seconds_on_item,attention_failed,excluded"
)
THREE_SEVEN = questionnaire_parse(
    """
name = "three-seven"
[scale]
points = 7
labels = {"1" = "Not at all", "4" = "Somewhat", "7" = "Completely"}
[attention_checks]
count = 2
[[dimensions]]
key = "faithfulness"
label = "Faithfulness"
statement = "The explanation reflects how the answer was reached."
[[dimensions]]
key = "helpfulness"
label = "Helpfulness"
statement = "The explanation helps me judge the answer."
[[dimensions]]
key = "clarity"
label = "Clarity"
statement = "The explanation is clearly written."
""",
    source="three-seven.toml",
)


def study_with(document, *, slug: str = "own"):
    """A live study rated with ``document``, set as a researcher sets it before launch."""
    study = study_make(slug=slug)
    row, _ = questionnaire_import(document)
    study_questionnaire_set(study=study, questionnaire=row)
    study.refresh_from_db()
    return study


def participant_rate(study, pid: str, *, seed: int = 0):
    """Admit ``pid`` and answer every step with the study's questionnaire, checks as told."""
    document = study.questionnaire_document
    now = timezone.now() - timedelta(minutes=30)
    participant = participant_start(study=study, prolific_pid=pid, rng=random.Random(seed), now=now)
    values_rng = random.Random(seed)
    while (step := participant_current_step(participant)) is not None:
        step_mark_shown(step=step, now=now)
        now += timedelta(seconds=7)
        if step.check is not None:
            values = dict.fromkeys(document.keys, step.check.instructed_value)
        else:
            values = {key: values_rng.randint(1, document.scale.points) for key in document.keys}
        outcome = rating_record(
            participant=participant, step_token=step.token, values=values, now=now
        )
        assert outcome is not None
        assert outcome is not RecordOutcome.INVALID, outcome
    participant.refresh_from_db()
    return participant


def test_the_default_questionnaires_header_is_todays_byte_for_byte():
    assert ",".join(RATINGS_COLUMNS) == DEFAULT_HEADER
    implicit = study_make(slug="implicit")
    participant_finish(implicit, "P1")
    explicit = study_make(slug="explicit")
    study_questionnaire_set(study=explicit, questionnaire=questionnaire_default())
    participant_finish(explicit, "P2")
    for study in (implicit, explicit):
        text = export_csv(study)
        assert text.split("\n", 1)[0] == DEFAULT_HEADER
        assert "scale_points" not in text


def test_a_study_under_its_own_questionnaire_exports_its_dimensions_in_order():
    study = study_with(THREE_SEVEN)
    participants = [participant_rate(study, f"P{i}", seed=i) for i in range(2)]
    text = export_csv(study)
    expected = ratings_header(THREE_SEVEN.keys, 7)
    assert text.split("\n", 1)[0] == ",".join(expected)
    assert expected[8:11] == ("faithfulness", "helpfulness", "clarity")
    assert expected[-1] == "scale_points"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 24
    assert {row["scale_points"] for row in rows} == {"7"}
    answered = Assignment.objects.filter(participant__in=participants, answered_at__isnull=False)
    by_key = {(row["participant"], int(row["position"])): row for row in rows}
    seen = set()
    for assignment in answered.select_related("participant"):
        row = by_key[
            (participant_pseudonym(assignment.participant.prolific_pid), assignment.position)
        ]
        stored = dict(assignment.ratings.values_list("dimension", "value"))
        assert set(stored) == set(THREE_SEVEN.keys)
        assert {key: int(row[key]) for key in THREE_SEVEN.keys} == stored
        seen |= set(stored.values())
    # Values beyond the default scale's five points arrive as they were given.
    assert max(seen) > 5
    assert list(ratings_rows(study)[0]) == list(expected)


def test_a_five_point_questionnaire_of_its_own_has_no_scale_column():
    document = questionnaire_from_data(
        {
            **THREE_SEVEN.as_data(),
            "name": "three-five",
            "scale": {"points": 5, "labels": {"1": "Not at all", "3": "Somewhat", "5": "Fully"}},
        }
    )
    study = study_with(document)
    participant_rate(study, "P1")
    header = export_csv(study).split("\n", 1)[0]
    assert header == ",".join(ratings_header(THREE_SEVEN.keys, 5))
    assert "scale_points" not in header


def test_the_export_of_a_three_dimension_study_is_analysed_with_its_dimensions(tmp_path):
    study = study_with(THREE_SEVEN)
    for i in range(4):
        participant_rate(study, f"P{i}", seed=i)
    path = tmp_path / "ratings.csv"
    path.write_text(export_csv(study), encoding="utf-8")
    frame = ratings_load(path)
    assert analysis_load.ratings_dimensions(frame) == THREE_SEVEN.keys
    assert analysis_load.ratings_scale_points(frame) == 7
    out = tmp_path / "report"
    assert analysis_main([str(path), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dimensions"] == [*THREE_SEVEN.keys, "quality"]
    assert summary["input"] == {"n_participants": 4, "n_ratings": 48, "scale_points": 7}


def test_studies_with_different_questionnaires_are_not_exported_together():
    plain = study_make(slug="plain")
    participant_finish(plain, "A")
    own = study_with(THREE_SEVEN, slug="own")
    participant_rate(own, "B")
    buffer = io.StringIO()
    with pytest.raises(RatingsExportError) as raised:
        ratings_export_write([plain, own], buffer)
    assert str(raised.value) == (
        "these studies rate different dimensions or scales and cannot share one ratings file "
        "(plain: plausibility, understandability, completeness, satisfaction, contrastiveness "
        "on 5 points; own: faithfulness, helpfulness, clarity on 7 points); export them one "
        "at a time"
    )
    assert buffer.getvalue() == ""


def test_studies_whose_questionnaires_give_the_same_columns_share_one_file():
    first = study_with(THREE_SEVEN, slug="first")
    reworded = questionnaire_from_data(
        {
            **THREE_SEVEN.as_data(),
            "name": "three-seven-reworded",
            "title": "The same dimensions in other words",
        }
    )
    second = study_with(reworded, slug="second")
    participant_rate(first, "A")
    participant_rate(second, "B", seed=1)
    buffer = io.StringIO()
    assert ratings_export_write([first, second], buffer) == 24
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert list(rows[0]) == list(ratings_header(THREE_SEVEN.keys, 7))
    assert [row["study"] for row in rows] == ["first"] * 12 + ["second"] * 12


def test_the_admin_refuses_a_mixed_export_with_a_message():
    plain = study_make(slug="plain")
    own = study_with(THREE_SEVEN, slug="own")
    researcher = client_for("researcher")
    response = researcher.post(
        reverse("admin:studyapp_study_changelist"),
        {"action": "ratings_export", "_selected_action": [plain.pk, own.pk]},
        follow=True,
    )
    assert response.status_code == 200
    page = BeautifulSoup(response.content, "html.parser")
    messages = [li.get_text().strip() for li in page.select("ul.messagelist li")]
    assert len(messages) == 1
    assert messages[0].startswith("Nothing was exported: these studies rate different dimensions")


def test_the_json_ratings_of_a_study_under_its_own_questionnaire_carry_its_dimensions():
    study = study_with(THREE_SEVEN)
    participant_rate(study, "P0", seed=0)
    rows = ratings_rows(study)
    context = {"questionnaire": study.questionnaire_document}

    served = RatingRowSerializer(rows, many=True, context=context).data

    assert [list(row) for row in served] == [list(row) for row in rows]
    assert json.loads(json.dumps(served)) == json.loads(json.dumps(rows))
    field = RatingRowSerializer(context=context).fields["clarity"]
    assert field.max_value == 7
