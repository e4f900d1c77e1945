"""The questionnaire_import and questionnaire_export commands, create_study --questionnaire,
and freezing a questionnaire version at a study's first participant."""

from __future__ import annotations

import json
import random
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from studyapp.models import Questionnaire, Study
from studyapp.participation.services import participant_start
from studyapp.studies.services import questionnaire_find, questionnaire_import
from studyformats.questionnaire import (
    PLAIN_5,
    questionnaire_from_data,
    questionnaire_parse,
    questionnaire_read,
    questionnaire_toml,
)
from tests.studyapp.participant_pool import study_make

pytestmark = pytest.mark.django_db

FAITH_7 = """\
name = "faith-7"
title = "Faithfulness, helpfulness and clarity"

[scale]
points = 7
labels = {"1" = "Not at all", "7" = "Completely"}

[[dimensions]]
key = "faithfulness"
label = "Faithfulness"
statement = "The explanation reflects how the answer was reached."

[[dimensions]]
key = "helpfulness"
label = "Helpfulness"
statement = "The explanation helps me judge whether the answer is right."
source = "Our pilot study"

[[dimensions]]
key = "clarity"
label = "Clarity"
statement = "The explanation is clearly written."
definition = "Judge the wording, not the content."
"""


def _run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def faith_file(tmp_path: Path) -> Path:
    path = tmp_path / "faith.toml"
    path.write_text(FAITH_7, encoding="utf-8")
    return path


def test_import_stores_the_first_version_and_says_so(faith_file: Path) -> None:
    output = _run("questionnaire_import", str(faith_file))

    stored = Questionnaire.objects.get()
    assert (stored.name, stored.version, stored.frozen_at) == ("faith-7", 1, None)
    assert stored.document.keys == ("faithfulness", "helpfulness", "clarity")
    assert "Stored questionnaire 'faith-7' version 1 (new)." in output


def test_importing_the_same_file_again_changes_nothing(faith_file: Path) -> None:
    _run("questionnaire_import", str(faith_file))
    output = _run("questionnaire_import", str(faith_file))

    assert Questionnaire.objects.count() == 1
    assert "Unchanged: questionnaire 'faith-7' version 1" in output


def test_a_changed_file_updates_an_unfrozen_version(faith_file: Path) -> None:
    _run("questionnaire_import", str(faith_file))
    faith_file.write_text(FAITH_7.replace("clearly written", "clear"), encoding="utf-8")

    output = _run("questionnaire_import", str(faith_file))

    stored = Questionnaire.objects.get()
    assert stored.version == 1
    assert stored.document.dimensions[2].statement == "The explanation is clear."
    assert "Updated questionnaire 'faith-7' version 1" in output


def test_name_stores_the_file_under_another_name(faith_file: Path) -> None:
    output = _run("questionnaire_import", str(faith_file), "--name", "pilot-7")

    assert Questionnaire.objects.get().name == "pilot-7"
    assert Questionnaire.objects.get().document.name == "pilot-7"
    assert "'pilot-7' version 1" in output


def test_a_bad_name_option_is_refused_and_nothing_is_stored(faith_file: Path) -> None:
    with pytest.raises(CommandError, match=r"nothing was stored: --name Pilot 7: name"):
        _run("questionnaire_import", str(faith_file), "--name", "Pilot 7")
    assert not Questionnaire.objects.exists()


def test_export_writes_toml_that_imports_back_to_the_same_document(
    faith_file: Path, tmp_path: Path
) -> None:
    _run("questionnaire_import", str(faith_file))
    exported = _run("questionnaire_export", "faith-7")

    assert questionnaire_parse(exported) == questionnaire_read(faith_file)
    copy = tmp_path / "copy.toml"
    copy.write_text(exported, encoding="utf-8")
    assert "Unchanged" in _run("questionnaire_import", str(copy))
    assert Questionnaire.objects.count() == 1


def test_export_as_json_to_a_file(faith_file: Path, tmp_path: Path) -> None:
    _run("questionnaire_import", str(faith_file))
    target = tmp_path / "out.json"

    output = _run("questionnaire_export", "faith-7@1", "--format", "json", "--output", str(target))

    assert output == ""
    data = json.loads(target.read_text(encoding="utf-8"))
    assert questionnaire_from_data(data) == questionnaire_read(faith_file)


