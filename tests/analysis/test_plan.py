from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from analysis.errors import AnalysisError
from analysis.plan import PLAN_NAMES, plan_load, plan_override, plan_parse

PLANS_DIR = Path(__file__).resolve().parents[2] / "analysis" / "plans"


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_a_shipped_plan_is_hashed_like_sha256sum(name):
    plan = plan_load(name)
    assert plan.name == name
    assert plan.text == (PLANS_DIR / f"{name}.toml").read_text(encoding="utf-8")
    assert plan.sha256 == hashlib.sha256((PLANS_DIR / f"{name}.toml").read_bytes()).hexdigest()


def test_keys_left_out_take_the_standard_values():
    assert plan_parse("").settings() == plan_load("standard").settings()
    partial = plan_parse('[regression]\nse = "HC3"\n', source="mine.toml")
    assert partial.regression.se == "HC3"
    assert partial.exclusions == plan_load("standard").exclusions
    assert partial.name == "mine"


def test_the_paper_plan_names_the_authors_choices():
    plan = plan_load("paper")
    assert plan.exclusions.researcher
    assert not plan.exclusions.attention
    assert not plan.exclusions.straight_lining
    assert not plan.exclusions.too_fast
    assert plan.outliers.enabled
    assert plan.outliers.applies_to == ("regression",)
    assert plan.outliers.multiplier == 1.5
    assert plan.tests.posthoc == ("dunn",)
    assert plan.tests.corrections == ("bonferroni",)
    assert (plan.tests.posthoc_when, plan.tests.alpha) == ("significant", 0.05)
    assert plan.tests.anova
    assert plan.tests.kruskal
    assert plan.effect_sizes.vargha_delaney
    regression = plan.regression
    assert (regression.reference, regression.length, regression.se) == (
        "CF:original",
        "chars",
        "classical",
    )
    accuracy = plan.accuracy
    assert accuracy.methods == ("mt:original", "cf:original", "mt+cf:original", "mt+cf:revised")
    assert (accuracy.scale, accuracy.outliers, accuracy.interaction) == ("percent", True, True)


def test_every_standard_choice_says_why():
    plan = plan_load("standard")
    unexplained = [
        key for key, value in plan.settings_flat() if key not in plan.reasons and value is not None
    ]
    assert unexplained == []
    assert all(reason.endswith(".") for reason in plan.reasons.values())


