"""The paper and standard plans on one simulated study, against independent computations."""

from __future__ import annotations

import hashlib
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multicomp import pairwise_tukeyhsd
from statsmodels.stats.multitest import multipletests

from analysis.errors import AnalysisError
from analysis.load import DIMENSIONS
from analysis.plan import plan_load
from analysis.report import report_write
from analysis.simulate import ratings_simulate

DVS = [*DIMENSIONS, "quality"]
REF = "CF:original"
PLANS_DIR = Path(__file__).resolve().parents[2] / "analysis" / "plans"


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    df = ratings_simulate(
        80,
        effects={"CF:original": {"completeness": 0.9, "contrastiveness": 0.6}},
        seed=21,
        covariates=True,
    )
    participants = df["participant"].unique()
    df.loc[df["participant"] == participants[0], "excluded"] = True
    df.loc[df["participant"] == participants[1], list(DIMENSIONS)] = 4  # straight-lining
    df.loc[df["participant"] == participants[2], "attention_failed"] = 2
    # Items far from their condition's typical quality: outliers of the 1.5 × IQR rule.
    others = df["participant"].isin(participants[5:])
    low = df.index[others & (df["condition"] == "MT:original")][:2]
    high = df.index[others & (df["condition"] == "MT+CF:revised")][:2]
    df.loc[low, list(DIMENSIONS)] = 1
    df.loc[high, list(DIMENSIONS)] = 5
    return df


