"""The create_study management command."""

from __future__ import annotations

import json
import random
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analysis.plan import plan_load
from studyapp.models import Explanation, Questionnaire, Study
from studyapp.participation.services import participant_start
from studyapp.studies.services import questionnaire_import
from studyformats.questionnaire import questionnaire_parse
from tests.studyapp.participant_pool import explanation_lines, explanation_record
from tests.studyapp.test_questionnaires import BAD_FILES, FAITH_7

pytestmark = pytest.mark.django_db


@pytest.fixture
def explanations_file(tmp_path: Path) -> Path:
    path = tmp_path / "explanations.jsonl"
    path.write_text("\n".join(explanation_lines(questions=16)) + "\n", encoding="utf-8")
    return path


def _run(*args: str) -> str:
    out = StringIO()
    call_command("create_study", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_live_study_and_prints_the_prolific_url(explanations_file: Path) -> None:
    output = _run("cqa", "--explanations", str(explanations_file), "--live", "--title", "CQA")

    study = Study.objects.get(slug="cqa")
    assert (study.title, study.status) == ("CQA", Study.Status.LIVE)
    assert "4 conditions, 16 questions, 64 explanations (64 new)" in output
    assert (
        "/s/cqa/?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
        in output
    )


def test_running_it_twice_with_the_same_file_changes_nothing(explanations_file: Path) -> None:
    _run("cqa", "--explanations", str(explanations_file), "--completion-code", "ABC123")
    ids = sorted(Explanation.objects.values_list("id", flat=True))

    output = _run("cqa", "--explanations", str(explanations_file), "--completion-code", "ABC123")

    assert "(0 new)" in output
    assert sorted(Explanation.objects.values_list("id", flat=True)) == ids
    assert Study.objects.get().completion_code == "ABC123"


def test_it_reports_all_bad_lines_and_imports_nothing(tmp_path: Path) -> None:
    lines = explanation_lines(questions=16)
    lines[2] = json.dumps(explanation_record("CF:original", 0, answer="moon"))
    lines[40] = json.dumps(explanation_record("MT:original", 10, explanation=""))
    lines[41] = '{"condition": "CF"}'
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")

    with pytest.raises(CommandError) as caught:
        _run("cqa", "--explanations", str(path))

    message = str(caught.value)
    assert "nothing was imported" in message
    assert "line 3: answer 'moon' is not among the choices" in message
    assert "line 41: the explanation is empty" in message
    assert "line 42: missing field 'question_id'" in message
    assert "line 42: condition 'CF' is not in the format METHOD:variant" in message
    assert not Study.objects.exists()


def test_it_explains_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"cannot read .*missing\.jsonl"):
        _run("cqa", "--explanations", str(tmp_path / "missing.jsonl"))


def test_it_explains_a_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.jsonl"
    path.write_bytes(b"\xff\xfe\x00\x81")

    with pytest.raises(CommandError, match="is not UTF-8 text"):
        _run("cqa", "--explanations", str(path))


def test_it_rejects_a_pool_too_small_and_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join(explanation_lines(questions=5)), encoding="utf-8")

    with pytest.raises(CommandError, match="need at least 12 different questions; the file has 5"):
        _run("cqa", "--explanations", str(path))
    assert not Study.objects.exists()


def test_it_rejects_a_non_positive_items_per_condition(explanations_file: Path) -> None:
    with pytest.raises(CommandError, match="--per-condition must be at least 1"):
        _run("cqa", "--explanations", str(explanations_file), "--per-condition", "0")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad slug!"], "slug: Enter a valid"),
        (["cqa", "--title", "t" * 201], "title: Ensure this value has at most 200 characters"),
    ],
)
def test_it_explains_a_bad_slug_or_title_and_imports_nothing(
    explanations_file: Path, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=f"nothing was imported: {message}"):
        _run(*args, "--explanations", str(explanations_file))
    assert not Study.objects.exists()
    assert not Explanation.objects.exists()


def test_a_file_starting_with_a_byte_order_mark_is_read_as_the_admin_upload_reads_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(explanation_lines(questions=16)).encode())

    _run("cqa", "--explanations", str(path))

    assert Explanation.objects.filter(condition__study__slug="cqa").count() == 64


def test_it_registers_a_shipped_plan_and_freezes_it_when_live(explanations_file: Path) -> None:
    output = _run("cqa", "--explanations", str(explanations_file), "--plan", "paper", "--live")

    study = Study.objects.get(slug="cqa")
    paper = plan_load("paper")
    assert (study.plan_name, study.plan_text, study.plan_sha256) == (
        "paper",
        paper.text,
        paper.sha256,
    )
    assert study.plan_frozen
    assert f"Analysis plan: 'paper' (sha256 {paper.sha256}); frozen since" in output


