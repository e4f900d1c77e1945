"""The analysis takes its dimensions and scale from the ratings file, not from a fixed list."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from analysis.__main__ import main
from analysis.descriptives import descriptives
from analysis.errors import AnalysisError
from analysis.exclusions import exclusions_apply
from analysis.figures import figure_distributions, figure_means
from analysis.load import ratings_dimensions, ratings_load, ratings_scale_points
from analysis.plan import plan_parse
from analysis.report import report_write
from analysis.simulate import ratings_simulate
from studyformats.ratings import (
    SCALE_POINTS_COLUMN,
    RatingsFormatError,
    header_dimensions,
    ratings_header,
)
from studyformats.summary import summary_problems

KEYS = ("faithfulness", "helpfulness", "clarity")
# Only what the checks below need, so that each report stays quick.
QUICK_PLAN = plan_parse("[regression]\nordinal = false\nmixed = false\n", source="quick")


@pytest.fixture(scope="module")
def seven_point() -> pd.DataFrame:
    return ratings_simulate(
        30,
        dimensions=KEYS,
        scale_points=7,
        effects={"CF:original": {"helpfulness": 1.5}},
        seed=5,
    )


@pytest.fixture(scope="module")
def report(seven_point, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    summary = report_write(seven_point, out)
    return out, summary


def test_the_simulated_file_has_the_columns_of_the_format(seven_point):
    assert tuple(seven_point.columns) == ratings_header(KEYS, 7)
    values = seven_point[list(KEYS)].to_numpy()
    assert values.min() >= 1
    assert values.max() <= 7
    # A 7-point scale is used beyond the five points of the default one.
    assert values.max() > 5


def test_it_loads_the_dimensions_and_scale_of_the_file(seven_point):
    df = ratings_load(seven_point)
    assert ratings_dimensions(df) == KEYS
    assert ratings_scale_points(df) == 7
    assert df["quality"].to_numpy() == pytest.approx(df[list(KEYS)].mean(axis=1).to_numpy())
    assert "plausibility" not in df.columns


def test_a_csv_and_its_frame_load_the_same(seven_point, tmp_path):
    path = tmp_path / "ratings.csv"
    seven_point.to_csv(path, index=False)
    from_csv = ratings_load(path)
    assert ratings_dimensions(from_csv) == KEYS
    assert ratings_scale_points(from_csv) == 7
    pd.testing.assert_frame_equal(from_csv, ratings_load(seven_point), check_dtype=False)


def test_a_value_outside_the_scale_names_row_and_column(seven_point, tmp_path):
    frame = seven_point.copy()
    frame.loc[3, "clarity"] = 8
    with pytest.raises(
        AnalysisError, match=r"^clarity must be a whole number from 1 to 7; row 3 has '8'$"
    ):
        ratings_load(frame)
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(
        AnalysisError, match=r"^clarity must be a whole number from 1 to 7; line 5 has '8'$"
    ):
        ratings_load(path)


def test_a_five_point_file_still_refuses_a_six():
    frame = ratings_simulate(3, seed=0)
    frame.loc[0, "completeness"] = 6
    with pytest.raises(
        AnalysisError, match="completeness must be a whole number from 1 to 5; row 0"
    ):
        ratings_load(frame)


def test_a_six_is_on_a_seven_point_scale_only_when_the_file_says_so(seven_point):
    frame = seven_point.copy()
    frame[list(KEYS)] = frame[list(KEYS)].clip(1, 5)
    frame.loc[0, "clarity"] = 6
    assert ratings_load(frame).loc[0, "clarity"] == 6
    with pytest.raises(AnalysisError, match="clarity must be a whole number from 1 to 5; row 0"):
        ratings_load(frame.drop(columns="scale_points"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (6, r"scale_points must be the same in every row \(row 0 has 7\).*row 2 has '6'"),
        (1, r"scale_points must be a whole number ≥ 2; row 2 has '1'"),
        ("seven", r"scale_points must be a whole number ≥ 2; row 2 has 'seven'"),
    ],
)
def test_a_bad_scale_is_named(seven_point, value, message):
    frame = seven_point.astype({"scale_points": object})
    frame.loc[2, "scale_points"] = value
    with pytest.raises(AnalysisError, match=message):
        ratings_load(frame)


def test_an_old_export_without_character_lengths_still_loads(seven_point, tmp_path):
    path = tmp_path / "old.csv"
    seven_point.drop(columns="explanation_chars").to_csv(path, index=False)
    df = ratings_load(path)
    assert ratings_dimensions(df) == KEYS
    assert "explanation_chars" not in df.columns


def test_an_old_five_dimension_export_keeps_its_five_dimensions(tmp_path):
    path = tmp_path / "old.csv"
    ratings_simulate(4, seed=1).drop(columns="explanation_chars").to_csv(path, index=False)
    df = ratings_load(path)
    assert ratings_dimensions(df) == (
        "plausibility",
        "understandability",
        "completeness",
        "satisfaction",
        "contrastiveness",
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda f: f.drop(columns=list(KEYS)),
            "no dimension columns: there is no column between explanation_chars and seconds_on_item",
        ),
        (
            lambda f: f[[c for c in f.columns if c != "explanation_chars"] + ["explanation_chars"]],
            "the column explanation_chars must come before seconds_on_item",
        ),
        (
            lambda f: f[[*f.columns[:8], "excluded", *KEYS, "seconds_on_item", "attention_failed"]],
            "the column excluded stands among the dimension columns",
        ),
    ],
)
def test_a_file_whose_dimensions_cannot_be_found_is_refused(seven_point, edit, message):
    with pytest.raises(AnalysisError, match=message):
        ratings_load(edit(seven_point))


def test_straight_lining_looks_at_the_files_dimensions(seven_point):
    frame = seven_point.copy()
    first = frame["participant"] == frame["participant"].iloc[0]
    frame.loc[first, list(KEYS)] = 6
    table = exclusions_apply(ratings_load(frame)).table.set_index("rule")
    assert table.loc["straight_lining", "participants"] == 1


def test_figures_span_the_files_scale(seven_point):
    df = ratings_load(seven_point)
    desc = descriptives(df, dvs=[*KEYS, "quality"])
    means = figure_means(desc, scale_points=7).axes[0]
    assert means.get_ylim() == (1, 7)
    assert means.get_ylabel() == "mean rating (1–7) ± SE"
    assert [t.get_text() for t in means.get_xticklabels()] == [*KEYS, "quality"]
    boxes = figure_distributions(df, dims=[*KEYS, "quality"], scale_points=7).axes[0]
    assert boxes.get_ylim() == (0.5, 7.5)


def test_the_report_follows_the_files_dimensions(report):
    out, summary = report
    assert summary_problems(summary) == []
    assert summary["dimensions"] == [*KEYS, "quality"]
    assert summary["input"]["scale_points"] == 7
    for block in ("anova", "kruskal", "levene", "shapiro", "posthoc", "descriptives"):
        assert list(summary[block]) == [*KEYS, "quality"], block
    assert list(summary["regression"]["ordinal"]) == list(KEYS)
    assert summary["anova"]["helpfulness"]["p"] < 0.001
    reliability = summary["reliability"]
    assert set(reliability["loadings"]) == set(KEYS)
    assert 0 < reliability["cronbach_alpha"] < 1
    assert reliability["mcdonald_omega"] is not None
    assert json.loads((out / "summary.json").read_text()) == summary
    descriptives_table = pd.read_csv(out / "tables" / "descriptives.csv")
    assert list(dict.fromkeys(descriptives_table["dimension"])) == [*KEYS, "quality"]


def test_the_report_page_names_the_files_dimensions(report):
    out, _ = report
    soup = BeautifulSoup((out / "report.html").read_text(), "html.parser")
    text = soup.get_text(" ")
    assert "Reliability of the three-dimension scale" in text
    assert "faithfulness, helpfulness, clarity (scale 1–7)" in text
    assert "plausibility" not in text
    assert {p.name for p in (out / "figures").iterdir()} >= {"means.png", "distributions.png"}


def test_the_command_line_analyses_a_three_dimension_file(seven_point, tmp_path, capsys):
    path = tmp_path / "ratings.csv"
    seven_point.to_csv(path, index=False)
    assert main([str(path), "--out", str(tmp_path / "out"), "--plan", "paper"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dimensions"] == [*KEYS, "quality"]
    assert "wrote" in capsys.readouterr().out


def test_reliability_below_its_minimum_is_not_computable(tmp_path):
    two = ratings_simulate(20, dimensions=["faithfulness", "clarity"], seed=2)
    summary = report_write(two, tmp_path / "two", plan=QUICK_PLAN)
    reliability = summary["reliability"]
    assert reliability["cronbach_alpha"] is not None
    assert reliability["mcdonald_omega"] is None
    assert reliability["loadings"] is None
    reasons = {p["what"]: p["reason"] for p in reliability["not_computable"]}
    assert reasons["reliability mcdonald_omega"] == (
        "McDonald's omega (from a one-factor model) needs at least 3 dimensions; these "
        "ratings have 2 (faithfulness, clarity)"
    )

    one = ratings_simulate(20, dimensions=["helpfulness"], scale_points=4, seed=3)
    summary = report_write(one, tmp_path / "one", plan=QUICK_PLAN)
    assert summary["dimensions"] == ["helpfulness", "quality"]
    assert summary["reliability"]["cronbach_alpha"] is None
    reasons = {p["what"]: p["reason"] for p in summary["not_computable"]}
    assert reasons["reliability cronbach_alpha"] == (
        "Cronbach's alpha needs at least 2 dimensions; these ratings have 1 (helpfulness)"
    )
    assert np.isclose(
        summary["descriptives"]["quality"]["CF:original"]["mean"],
        summary["descriptives"]["helpfulness"]["CF:original"]["mean"],
    )


def test_a_plan_naming_a_dimension_as_covariate_is_refused(seven_point, tmp_path):
    plan = plan_parse('[regression]\ncovariates = ["clarity"]\n', source="mine")
    with pytest.raises(
        AnalysisError, match="covariate 'clarity' is a rating dimension of these ratings"
    ):
        report_write(seven_point, tmp_path / "out", plan=plan)
    assert not (tmp_path / "out").exists()
    plan = plan_parse('[regression]\ncovariates = ["plausibility"]\n', source="mine")
    with pytest.raises(
        AnalysisError, match="covariate 'plausibility' is not a column of the ratings"
    ):
        report_write(seven_point, tmp_path / "out", plan=plan)


def test_simulated_effects_must_name_a_dimension():
    with pytest.raises(
        AnalysisError,
        match="effects name unknown dimensions: completeness; dimensions are: faithfulness, helpfulness, clarity",
    ):
        ratings_simulate(3, dimensions=KEYS, effects={"CF:original": {"completeness": 1.0}})
    with pytest.raises(AnalysisError, match="dimension 'quality' has the name of another column"):
        ratings_simulate(3, dimensions=["quality"])


@pytest.mark.parametrize(
    ("keys", "points", "message"),
    [
        ((), 5, "a ratings file needs at least one dimension column"),
        (("clarity", "clarity"), 5, "dimension 'clarity' appears twice"),
        (("excluded",), 5, "dimension 'excluded' has the name of another column"),
        (("scale_points",), 7, "dimension 'scale_points' has the name of another column"),
        (("clarity",), 1, "scale_points must be a whole number of at least 2; got 1"),
    ],
)
def test_a_header_that_breaks_the_format_is_refused(keys, points, message):
    with pytest.raises(RatingsFormatError, match=message):
        ratings_header(keys, points)


def test_a_header_read_back_gives_its_keys():
    for keys, points in ((("clarity",), 2), (KEYS, 5), (KEYS, 11)):
        header = ratings_header(keys, points)
        assert header_dimensions(header) == keys
        assert (SCALE_POINTS_COLUMN in header) == (points != 5)
