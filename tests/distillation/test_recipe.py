from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from distillation.config import run_config_from_dict, run_config_load
from distillation.recipe import PAPER_RECIPE, recipe_deviations, recipe_lines

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "paper-cqa.toml"


def _paper(**training) -> dict:
    table = tomllib.loads(PAPER.read_text(encoding="utf-8"))
    table["training"].update(training)
    return table


def _load(table: dict):
    return run_config_from_dict(table, base_dir=ROOT)


def test_the_paper_config_follows_the_paper_recipe():
    config = run_config_load(PAPER, base_dir=ROOT)
    assert recipe_deviations(config) == []
    assert recipe_lines(config)[-1] == "Differences from the paper's recipe: none"


def test_the_demo_config_lists_what_it_does_differently():
    config = run_config_load(ROOT / "configs" / "demo.toml", base_dir=ROOT)
    keys = [deviation.key for deviation in recipe_deviations(config)]
    assert keys == [
        "students.model",
        "students.method × data_variant",
        "students.seeds",
        "training.steps",
        "training.batch_size",
        "training.learning_rate",
        "training.max_input_length",
        "training.max_target_length",
        "training.factual_explanation",
        "training.explanation_max_new_tokens",
        "training.max_truncated_fraction",
        "data.train_limit",
        "analysis.plan",
    ]


def test_higher_generation_caps_stay_on_the_recipe_but_lower_ones_do_not():
    assert recipe_deviations(_load(_paper(explanation_max_new_tokens=1024))) == []
    (lower,) = recipe_deviations(_load(_paper(explanation_max_new_tokens=256)))
    assert lower.line() == (
        "training.explanation_max_new_tokens = 256 (paper: at least 512; above the 300-token "
        "targets, so that no explanation is cut)"
    )


@pytest.mark.parametrize(
    ("training", "line"),
    [
        ({"beta": 0.3}, "training.beta = 0.3 (paper: 0.5; CF: factual and counterfactual"),
        ({"selection": "best_validation"}, "training.selection = 'best_validation' (paper: 'last'"),
        ({"batch_size": 32, "per_device_batch_size": 8}, "training.batch_size = 32 (paper: 64"),
        ({"max_target_length": 256}, "training.max_target_length = 256 (paper: 300"),
    ],
)
def test_each_changed_setting_is_one_deviation(training, line):
    (deviation,) = recipe_deviations(_load(_paper(**training)))
    assert deviation.line().startswith(line)


def test_students_are_compared_as_a_whole():
    table = _paper()
    table["students"] = [s for s in table["students"] if s["method"] != "cf"]
    for student in table["students"]:
        student["seeds"] = [0, 1, 2]
        student.pop("study_seed", None)
    lines = [deviation.line() for deviation in recipe_deviations(_load(table))]
    assert lines == [
        "students.method × data_variant: missing cf original, cf revised (MT, CF and MT+CF on "
        "original and revised explanations)",
        "students.seeds = [[0, 1, 2]] (paper: [[0, 1, 2, 3, 4, 5]]; six runs a cell)",
    ]


def test_the_per_device_split_is_not_part_of_the_recipe():
    # How the 64 examples are spread over passes changes memory, not what is learnt.
    assert recipe_deviations(_load(_paper(per_device_batch_size=64))) == []
    assert "training.per_device_batch_size" not in {entry.key for entry in PAPER_RECIPE}