def test_it_registers_a_plan_file_while_the_study_is_a_draft(
    explanations_file: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "pilot.toml"
    plan_file.write_text('[regression]\nse = "HC3"\n', encoding="utf-8")

    output = _run("cqa", "--explanations", str(explanations_file), "--plan", str(plan_file))

    study = Study.objects.get(slug="cqa")
    assert (study.plan_name, study.plan_text) == ("pilot", '[regression]\nse = "HC3"\n')
    assert not study.plan_frozen
    assert "it can change until the study goes live" in output
    _run("cqa", "--explanations", str(explanations_file), "--plan", "standard")
    assert Study.objects.get(slug="cqa").plan_name == "standard"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[regression]\nse = 'robust'\n", r"regression\.se must be one of 'classical', 'HC3'"),
        ("[regresion]\nse = 'HC3'\n", r"unknown key 'regresion'"),
        ("[regression\n", r"is not valid TOML"),
    ],
)
def test_a_bad_plan_is_explained_and_nothing_is_imported(
    explanations_file: Path, tmp_path: Path, content: str, message: str
) -> None:
    plan_file = tmp_path / "bad.toml"
    plan_file.write_text(content, encoding="utf-8")

    with pytest.raises(CommandError, match=message):
        _run("cqa", "--explanations", str(explanations_file), "--plan", str(plan_file))
    with pytest.raises(CommandError, match="neither a shipped plan"):
        _run("cqa", "--explanations", str(explanations_file), "--plan", "papper")
    assert not Study.objects.exists()


def test_a_frozen_plan_is_refused_a_change(explanations_file: Path) -> None:
    _run("cqa", "--explanations", str(explanations_file), "--plan", "paper", "--live")

    with pytest.raises(
        CommandError, match=r"nothing was imported: study 'cqa' went live on .*'paper'.* is frozen"
    ):
        _run("cqa", "--explanations", str(explanations_file), "--plan", "standard")
    assert Study.objects.get(slug="cqa").plan_name == "paper"
    # Repeating the same command stays harmless.
    assert "(0 new)" in _run("cqa", "--explanations", str(explanations_file), "--plan", "paper")


# ---- --questionnaire ------------------------------------------------------------------------


@pytest.fixture
def faith_file(tmp_path: Path) -> Path:
    path = tmp_path / "faith.toml"
    path.write_text(FAITH_7, encoding="utf-8")
    return path


@pytest.fixture
def faith() -> Questionnaire:
    return questionnaire_import(questionnaire_parse(FAITH_7))[0]


def test_create_study_takes_a_questionnaire_file(explanations_file: Path, faith_file: Path) -> None:
    output = _run(
        "cqa",
        "--explanations",
        str(explanations_file),
        "--questionnaire",
        str(faith_file),
    )

    study = Study.objects.get(slug="cqa")
    assert study.questionnaire is not None
    assert (study.questionnaire.name, study.questionnaire.version) == ("faith-7", 1)
    assert "Questionnaire: faith-7 v1 (3 dimensions, 7-point scale)." in output


def test_create_study_takes_a_stored_name_and_version(
    explanations_file: Path, faith: Questionnaire
) -> None:
    _run(
        "cqa",
        "--explanations",
        str(explanations_file),
        "--questionnaire",
        "faith-7@1",
    )

    assert Study.objects.get(slug="cqa").questionnaire_id == faith.pk


def test_create_study_refuses_an_unknown_questionnaire_and_imports_nothing(
    explanations_file: Path,
) -> None:
    with pytest.raises(CommandError, match=r"no questionnaire 'faith-7'"):
        _run(
            "cqa",
            "--explanations",
            str(explanations_file),
            "--questionnaire",
            "faith-7",
        )
    assert not Study.objects.exists()


def test_create_study_refuses_a_bad_questionnaire_file_and_stores_nothing(
    explanations_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_FILES["duplicate key"][0], encoding="utf-8")

    with pytest.raises(CommandError, match=r"the key 'clarity' is used more than once"):
        _run(
            "cqa",
            "--explanations",
            str(explanations_file),
            "--questionnaire",
            str(bad),
        )
    assert not Study.objects.exists()
    assert not Questionnaire.objects.exists()


def test_create_study_refuses_another_questionnaire_once_there_are_participants(
    explanations_file: Path, faith: Questionnaire
) -> None:
    _run("cqa", "--explanations", str(explanations_file))
    study = Study.objects.get(slug="cqa")
    study.status = Study.Status.LIVE
    study.save()
    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))

    with pytest.raises(CommandError, match=r"already has participants; its questionnaire"):
        _run(
            "cqa",
            "--explanations",
            str(explanations_file),
            "--questionnaire",
            "faith-7",
        )
    study.refresh_from_db()
    assert study.questionnaire is not None
    assert study.questionnaire.name == "plain-5"


def test_a_good_questionnaire_file_is_not_stored_when_the_explanations_are_bad(
    tmp_path: Path, faith_file: Path
) -> None:
    explanations = tmp_path / "bad.jsonl"
    explanations.write_text('{"condition": "MT:original"}\n', encoding="utf-8")

    with pytest.raises(CommandError, match="nothing was imported"):
        _run("cqa", "--explanations", str(explanations), "--questionnaire", str(faith_file))
    assert not Study.objects.exists()
    assert not Questionnaire.objects.exists()