def _with_quality(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(quality=df[list(DIMENSIONS)].mean(axis=1))


def _groups(data: pd.DataFrame, dv: str) -> dict[str, np.ndarray]:
    return {c: g[dv].to_numpy(dtype=float) for c, g in data.groupby("condition")}


def _dunn_by_hand(data: pd.DataFrame, dv: str) -> dict[tuple[str, str], tuple[float, float]]:
    """rstatix's Dunn test: z from mean ranks of the pooled data, tie-corrected, two-sided."""
    groups = _groups(data, dv)
    pooled = np.concatenate(list(groups.values()))
    ranks = stats.rankdata(pooled)
    n = len(pooled)
    _, ties = np.unique(pooled, return_counts=True)
    variance = n * (n + 1) / 12 - (ties**3 - ties).sum() / (12 * (n - 1))
    mean_rank, start = {}, 0
    for name, values in groups.items():
        mean_rank[name] = ranks[start : start + len(values)].mean()
        start += len(values)
    out = {}
    for a, b in combinations(sorted(groups), 2):
        se = np.sqrt(variance * (1 / len(groups[a]) + 1 / len(groups[b])))
        z = (mean_rank[b] - mean_rank[a]) / se
        out[(a, b)] = (z, 2 * stats.norm.sf(abs(z)))
    return out


def _vda_by_counting(x: np.ndarray, y: np.ndarray) -> float:
    return float(
        ((x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum())
        / (len(x) * len(y))
    )


def _trim(data: pd.DataFrame) -> pd.DataFrame:
    """The authors' rule: strictly outside Q1 − 1.5 IQR or Q3 + 1.5 IQR, type-7 quantiles."""
    keep = []
    for _, group in data.groupby("condition"):
        q1, q3 = np.quantile(group["quality"], [0.25, 0.75], method="linear")
        fence = 1.5 * (q3 - q1)
        keep.append(group[(group["quality"] >= q1 - fence) & (group["quality"] <= q3 + fence)])
    return pd.concat(keep).sort_index()


def _pairs(summary: dict, dv: str, method: str) -> dict[tuple[str, str], dict]:
    return {(p["a"], p["b"]): p for p in summary["posthoc"][dv] if p["method"] == method}


@pytest.fixture(scope="module")
def paper(ratings, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("paper")
    return report_write(ratings, out, plan=plan_load("paper")), out


@pytest.fixture(scope="module")
def standard(ratings, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("standard")
    return report_write(ratings, out, plan=plan_load("standard")), out


# -- paper -------------------------------------------------------------------------------------
def test_paper_keeps_every_item_but_the_researchers_exclusions(paper, ratings):
    summary, _ = paper
    kept = ratings[~ratings["excluded"]]
    assert summary["n_ratings"] == len(kept) == len(ratings) - 12
    assert summary["n_participants"] == 79  # the straight-liner and the failed checks stay
    rules = {r["rule"]: r for r in summary["exclusions"]}
    assert rules["researcher"]["participants"] == 1
    for rule in ("attention", "straight_lining", "too_fast"):
        assert rules[rule]["ratings"] == 0
        assert rules[rule]["description"].startswith("not applied")


def test_paper_rank_tests_and_anova_use_all_items(paper, ratings):
    summary, _ = paper
    data = _with_quality(ratings[~ratings["excluded"]])
    for dv in DVS:
        groups = list(_groups(data, dv).values())
        kw = stats.kruskal(*groups)
        assert summary["kruskal"][dv]["H"] == pytest.approx(kw.statistic), dv
        assert summary["kruskal"][dv]["p"] == pytest.approx(kw.pvalue), dv
        assert summary["kruskal"][dv]["epsilon_sq"] == pytest.approx(kw.statistic / (len(data) - 1))
        anova = stats.f_oneway(*groups)
        assert summary["anova"][dv]["F"] == pytest.approx(anova.statistic), dv
        assert summary["anova"][dv]["p"] == pytest.approx(anova.pvalue), dv
    assert summary["anova"]["completeness"]["df_within"] == len(data) - 4


def test_paper_runs_dunn_only_where_kruskal_wallis_is_significant(paper, ratings):
    summary, _ = paper
    data = _with_quality(ratings[~ratings["excluded"]])
    significant = [dv for dv in DVS if stats.kruskal(*_groups(data, dv).values()).pvalue < 0.05]
    assert "completeness" in significant
    assert "plausibility" not in significant
    skipped = {(r["dimension"], r["method"]) for r in summary["posthoc_not_run"]}
    for dv in DVS:
        pairs = _pairs(summary, dv, "dunn-bonferroni")
        if dv not in significant:
            assert summary["posthoc"][dv] == []
            assert (dv, "dunn") in skipped
            continue
        assert {p["method"] for p in summary["posthoc"][dv]} == {"dunn-bonferroni"}
        expected = _dunn_by_hand(data, dv)
        assert set(pairs) == set(expected)
        for pair, (z, p) in expected.items():
            assert pairs[pair]["statistic"] == pytest.approx(z)
            assert pairs[pair]["p"] == pytest.approx(p)
            assert pairs[pair]["p_adj"] == pytest.approx(min(1.0, 6 * p))


def test_paper_dunn_p_values_match_scikit_posthocs(paper, ratings):
    summary, _ = paper
    data = _with_quality(ratings[~ratings["excluded"]])
    raw = scikit_posthocs.posthoc_dunn(data, val_col="completeness", group_col="condition")
    adjusted = scikit_posthocs.posthoc_dunn(
        data, val_col="completeness", group_col="condition", p_adjust="bonferroni"
    )
    for (a, b), pair in _pairs(summary, "completeness", "dunn-bonferroni").items():
        assert pair["p"] == pytest.approx(raw.loc[a, b])
        assert pair["p_adj"] == pytest.approx(adjusted.loc[a, b])


def test_paper_reports_vargha_delaney_a_for_the_dunn_pairs(paper, ratings):
    summary, _ = paper
    data = ratings[~ratings["excluded"]]
    assert set(summary["vda"]) == {dv for dv in DVS if summary["posthoc"][dv]}
    groups = _groups(data, "completeness")
    for pair in summary["vda"]["completeness"]:
        assert pair["A"] == pytest.approx(_vda_by_counting(groups[pair["a"]], groups[pair["b"]]))


def test_paper_ols_uses_characters_on_trimmed_items_with_classical_errors(paper, ratings):
    summary, _ = paper
    data = _with_quality(ratings[~ratings["excluded"]])
    trimmed = _trim(data)
    assert 0 < len(data) - len(trimmed) < 20
    expected = smf.ols(
        f"quality ~ C(condition, Treatment(reference='{REF}')) + explanation_chars", data=trimmed
    ).fit()
    ols = summary["regression"]["ols"]
    assert ols["n"] == len(trimmed)
    assert (ols["se_kind"], ols["plan"]) == ("classical", "paper")
    assert ols["r_squared"] == pytest.approx(expected.rsquared)
    for term, coef in ols["coef"].items():
        name = term.replace("condition[", f"C(condition, Treatment(reference='{REF}'))[")
        assert coef["estimate"] == pytest.approx(expected.params[name]), term
        assert coef["se"] == pytest.approx(expected.bse[name]), term
        assert coef["p"] == pytest.approx(expected.pvalues[name]), term


def test_paper_trims_outliers_for_the_regression_only(paper, ratings):
    summary, _ = paper
    n_all = int((~ratings["excluded"]).sum())
    counts = summary["outliers"]["n_ratings"]
    assert counts["tests"] == counts["descriptives"] == n_all
    assert counts["regression"] == summary["regression"]["ols"]["n"] < n_all
    described = sum(d["n"] for d in summary["descriptives"]["quality"].values())
    assert described == n_all
    outlier = {r["rule"]: r for r in summary["exclusions"]}["outlier"]
    assert outlier["ratings"] == n_all - counts["regression"]
    assert outlier["description"].endswith("left out of: regression")


def test_paper_runs_nothing_the_authors_did_not(paper):
    summary, out = paper
    assert summary["regression"]["ordinal"] is None
    assert summary["regression"]["mixed"] is None
    assert summary["regression"]["ols_covariates"] is None
    assert summary["reliability"] is None
    tables = {p.stem for p in (out / "tables").glob("*.csv")}
    assert "tukey" not in tables
    assert "regression_ordinal" not in tables
    assert {"kruskal", "dunn", "vda", "regression_ols", "anova"} <= tables


def test_paper_summary_states_the_plan(paper):
    summary, out = paper
    plan = summary["plan"]
    assert plan["name"] == "paper"
    assert plan["sha256"] == hashlib.sha256((PLANS_DIR / "paper.toml").read_bytes()).hexdigest()
    assert plan["deviations"] == []
    assert plan["registered"] is None
    assert plan["settings"]["regression"]["length"] == "chars"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Plan <strong>paper</strong>" in html
    assert plan["sha256"] in html
    assert "No deviations from the plan." in html


# -- standard ----------------------------------------------------------------------------------
def _standard_kept(ratings: pd.DataFrame) -> pd.DataFrame:
    data = _with_quality(ratings)
    per = data.groupby("participant")
    values = data[list(DIMENSIONS)]
    straight = (
        values.min(axis=1).groupby(data["participant"]).min()
        == values.max(axis=1).groupby(data["participant"]).max()
    )
    drop = per["excluded"].any() | (per["attention_failed"].max() >= 2) | straight
    return data[~data["participant"].map(drop)]


def test_standard_excludes_inattentive_and_straight_lining_participants(standard, ratings):
    summary, _ = standard
    kept = _standard_kept(ratings)
    assert summary["n_ratings"] == len(kept)
    assert summary["n_participants"] == kept["participant"].nunique() <= 77
    rules = {r["rule"]: r for r in summary["exclusions"]}
    assert rules["straight_lining"]["participants"] == 1
    assert rules["attention"]["participants"] >= 1
    assert summary["plan"]["name"] == "standard"


def test_standard_tests_match_scipy_and_statsmodels(standard, ratings):
    summary, _ = standard
    kept = _standard_kept(ratings)
    for dv in DVS:
        groups = list(_groups(kept, dv).values())
        assert summary["anova"][dv]["F"] == pytest.approx(stats.f_oneway(*groups).statistic)
        assert summary["kruskal"][dv]["H"] == pytest.approx(stats.kruskal(*groups).statistic)
        # Every dimension gets every post-hoc comparison, significant or not.
        tukey = _pairs(summary, dv, "tukey")
        reference = pairwise_tukeyhsd(kept[dv].astype(float), kept["condition"])
        assert [p["p_adj"] for p in tukey.values()] == pytest.approx(
            np.asarray(reference.pvalues, dtype=float), abs=2e-3
        )
        bonferroni = _pairs(summary, dv, "dunn-bonferroni")
        holm = _pairs(summary, dv, "dunn-holm")
        expected = _dunn_by_hand(kept, dv)
        raw = np.array([expected[pair][1] for pair in bonferroni])
        assert [p["statistic"] for p in bonferroni.values()] == pytest.approx(
            [expected[pair][0] for pair in bonferroni]
        )
        assert [p["p_adj"] for p in holm.values()] == pytest.approx(
            multipletests(raw, method="holm")[1]
        )
    assert summary["posthoc_not_run"] == []
    assert set(summary["vda"]) == set(DVS)


def test_standard_ols_uses_words_and_participant_clusters(standard, ratings):
    summary, _ = standard
    kept = _standard_kept(ratings)
    expected = smf.ols(
        f"quality ~ C(condition, Treatment(reference='{REF}')) + explanation_length", data=kept
    ).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(kept["participant"])[0]})
    ols = summary["regression"]["ols"]
    assert (ols["se_kind"], ols["n"]) == ("cluster", len(kept))
    assert ols["coef"]["explanation_length"]["se"] == pytest.approx(
        expected.bse["explanation_length"]
    )
    assert summary["regression"]["mixed"]["n"] == len(kept)
    assert summary["reliability"]["cronbach_alpha"] is not None


# -- registration, deviations and bad input ------------------------------------------------------
def test_the_registered_hash_is_checked(ratings, tmp_path):
    paper = plan_load("paper")
    summary = report_write(ratings, tmp_path / "a", plan=paper, registered_sha256=paper.sha256)
    assert summary["plan"]["registered"] == {
        "sha256": paper.sha256,
        "matches": True,
        "unchanged": True,
    }
    assert "the analysis ran under it unchanged" in (tmp_path / "a" / "report.html").read_text()
    deviated = report_write(
        ratings,
        tmp_path / "b",
        plan=paper,
        registered_sha256=paper.sha256,
        attention_fail_threshold=2,
    )
    assert deviated["plan"]["registered"] == {
        "sha256": paper.sha256,
        "matches": True,
        "unchanged": False,
    }
    other = report_write(ratings, tmp_path / "c", plan=paper, registered_sha256="0" * 64)
    assert other["plan"]["registered"]["matches"] is False


def test_a_flag_that_overrides_the_plan_is_listed_as_a_deviation(ratings, tmp_path):
    summary = report_write(ratings, tmp_path, plan=plan_load("paper"), attention_fail_threshold=2)
    assert summary["plan"]["deviations"] == [
        {
            "setting": "exclusions.attention",
            "plan": False,
            "used": True,
            "option": "attention_fail_threshold",
        }
    ]
    assert summary["n_participants"] < 79
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "1 deviation(s) from the plan" in html
    assert "<td>exclusions.attention</td><td>false</td><td>true</td>" in html


def test_a_reference_equal_to_the_automatic_choice_is_no_deviation(ratings, tmp_path):
    summary = report_write(ratings, tmp_path, reference=REF)
    assert summary["plan"]["deviations"] == []
    assert summary["reference"] == REF


def test_character_length_on_an_old_export_is_refused_before_writing(ratings, tmp_path):
    old = ratings.drop(columns="explanation_chars")
    with pytest.raises(
        AnalysisError,
        match=r"^regression.length = 'chars' needs the column explanation_chars, which these "
        "ratings lack",
    ):
        report_write(old, tmp_path / "out", plan=plan_load("paper"))
    assert not (tmp_path / "out").exists()
    summary = report_write(old, tmp_path / "standard")
    assert "explanation_length" in summary["regression"]["ols"]["coef"]


def test_a_plan_reference_missing_from_the_data_is_refused(ratings, tmp_path):
    renamed = ratings.assign(condition=ratings["condition"].replace({REF: "counterfactual"}))
    with pytest.raises(
        AnalysisError,
        match=r"^regression.reference 'CF:original' of plan 'paper' is not in the data; "
        r"conditions are: MT\+CF:original, MT\+CF:revised, MT:original, counterfactual \(or 'auto'\)$",
    ):
        report_write(renamed, tmp_path / "out", plan=plan_load("paper"))
    assert not (tmp_path / "out").exists()
