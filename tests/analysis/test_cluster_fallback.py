"""Cluster-robust standard errors with few participants: the plan's stated fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup

from analysis.errors import AnalysisError
from analysis.load import ratings_load
from analysis.plan import plan_load, plan_parse
from analysis.regression import ols_fit
from analysis.report import report_write
from analysis.simulate import ratings_simulate

REF = "CF:original"


@pytest.fixture(scope="module")
def few() -> pd.DataFrame:
    return ratings_load(ratings_simulate(6, seed=3))


@pytest.fixture(scope="module")
def many() -> pd.DataFrame:
    return ratings_load(ratings_simulate(30, seed=3))


def test_the_shipped_plans_state_the_fallback() -> None:
    for name in ("paper", "standard"):
        regression = plan_load(name).regression
        assert (regression.min_clusters, regression.se_fallback) == (30, "HC3")


def test_below_the_minimum_the_fallback_is_used_and_said(few: pd.DataFrame) -> None:
    fit = ols_fit(few, reference=REF, min_clusters=30, se_fallback="HC3")
    hc3 = ols_fit(few, reference=REF, se="HC3")

    assert fit.stats["se_kind"] == "HC3"
    assert fit.stats["se_fallback"] == {
        "requested": "cluster",
        "used": "HC3",
        "clusters": 6,
        "min_clusters": 30,
    }
    assert fit.coef["se"].tolist() == pytest.approx(hc3.coef["se"].tolist())
    assert fit.warnings[0].startswith("Only 6 participant clusters, fewer than the plan's minimum")
    assert "instead of cluster-robust: 6 clusters < 30" in fit.stats["cov_type"]


def test_the_classical_fallback_gives_classical_errors(few: pd.DataFrame) -> None:
    fit = ols_fit(few, reference=REF, min_clusters=30, se_fallback="classical")
    classical = ols_fit(few, reference=REF, se="classical")

    assert fit.stats["se_kind"] == "classical"
    assert fit.coef["se"].tolist() == pytest.approx(classical.coef["se"].tolist())


def test_at_the_minimum_the_errors_stay_cluster_robust(many: pd.DataFrame) -> None:
    fit = ols_fit(many, reference=REF, min_clusters=30, se_fallback="HC3")

    assert fit.stats["se_kind"] == "cluster"
    assert "se_fallback" not in fit.stats
    assert not any(w.startswith("Only ") for w in fit.warnings)


def test_plans_without_cluster_errors_are_unaffected(few: pd.DataFrame) -> None:
    fit = ols_fit(few, reference=REF, se="classical", min_clusters=30, se_fallback="HC3")

    assert fit.stats["se_kind"] == "classical"
    assert "se_fallback" not in fit.stats


def test_an_unknown_fallback_is_refused(few: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="unknown fallback standard errors 'cluster'"):
        ols_fit(few, reference=REF, se_fallback="cluster")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[regression]\nmin_clusters = 1", "regression.min_clusters"),
        ('[regression]\nse_fallback = "cluster"', "regression.se_fallback must be one of"),
    ],
)
def test_bad_fallback_settings_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        plan_parse(text)


def test_the_report_and_summary_say_so_under_the_standard_plan(
    few: pd.DataFrame, tmp_path: Path
) -> None:
    summary = report_write(few, tmp_path, plan=plan_load("standard"))

    ols = summary["regression"]["ols"]
    assert ols["se_kind"] == "HC3"
    assert ols["se_fallback"]["clusters"] == 6
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["regression"]["ols"]["se_fallback"]["used"] == "HC3"
    shown = BeautifulSoup((tmp_path / "report.html").read_text(), "html.parser").get_text()
    assert "fewer than the plan's minimum of 30" in shown