def test_export_of_the_default_stores_and_writes_plain_5() -> None:
    exported = _run("questionnaire_export", "plain-5")

    assert questionnaire_parse(exported) == PLAIN_5
    assert exported == questionnaire_toml(PLAIN_5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", r"no questionnaire 'nope'; stored: .*plain-5"),
        ("plain-5@9", r"no questionnaire 'plain-5@9'"),
        ("plain-5@x", r"the version after '@' is a number"),
        ("faith.toml", r"is a file name; give a stored questionnaire as NAME or NAME@VERSION"),
    ],
)
def test_export_explains_an_unknown_questionnaire(spec: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _run("questionnaire_export", spec)


def test_the_papers_instrument_round_trips_through_import_and_export(
    shared_data: Path, tmp_path: Path
) -> None:
    source = shared_data / "questionnaires" / "hendriks2025-cqa.json"
    original = questionnaire_read(source)

    _run("questionnaire_import", str(source))
    exported_toml = _run("questionnaire_export", original.name)
    exported_json = _run("questionnaire_export", original.name, "--format", "json")

    assert questionnaire_parse(exported_toml, kind="toml") == original
    assert questionnaire_parse(exported_json, kind="json") == original
    for kind, text in (("toml", exported_toml), ("json", exported_json)):
        again = tmp_path / f"again.{kind}"
        again.write_text(text, encoding="utf-8")
        assert "Unchanged" in _run("questionnaire_import", str(again))
    assert Questionnaire.objects.filter(name=original.name).count() == 1


# ---- bad input: one line naming the key or line, and nothing stored ---------------------

DIMENSION = '[[dimensions]]\nkey = "clarity"\nlabel = "Clarity"\nstatement = "It is clear."\n'
SCALE_5 = '[scale]\npoints = 5\nlabels = {"1" = "Low", "3" = "Middle", "5" = "High"}\n'

BAD_FILES = {
    "duplicate key": (
        'name = "bad"\n' + SCALE_5 + DIMENSION + DIMENSION,
        r"dimensions: the key 'clarity' is used more than once",
    ),
    "non-slug key": (
        'name = "bad"\n' + SCALE_5 + DIMENSION.replace('"clarity"', '"Clarity Score"'),
        r"dimensions\[1\]\.key",
    ),
    "no dimensions": ('name = "bad"\ndimensions = []\n' + SCALE_5, r"dimensions"),
    "more than 20 dimensions": (
        'name = "bad"\n'
        + SCALE_5
        + "".join(DIMENSION.replace("clarity", f"d{n}") for n in range(21)),
        r"dimensions",
    ),
    "a one-point scale": (
        'name = "bad"\n[scale]\npoints = 1\nlabels = ["Only"]\n' + DIMENSION,
        r"scale\.points",
    ),
    "a twelve-point scale": (
        'name = "bad"\n[scale]\npoints = 12\nlabels = {"1" = "Low", "12" = "High"}\n' + DIMENSION,
        r"scale\.points",
    ),
    "a check naming a missing label": (
        'name = "bad"\n' + SCALE_5 + '[attention_checks]\nlabels = ["Very high"]\n' + DIMENSION,
        r"attention_checks\.labels names 'Very high', which the scale lacks",
    ),
    "an unknown field": (
        'name = "bad"\ncolour = "red"\n' + SCALE_5 + DIMENSION,
        r"colour",
    ),
    "an unknown field in a dimension": (
        'name = "bad"\n' + SCALE_5 + DIMENSION + "weight = 2\n",
        r"weight",
    ),
    "a TOML syntax error": ('name = "bad\n' + SCALE_5 + DIMENSION, r"not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_bad_file_is_explained_in_one_line_and_nothing_is_stored(
    tmp_path: Path, case: str
) -> None:
    text, message = BAD_FILES[case]
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(CommandError, match=message) as caught:
        _run("questionnaire_import", str(path))

    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"nothing was stored: {path}")
    assert not Questionnaire.objects.exists()


def test_a_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "bad",\n  "scale": {,\n}\n', encoding="utf-8")

    with pytest.raises(CommandError, match=r"line 3: not valid JSON"):
        _run("questionnaire_import", str(path))
    assert not Questionnaire.objects.exists()


def test_a_file_that_is_neither_toml_nor_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("name: q\n", encoding="utf-8")

    with pytest.raises(CommandError, match=r"ends in \.toml or \.json"):
        _run("questionnaire_import", str(path))


# ---- freezing at the first participant ----------------------------------------------------


@pytest.fixture
def faith(faith_file: Path) -> Questionnaire:
    stored, _ = questionnaire_import(questionnaire_read(faith_file))
    return stored


def test_the_first_participant_freezes_the_studys_version(faith: Questionnaire) -> None:
    study = study_make(questionnaire=faith)
    faith.refresh_from_db()
    assert faith.frozen_at is None

    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))

    faith.refresh_from_db()
    assert faith.frozen_at is not None
    first = faith.frozen_at
    participant_start(study=study, prolific_pid="P2", rng=random.Random(2))
    faith.refresh_from_db()
    assert faith.frozen_at == first


