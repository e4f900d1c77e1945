from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from bs4 import BeautifulSoup
from scipy import stats

from analysis.errors import AnalysisError
from analysis.html import number, p_value, report_html
from analysis.load import DIMENSIONS, ratings_load
from analysis.report import report_write
from analysis.simulate import ratings_simulate

DVS = [*DIMENSIONS, "quality"]
NULL_DIMENSIONS = ["plausibility", "understandability", "satisfaction", "contrastiveness"]


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    # A known effect on one dimension only: the CF model's explanations are more complete.
    return ratings_simulate(
        60, effects={"CF:original": {"completeness": 0.8}}, seed=4, covariates=True
    )


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        [
            {"method": m, "size": s, "accuracy": 0.4 + 0.05 * i + 0.1 * j + rng.normal(0, 0.01)}
            for i, m in enumerate(["mt", "cf", "mt+cf"])
            for j, s in enumerate([60, 220, 770])
            for _ in range(2)
        ]
    )


@pytest.fixture(scope="module")
def report(ratings, runs, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("report")
    summary = report_write(ratings, out, covariates=("age", "gender"), accuracy=runs)
    return summary, out


def test_the_simulated_effect_is_recovered_on_its_dimension_only(report):
    summary, _ = report
    assert summary["anova"]["completeness"]["p"] < 0.001
    assert summary["kruskal"]["completeness"]["p"] < 0.001
    for dim in NULL_DIMENSIONS:
        assert summary["anova"][dim]["p"] > 0.05, dim
        assert summary["kruskal"][dim]["p"] > 0.05, dim
    dunn = [p for p in summary["posthoc"]["completeness"] if p["method"] == "dunn-bonferroni"]
    assert all((p["p_adj"] < 0.05) == ("CF:original" in (p["a"], p["b"])) for p in dunn)
    ordinal = summary["regression"]["ordinal"]["completeness"]["coef"]
    assert all(
        ordinal[f"condition[T.{c}]"]["estimate"] < 0
        for c in ["MT:original", "MT+CF:original", "MT+CF:revised"]
    )
    assert summary["reference"] == "CF:original"


def test_summary_has_the_design_schema(report):
    summary, out = report
    on_disk = json.loads(
        (out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON")
    )
    assert on_disk == summary
    assert summary["n_participants"] == 60 - sum(r["participants"] for r in summary["exclusions"])
    assert summary["n_ratings"] == 12 * summary["n_participants"]
    assert summary["conditions"] == [
        "CF:original",
        "MT+CF:original",
        "MT+CF:revised",
        "MT:original",
    ]
    assert summary["dimensions"] == DVS
    for dim in DVS:
        assert set(summary["anova"][dim]) == {"F", "df_between", "df_within", "p", "eta_sq"}
        assert set(summary["kruskal"][dim]) == {"H", "df", "p", "epsilon_sq"}
        assert {p["method"] for p in summary["posthoc"][dim]} == {
            "tukey",
            "dunn-bonferroni",
            "dunn-holm",
        }
        assert all(
            {"a", "b", "statistic", "p_adj", "method"} <= set(p) for p in summary["posthoc"][dim]
        )
    ols = summary["regression"]["ols"]
    assert {"formula", "n", "r_squared", "coef"} <= set(ols)
    assert all({"estimate", "se", "p"} <= set(c) for c in ols["coef"].values())
    assert summary["regression"]["ols_covariates"]["coef"]["age"]["se"] > 0


def test_summary_statistics_match_direct_computations(report, ratings):
    summary, _ = report
    kept = ratings_load(ratings)
    kept = kept[kept["attention_failed"] < 2]
    groups = [g["quality"].to_numpy() for _, g in kept.groupby("condition")]
    assert summary["anova"]["quality"]["F"] == pytest.approx(stats.f_oneway(*groups).statistic)
    assert summary["kruskal"]["quality"]["H"] == pytest.approx(stats.kruskal(*groups).statistic)
    expected = smf.ols(
        "quality ~ C(condition, Treatment(reference='CF:original')) + explanation_length", data=kept
    ).fit()
    coef = summary["regression"]["ols"]["coef"]
    assert coef["explanation_length"]["estimate"] == pytest.approx(
        expected.params["explanation_length"]
    )
    assert summary["regression"]["ols"]["r_squared"] == pytest.approx(expected.rsquared)


def test_tables_and_figures_are_written_at_full_precision(report):
    summary, out = report
    anova = pd.read_csv(out / "tables" / "anova.csv").set_index("dimension")
    assert anova.loc["completeness", "F"] == summary["anova"]["completeness"]["F"]
    ols = pd.read_csv(out / "tables" / "regression_ols.csv").set_index("term")
    assert (
        ols.loc["explanation_length", "se"]
        == summary["regression"]["ols"]["coef"]["explanation_length"]["se"]
    )
    expected_tables = {
        "exclusions", "descriptives", "anova", "kruskal", "levene", "shapiro", "tukey", "dunn",
        "regression_ols", "regression_ols_covariates", "regression_mixed", "regression_ordinal",
        "reliability", "factor_loadings", "correlations", "accuracy_anova", "accuracy_tukey", "vda",
    }  # fmt: skip
    assert {p.stem for p in (out / "tables").glob("*.csv")} == expected_tables
    assert {p.stem for p in (out / "figures").glob("*.png")} == {
        "means",
        "distributions",
        "coefficients",
        "interaction",
    }


def _cells(soup: BeautifulSoup, heading: str) -> list[list[str]]:
    table = soup.find(lambda tag: tag.name in ("h2", "h3") and tag.get_text() == heading).find_next(
        "table"
    )
    return [
        [td.get_text() for td in tr.find_all("td")]
        for tr in table.find_all("tr")
        if tr.find_all("td")
    ]


def test_the_html_report_shows_the_same_numbers_rounded(report):
    summary, out = report
    html = (out / "report.html").read_text()
    soup = BeautifulSoup(html, "html.parser")
    rows = {r[0]: r for r in _cells(soup, "Tests of differences between conditions")}
    a, k = summary["anova"]["completeness"], summary["kruskal"]["completeness"]
    assert rows["completeness"][1] == f"F(3, {a['df_within']:g}) = {a['F']:.3f}"
    assert rows["completeness"][2] == "< 0.0001"
    assert rows["satisfaction"][2] == f"{summary['anova']['satisfaction']['p']:.4f}"
    assert rows["completeness"][4] == f"H(3) = {k['H']:.3f}"
    desc = {(r[0], r[1]): r for r in _cells(soup, "Descriptives")}
    d = summary["descriptives"]["completeness"]["CF:original"]
    assert desc[("completeness", "CF:original")][3] == f"{d['mean']:.2f}"
    alpha = _cells(soup, "Reliability of the five-dimension scale")[0]
    assert alpha[1] == f"{summary['reliability']['cronbach_alpha']:.3f}"
    ols_rows = {r[0]: r for r in _cells(soup, "OLS")}
    coef = summary["regression"]["ols"]["coef"]
    assert (
        ols_rows["condition[T.MT:original]"][1]
        == f"{coef['condition[T.MT:original]']['estimate']:.3f}"
    )
    shown = float(ols_rows["explanation_length"][1])
    assert shown == pytest.approx(coef["explanation_length"]["estimate"], abs=5e-4, rel=5e-3)
    assert "nan" not in soup.get_text().lower().split()


def test_the_html_report_embeds_every_figure(report):
    _, out = report
    soup = BeautifulSoup((out / "report.html").read_text(), "html.parser")
    embedded = [img["src"] for img in soup.find_all("img")]
    assert len(embedded) == 4
    for name in ("means", "distributions", "coefficients", "interaction"):
        data = base64.b64encode((out / "figures" / f"{name}.png").read_bytes()).decode()
        assert f"data:image/png;base64,{data}" in embedded
    assert not soup.find_all(["script", "link"])  # self-contained


def test_the_html_report_carries_its_own_content_security_policy(report):
    # Opened from disk, no server sends a policy: the page's own allows inline data only.
    _, out = report
    soup = BeautifulSoup((out / "report.html").read_text(), "html.parser")
    policies = soup.find_all("meta", attrs={"http-equiv": "Content-Security-Policy"})
    assert len(policies) == 1
    directives = dict(
        part.strip().split(" ", 1) for part in policies[0]["content"].split(";") if part.strip()
    )
    assert directives == {
        "default-src": "'none'",
        "img-src": "data:",
        "style-src": "'unsafe-inline'",
    }
    assert soup.head.find("meta", attrs={"http-equiv": True}) is policies[0]


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_csv(p) for p in (out / "tables").glob("*.csv")}


def test_the_html_report_keeps_every_section_and_the_plan_block(report):
    summary, out = report
    soup = BeautifulSoup((out / "report.html").read_text(), "html.parser")
    main = soup.find("main")
    assert [h.get_text() for h in main.find_all("h2")] == [
        "Analysis plan",
        "Exclusions",
        "Descriptives",
        "Tests of differences between conditions",
        "Post-hoc comparisons",
        "Regression",
        "Reliability of the five-dimension scale",
        "Accuracy of the distillation runs",
    ]
    assert [h.get_text() for h in main.find_all("h3")] == [
        "Settings",
        *DVS,
        "OLS",
        "OLS with covariates",
        "Linear mixed model (random intercept per participant)",
        "Ordinal (cumulative logit) model per dimension",
        "Inter-dimension correlations (Pearson)",
        "Two-way ANOVA (Type II)",
        "Tukey HSD between methods within each size",
    ]
    overview = dict(
        [td.get_text() for td in tr.find_all("td")] for tr in main.find("table").tbody("tr")
    )
    assert overview["analysis plan"] == "standard (1 deviation(s))"
    assert overview["participants analysed"] == f"{summary['n_participants']} of 60"
    plan = summary["plan"]
    assert soup.find("code").get_text() == plan["sha256"]
    assert "1 deviation(s) from the plan" in main.get_text()
    assert _cells(soup, "Analysis plan")[0] == [
        "regression.covariates",
        "none",
        "age, gender",
        "covariates",
    ]
    settings = {row[0]: row for row in _cells(soup, "Settings")}
    assert len(settings) == sum(len(values) for values in plan["settings"].values())
    assert settings["tests.posthoc"][1:] == ["tukey, dunn", plan["reasons"]["tests.posthoc"]]
    assert settings["regression.min_clusters"][1] == "30"
    pairs = _cells(soup, "completeness")
    assert len(pairs) == 6
    tukey = pd.read_csv(out / "tables" / "tukey.csv").set_index(["dimension", "a", "b"])
    expected = tukey.loc[("completeness", "CF:original", "MT:original")]
    row = next(r for r in pairs if r[0] == "CF:original vs MT:original")
    assert row[1:4] == [f"{expected['mean_diff']:.3f}", f"{expected['q']:.3f}", "< 0.0001"]
    assert len(row) == 10  # pair, Tukey (3), Dunn (4), Vargha–Delaney (2)
    accuracy = _cells(soup, "Tukey HSD between methods within each size")
    assert len(accuracy) == 9  # three sizes, three pairs each


def test_the_html_report_is_one_accessible_page(report):
    _, out = report
    html = (out / "report.html").read_text()
    # The admin inserts its link back to the dashboard right after this tag.
    assert html.count("<body>") == 1
    soup = BeautifulSoup(html, "html.parser")
    assert soup.html["lang"] == "en"
    assert [m.name for m in soup.body.find_all(recursive=False)] == ["main"]
    assert soup.main.find(True).name == "h1"
    regions = soup.find_all("div", class_="table")
    assert len(regions) == len(soup.find_all("table"))
    labels = [r["aria-label"] for r in regions]
    assert len(set(labels)) == len(labels)
    assert all(r["role"] == "region" and r["tabindex"] == "0" for r in regions)
    assert all(t.parent.get("class") == ["table"] for t in soup.find_all("table"))
    assert all(th["scope"] == "col" and th.get_text() for th in soup.find_all("th"))
    assert all(img["alt"] for img in soup.find_all("img"))


def test_the_html_report_escapes_what_it_shows(report):
    summary, out = report
    changed = json.loads(json.dumps(summary))
    changed["plan"]["description"] = "Mean <b>and</b> rank tests & more"
    changed["not_computable"] = [{"what": "vda quality", "reason": "<script>alert(1)</script>"}]
    changed["vda"]["quality"] = None
    soup = BeautifulSoup(report_html(changed, _tables(out), {}), "html.parser")
    assert not soup.find_all(["b", "script", "img"])
    assert "Mean <b>and</b> rank tests & more" in soup.get_text()
    quality = _cells(soup, "quality")
    assert quality[0][-2:] == ["not computable: <script>alert(1)</script>"] * 2
    assert _cells(soup, "Not computable") == [["vda quality", "<script>alert(1)</script>"]]


@pytest.mark.parametrize(
    ("registered", "verdict"),
    [
        ({"matches": True, "unchanged": True}, "the analysis ran under it unchanged"),
        ({"matches": True, "unchanged": False}, "the analysis deviated from it"),
        ({"matches": False, "unchanged": False}, "this plan has a different hash"),
    ],
)
def test_the_html_report_says_how_the_analysis_relates_to_the_registered_plan(
    report, registered, verdict
):
    summary, out = report
    changed = json.loads(json.dumps(summary))
    changed["plan"]["registered"] = {"sha256": "ab" * 32, **registered}
    changed["plan"]["deviations"] = []
    text = " ".join(
        BeautifulSoup(report_html(changed, _tables(out), {}), "html.parser").get_text().split()
    )
    assert f"Registered plan SHA-256 {'ab' * 32}: {verdict}." in text
    assert "No deviations from the plan." in text


def test_the_html_report_says_when_the_plan_runs_no_tests(report):
    summary, out = report
    changed = json.loads(json.dumps(summary))
    changed.update(anova=None, kruskal=None, levene=None, vda=None)
    changed["plan"]["settings"]["tests"]["posthoc"] = []
    text = BeautifulSoup(report_html(changed, _tables(out), {}), "html.parser").get_text()
    assert "The plan runs no test of differences." in text
    assert "The plan runs no pairwise comparisons." in text


def test_a_constant_dimension_is_reported_as_not_computable(tmp_path):
    ratings = ratings_simulate(16, seed=5).assign(contrastiveness=3)
    summary = report_write(ratings, tmp_path)
    entry = summary["anova"]["contrastiveness"]
    assert entry["F"] is None
    assert (
        entry["not_computable"]
        == "contrastiveness: ANOVA is undefined because ratings do not vary within conditions"
    )
    assert summary["regression"]["ordinal"]["contrastiveness"]["not_computable"].startswith(
        "contrastiveness: the ordinal model"
    )
    assert summary["reliability"]["cronbach_alpha"] is None
    html = (tmp_path / "report.html").read_text()
    assert "not computable: contrastiveness: ANOVA is undefined" in html
    assert "not computable: reliability is undefined because contrastiveness never varies" in html
    # 16 participants: the OLS says why it did not cluster its standard errors.
    shown = BeautifulSoup(html, "html.parser").get_text()
    assert "Only 16 participant clusters, fewer than the plan's minimum of 30" in shown
    assert "nan" not in BeautifulSoup(html, "html.parser").get_text().lower().split()
    json.loads(
        (tmp_path / "summary.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"{c} in JSON"),
    )


def test_a_constant_quality_leaves_the_per_dimension_tests_standing(tmp_path):
    # Every rated item holds each value 1–5 once, rotated: dimensions vary, their mean never does.
    ratings = ratings_simulate(12, seed=6)
    for index, dim in enumerate(DIMENSIONS):
        ratings[dim] = 1 + (ratings["position"] + index) % 5
    summary = report_write(ratings, tmp_path)
    assert summary["anova"]["plausibility"]["F"] is not None
    assert summary["anova"]["quality"]["not_computable"].startswith("quality: ANOVA is undefined")
    assert summary["regression"]["ols"] == {
        "not_computable": "quality: OLS is undefined because every value is 3"
    }
    assert summary["regression"]["mixed"]["not_computable"].startswith(
        "quality: the mixed model is undefined"
    )
    assert summary["reliability"]["cronbach_alpha"] is None
    assert summary["reliability"]["mcdonald_omega"] is None
    assert all(s["normal"] is None for s in summary["shapiro"]["quality"])
    text = BeautifulSoup((tmp_path / "report.html").read_text(), "html.parser").get_text()
    assert "not computable: quality: OLS is undefined because every value is 3" in text
    assert "nan" not in text.lower().split()


@pytest.mark.parametrize(
    ("ratings", "options", "message"),
    [
        (
            ratings_simulate(5, conditions=["CF:original"], seed=0),
            {},
            "needs at least two; found only 'CF:original'",
        ),
        (
            ratings_simulate(5, seed=0).assign(**dict.fromkeys(DIMENSIONS, 3)),
            {},
            "every rating in the data is 3",
        ),
        (
            ratings_simulate(5, seed=0).assign(attention_failed=4),
            {},
            "no ratings are left after exclusions",
        ),
        (
            ratings_simulate(5, seed=0),
            {"reference": "GPT"},
            "reference condition 'GPT' is not in the data",
        ),
        (ratings_simulate(5, seed=0), {"covariates": ["age"]}, "covariate 'age' is not a column"),
    ],
)
def test_degenerate_input_gets_a_clear_message(tmp_path, ratings, options, message):
    with pytest.raises(AnalysisError, match=message):
        report_write(ratings, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_exclusion_options_are_applied_and_recorded(ratings, tmp_path):
    timings: dict[str, float] = {}
    summary = report_write(
        ratings,
        tmp_path,
        drop_outliers=True,
        min_seconds_per_item=19,
        reference="MT:original",
        timings=timings,
    )
    rules = {r["rule"]: r for r in summary["exclusions"]}
    assert rules["too_fast"]["participants"] > 0
    assert summary["options"] == {
        "reference": "MT:original",
        "drop_outliers": True,
        "covariates": [],
        "min_seconds_per_item": 19,
        "attention_fail_threshold": 2,
    }
    assert summary["n_ratings"] == summary["input"]["n_ratings"] - sum(
        r["ratings"] for r in summary["exclusions"]
    )
    assert "condition[T.CF:original]" in summary["regression"]["ols"]["coef"]
    assert set(timings) >= {
        "load",
        "exclusions",
        "differences",
        "ordinal",
        "mixed",
        "figures",
        "write",
    }


def test_numbers_are_rounded_for_reading_and_tiny_ones_keep_their_digits():
    assert number(4.84606) == "4.846"
    assert number(-0.0000352) == "-3.52e-05"
    assert number(0.0) == "0.000"
    assert number(float("nan")) == "not computable"
    assert p_value(0.015939) == "0.0159"
    assert p_value(3e-9) == "< 0.0001"