def test_a_plan_file_is_loaded_by_path(tmp_path):
    path = tmp_path / "prereg.toml"
    path.write_text('name = "prereg-2026"\n[tests]\nposthoc = ["tukey"]\n', encoding="utf-8")
    plan = plan_load(path)
    assert plan.name == "prereg-2026"
    assert plan.tests.posthoc == ("tukey",)
    assert plan.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert plan_load(str(path)).sha256 == plan.sha256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[tests]\nanvoa = true\n",
            "plan: unknown key 'tests.anvoa'; accepted keys in [tests]: alpha, anova, kruskal, "
            "assumption_checks, posthoc, corrections, posthoc_when",
        ),
        (
            "[statistics]\nalpha = 0.05\n",
            "plan: unknown key 'statistics'; accepted keys: name, description, exclusions, "
            "outliers, tests, effect_sizes, regression, reliability, accuracy, reasons",
        ),
        (
            '[exclusions]\nresearcher = "yes"\n',
            "plan: exclusions.researcher must be true or false; got 'yes'",
        ),
        (
            "[exclusions]\nattention_fail_threshold = 1.5\n",
            "plan: exclusions.attention_fail_threshold must be a whole number ≥ 1; got 1.5",
        ),
        (
            '[regression]\nse = "robust"\n',
            "plan: regression.se must be one of 'classical', 'HC3', 'cluster'; got 'robust'",
        ),
        (
            '[regression]\nlength = "tokens"\n',
            "plan: regression.length must be one of 'words', 'chars'; got 'tokens'",
        ),
        (
            '[tests]\nposthoc = ["dunn", "games-howell"]\n',
            "plan: tests.posthoc must be a list of any of 'tukey', 'dunn'; got 'games-howell'",
        ),
        (
            '[tests]\nposthoc = "dunn"\n',
            "plan: tests.posthoc must be a list of any of 'tukey', 'dunn'; got 'dunn'",
        ),
        ("[tests]\nalpha = 1.5\n", "plan: tests.alpha must be a number > 0 and < 1; got 1.5"),
        (
            "[exclusions]\ntoo_fast = true\n",
            "plan: exclusions.too_fast = true needs exclusions.min_seconds_per_item",
        ),
        (
            '[tests]\nposthoc_when = "significant"\nkruskal = false\n',
            "plan: tests.posthoc_when = 'significant' runs 'dunn' only after a significant "
            "kruskal test, so it needs tests.kruskal = true",
        ),
        (
            '[outliers]\napplies_to = ["regression", "regression"]\n',
            "plan: outliers.applies_to names 'regression' more than once",
        ),
        (
            '[reasons]\n"tests.anvoa" = "because"\n',
            "plan: reasons names 'tests.anvoa', which is not a setting; settings are: "
            "exclusions.researcher,",
        ),
        ("exclusions = 3\n", "plan: exclusions must be a table; got 3"),
        (
            "[tests]\nalpha = \n",
            "plan is not valid TOML: Invalid value (at line 2, column 9)",
        ),
    ],
)
def test_a_bad_plan_gets_one_line_naming_the_key_and_accepted_values(text, message):
    with pytest.raises(AnalysisError) as info:
        plan_parse(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_messages_name_the_plan_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[regression]\nse = 3\n", encoding="utf-8")
    with pytest.raises(AnalysisError, match=rf"^plan {path}: regression.se must be one of"):
        plan_load(path)
    with pytest.raises(AnalysisError, match=r"neither a shipped plan \(paper, standard\) nor an"):
        plan_load(tmp_path / "missing.toml")
    with pytest.raises(AnalysisError, match="is a directory"):
        plan_load(tmp_path)


def test_overrides_that_change_a_setting_are_deviations():
    paper = plan_load("paper")
    used, deviations = plan_override(
        paper,
        reference="MT:original",
        drop_outliers=True,  # the paper plan trims already: no deviation
        covariates=["age", "sex"],
        attention_fail_threshold=1,
        min_seconds_per_item=None,  # not given
    )
    assert [(d.setting, d.plan, d.used, d.option) for d in deviations] == [
        ("regression.reference", "CF:original", "MT:original", "reference"),
        ("regression.covariates", [], ["age", "sex"], "covariates"),
        ("exclusions.attention", False, True, "attention_fail_threshold"),
        ("exclusions.attention_fail_threshold", 2, 1, "attention_fail_threshold"),
    ]
    assert used.regression.covariates == ("age", "sex")
    assert used.exclusions.attention_fail_threshold == 1
    assert (used.name, used.sha256) == (paper.name, paper.sha256)
    assert paper.exclusions.attention is False  # the plan itself is unchanged


def test_overrides_equal_to_the_plan_are_not_deviations():
    standard = plan_load("standard")
    used, deviations = plan_override(
        standard, drop_outliers=False, covariates=[], attention_fail_threshold=2
    )
    assert deviations == []
    assert used == standard


def test_a_bad_override_is_refused_with_the_setting_named():
    with pytest.raises(
        AnalysisError,
        match=r"^exclusions.attention_fail_threshold must be a whole number ≥ 1; got 0$",
    ):
        plan_override(plan_load("standard"), attention_fail_threshold=0)
    with pytest.raises(AnalysisError, match="unknown plan option 'alpha'; options are: reference"):
        plan_override(plan_load("standard"), alpha=0.1)


def test_a_plan_cannot_be_changed_after_parsing():
    plan = plan_load("paper")
    with pytest.raises(ValueError, match="frozen"):
        plan.tests.alpha = 0.1  # type: ignore[misc]


def test_the_docs_describe_every_setting():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text()
    for key, _ in plan_load("standard").settings_flat():
        section, name = key.split(".")
        assert f"[{section}]" in docs, section
        assert f"| `{name}` |" in docs, key