def test_a_study_without_a_questionnaire_gets_plain_5_frozen_at_its_first_participant() -> None:
    study = study_make()

    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))

    study.refresh_from_db()
    assert study.questionnaire is not None
    assert (study.questionnaire.name, study.questionnaire.is_frozen) == ("plain-5", True)


def test_importing_a_change_to_a_frozen_version_makes_the_next_version(
    faith: Questionnaire, faith_file: Path
) -> None:
    study = study_make(questionnaire=faith)
    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))
    faith_file.write_text(FAITH_7.replace("clearly written", "clear"), encoding="utf-8")

    output = _run("questionnaire_import", str(faith_file))

    assert "Stored questionnaire 'faith-7' version 2: version 1 is frozen" in output
    faith.refresh_from_db()
    assert faith.document == questionnaire_parse(FAITH_7)
    assert Questionnaire.objects.get(name="faith-7", version=2).frozen_at is None
    study.refresh_from_db()
    assert study.questionnaire_id == faith.pk
    assert questionnaire_find("faith-7").version == 2


# ---- run_distillation's [study] questionnaire ----------------------------------------------

DEMO_EXPLANATIONS = (
    Path(__file__).resolve().parents[2] / "studyapp" / "fixtures" / ("demo_explanations.jsonl")
)


def test_the_study_stage_uses_the_configured_questionnaire_file(faith_file: Path) -> None:
    from distillation.config import StudyConfig
    from distillation.services import study_from_explanations

    config = StudyConfig(slug="staged", live=False, questionnaire=str(faith_file))

    slug = study_from_explanations(DEMO_EXPLANATIONS, config)

    study = Study.objects.get(slug=slug)
    assert study.questionnaire is not None
    assert (study.questionnaire.name, study.questionnaire.version) == ("faith-7", 1)


def test_the_study_stage_names_an_unknown_questionnaire() -> None:
    from distillation.config import StudyConfig
    from distillation.errors import DistillationError
    from distillation.services import study_from_explanations

    with pytest.raises(DistillationError, match=r"study 'staged': no questionnaire 'faith-7'"):
        study_from_explanations(
            DEMO_EXPLANATIONS, StudyConfig(slug="staged", questionnaire="faith-7")
        )
    assert not Study.objects.exists()


def test_a_study_takes_its_number_of_checks_from_the_questionnaire_unless_it_sets_one():
    data = PLAIN_5.as_data()
    data["name"] = "three-checks"
    data["attention_checks"] = {**data["attention_checks"], "count": 3, "first_after": 4}
    stored, _ = questionnaire_import(questionnaire_from_data(data))
    study = study_make(questionnaire=stored)
    assert study.attention_checks is None

    participant = participant_start(study=study, prolific_pid="p1")
    places = sorted(participant.attention_checks.values_list("before_position", flat=True))
    assert len(places) == 3
    assert min(places) >= 5  # never before the questionnaire's first four items

    study.attention_checks = 1
    study.save(update_fields=["attention_checks"])
    assert participant_start(study=study, prolific_pid="p2").attention_checks.count() == 1
