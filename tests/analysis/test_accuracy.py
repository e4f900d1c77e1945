from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multicomp import pairwise_tukeyhsd

from analysis.accuracy import (
    accuracy_analyse,
    accuracy_anova,
    accuracy_load,
    accuracy_summary,
    accuracy_variants_combine,
)
from analysis.errors import AnalysisError
from analysis.plan import plan_load
from analysis.summary import clean


@pytest.fixture
def runs() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    base = {"mt": 0.0, "cf": 0.02, "mt+cf": 0.05}
    size_gain = {"small": 0.0, "base": 0.08, "large": 0.15}
    for method, m_shift in base.items():
        for size, s_shift in size_gain.items():
            for seed in range(3 + (method == "cf")):  # unbalanced: Type II matters
                bonus = 0.04 if (method == "mt+cf" and size == "large") else 0.0
                rows.append(
                    {
                        "method": method,
                        "size": size,
                        "seed": seed,
                        "accuracy": 0.5 + m_shift + s_shift + bonus + rng.normal(0, 0.01),
                    }
                )
    return pd.DataFrame(rows)


def _rss(formula_terms: str, data: pd.DataFrame) -> tuple[float, int]:
    fit = smf.ols(f"accuracy ~ {formula_terms}", data=data).fit()
    return float(fit.ssr), int(fit.df_resid)


def test_type_two_sums_of_squares_equal_model_comparisons(runs):
    result = accuracy_anova(runs).anova.set_index("source")
    rss_size, _ = _rss("C(size)", runs)
    rss_method, _ = _rss("C(method)", runs)
    rss_additive, _ = _rss("C(method) + C(size)", runs)
    rss_full, df_full = _rss("C(method) * C(size)", runs)
    # Type II: each main effect adjusted for the other; the interaction for both.
    assert result.loc["method", "sum_sq"] == pytest.approx(rss_size - rss_additive)
    assert result.loc["size", "sum_sq"] == pytest.approx(rss_method - rss_additive)
    assert result.loc["method:size", "sum_sq"] == pytest.approx(rss_additive - rss_full)
    f_interaction = (rss_additive - rss_full) / 4 / (rss_full / df_full)
    assert result.loc["method:size", "F"] == pytest.approx(f_interaction)
    assert result.loc["method:size", "p"] == pytest.approx(stats.f.sf(f_interaction, 4, df_full))
    assert result.loc["Residual", "df"] == df_full
    assert result.loc["method:size", "eta_sq_partial"] == pytest.approx(
        (rss_additive - rss_full) / (rss_additive - rss_full + rss_full)
    )


def test_tukey_within_each_size_matches_statsmodels(runs):
    tukey = accuracy_anova(runs).tukey
    assert sorted(tukey["size"].unique()) == ["base", "large", "small"]
    for size in ["base", "large", "small"]:
        at_size = runs[runs["size"] == size]
        reference = pairwise_tukeyhsd(at_size["accuracy"], at_size["method"])
        ours = tukey[tukey["size"] == size]
        assert ours["b"].tolist() == [str(g) for g in reference.group_t]
        assert ours["mean_diff"].to_numpy() == pytest.approx(reference.meandiffs, abs=1e-9)
        assert ours["q"].to_numpy() == pytest.approx(
            reference.meandiffs / reference.std_pairs, abs=1e-9
        )
        assert ours["p_adj"].to_numpy() == pytest.approx(reference.pvalues, abs=1e-9)
        assert ours[["ci_low", "ci_high"]].to_numpy() == pytest.approx(reference.confint, abs=1e-9)


def test_one_run_per_cell_fits_the_additive_model_and_says_so(runs):
    single = runs[runs["seed"] == 0]
    result = accuracy_anova(single)
    assert "method:size" not in set(result.anova["source"])
    assert any("interaction was not tested" in note for note in result.notes)
    assert any(
        "Tukey HSD at size" in note for note in result.notes
    )  # one run per method: no variance


def test_custom_column_names_and_bad_values(runs):
    renamed = runs.rename(columns={"accuracy": "acc", "method": "objective", "size": "student"})
    table = accuracy_anova(renamed, accuracy="acc", method="objective", size="student").anova
    assert table["source"].tolist() == ["objective", "student", "objective:student", "Residual"]
    with pytest.raises(AnalysisError, match="missing the column 'accuracy'"):
        accuracy_anova(renamed)
    broken = runs.astype({"accuracy": object})
    broken.loc[2, "accuracy"] = "n/a"
    with pytest.raises(AnalysisError, match="row 3 has 'n/a'"):
        accuracy_anova(broken)
    infinite = runs.copy()
    infinite.loc[2, "accuracy"] = float("inf")
    with pytest.raises(AnalysisError, match=r"accuracy must be a number; row 3 has 'inf'$"):
        accuracy_anova(infinite)


def test_accuracy_file_errors_are_clear(tmp_path):
    with pytest.raises(AnalysisError, match="accuracy file not found"):
        accuracy_load(tmp_path / "missing.csv")


def test_data_variants_become_part_of_the_method(runs):
    variants = pd.concat(
        [runs.assign(data_variant="original"), runs.assign(data_variant="revised")]
    )
    combined = accuracy_variants_combine(variants)
    assert sorted(combined["method"].unique())[:2] == ["cf:original", "cf:revised"]
    assert (
        accuracy_variants_combine(runs.assign(data_variant="original"))["method"].tolist()
        == runs["method"].tolist()
    )


STUDY_MODELS = ["cf:original", "mt:original", "mt+cf:original", "mt+cf:revised"]


@pytest.fixture
def pipeline_runs() -> pd.DataFrame:
    """accuracy_runs.csv as the pipeline writes it: six seeds of every student."""
    rng = np.random.default_rng(3)
    gain = {"mt": 0.0, "cf": 0.01, "mt+cf": 0.03}
    rows = [
        {
            "model": f"t5-{size}",
            "size": size,
            "method": method,
            "data_variant": variant,
            "seed": seed,
            "accuracy": 0.55
            + shift
            + (0.06 if size == "large" else 0.0)
            + (0.01 if variant == "revised" else 0.0)
            + rng.normal(0, 0.008),
        }
        for size in ("base", "large")
        for method, shift in gain.items()
        for variant in ("original", "revised")
        for seed in range(6)
    ]
    runs = pd.DataFrame(rows)
    # One collapsed run: an outlier of its method × size cell.
    collapsed = (runs["method"] == "cf") & (runs["size"] == "base") & (runs["seed"] == 0)
    runs.loc[collapsed & (runs["data_variant"] == "original"), "accuracy"] = 0.40
    return runs


def _paper_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """The authors' steps done here: four study models, percent, strict 1.5 IQR per cell."""
    data = runs.assign(method=runs["method"] + ":" + runs["data_variant"])
    data = data[data["method"].isin(STUDY_MODELS)].assign(accuracy=lambda d: d["accuracy"] * 100)
    keep = []
    for _, cell in data.groupby(["method", "size"]):
        q1, q3 = np.quantile(cell["accuracy"], [0.25, 0.75], method="linear")
        fence = 1.5 * (q3 - q1)
        keep.append(cell[(cell["accuracy"] >= q1 - fence) & (cell["accuracy"] <= q3 + fence)])
    return pd.concat(keep)


def test_the_paper_accuracy_analysis_matches_statsmodels(pipeline_runs):
    result = accuracy_analyse(pipeline_runs, plan_load("paper").accuracy)
    data = _paper_rows(pipeline_runs)
    assert result.counts == {
        "runs": 72,
        "left_out_methods": 24,
        "outliers": 48 - len(data),
        "analysed": len(data),
    }
    assert result.counts["outliers"] >= 1
    assert sorted(result.runs["method"].unique()) == sorted(STUDY_MODELS)
    assert result.runs["accuracy"].max() > 50  # percent
    expected = anova_lm(smf.ols("accuracy ~ C(method) * C(size)", data=data).fit(), typ=2)
    summary = accuracy_summary(result)
    residual = float(expected.loc["Residual", "sum_sq"])
    for term, name in (
        ("method", "C(method)"),
        ("size", "C(size)"),
        ("method:size", "C(method):C(size)"),
    ):
        entry = summary["anova"][term]
        assert entry["F"] == pytest.approx(expected.loc[name, "F"])
        assert entry["p"] == pytest.approx(expected.loc[name, "PR(>F)"])
        assert entry["df"] == expected.loc[name, "df"]
        ss = float(expected.loc[name, "sum_sq"])
        assert entry["ges"] == pytest.approx(ss / (ss + residual))
    assert summary["residual"]["df"] == expected.loc["Residual", "df"]
    assert sorted(summary["tukey"]) == ["base", "large"]
    for size, pairs in summary["tukey"].items():
        at_size = data[data["size"] == size]
        reference = pairwise_tukeyhsd(at_size["accuracy"], at_size["method"])
        assert [p["mean_diff"] for p in pairs] == pytest.approx(
            np.asarray(reference.meandiffs, dtype=float)
        )
        assert [p["p_adj"] for p in pairs] == pytest.approx(reference.pvalues, abs=1e-9)


def test_the_standard_accuracy_analysis_is_the_previous_one(pipeline_runs):
    result = accuracy_analyse(pipeline_runs, plan_load("standard").accuracy)
    before = accuracy_anova(accuracy_variants_combine(pipeline_runs))
    assert result.counts["analysed"] == 72
    pd.testing.assert_frame_equal(result.anova, before.anova)
    pd.testing.assert_frame_equal(result.tukey, before.tukey)
    assert set(result.runs["method"]) == {
        f"{m}:{v}" for m in ("mt", "cf", "mt+cf") for v in ("original", "revised")
    }


def test_accuracy_settings_refuse_what_they_cannot_use(pipeline_runs):
    paper = plan_load("paper").accuracy
    in_percent = pipeline_runs.assign(accuracy=pipeline_runs["accuracy"] * 100)
    with pytest.raises(
        AnalysisError,
        match=r"^accuracy.scale = 'percent' expects accuracies as proportions from 0 to 1; row 1 has",
    ):
        accuracy_analyse(in_percent, paper)
    without_variants = pipeline_runs.drop(columns="data_variant")
    with pytest.raises(
        AnalysisError,
        match=r"no accuracy run belongs to accuracy.methods \(mt:original, .*\); the runs are of: cf, mt, mt\+cf$",
    ):
        accuracy_analyse(without_variants, paper)
    one_size = pipeline_runs[pipeline_runs["size"] == "base"]
    with pytest.raises(AnalysisError, match="at least two methods and two sizes"):
        accuracy_analyse(one_size, paper)


def test_the_pipeline_writes_the_same_analysis(pipeline_runs, tmp_path):
    from distillation.pipeline import accuracy_anova_write

    rows = pipeline_runs.assign(correct=1, total=2).to_dict("records")
    notes = accuracy_anova_write(rows, tmp_path, plan="paper")
    assert notes[0] == f"accuracy ANOVA (plan paper) written to {tmp_path}"
    written = json.loads((tmp_path / "summary.json").read_text())
    expected = clean(accuracy_summary(accuracy_analyse(pipeline_runs, plan_load("paper").accuracy)))
    assert written["plan"] == {"name": "paper", "sha256": plan_load("paper").sha256}
    assert {k: v for k, v in written.items() if k != "plan"} == expected
    assert set(pd.read_csv(tmp_path / "anova.csv")["source"]) == {
        "method",
        "size",
        "method:size",
        "Residual",
    }
    assert pd.read_csv(tmp_path / "runs.csv").shape[0] == expected["runs"]["analysed"]
    single = accuracy_anova_write(rows[:12], tmp_path / "one", plan="paper")
    assert single == [
        "accuracy ANOVA (plan paper): the accuracy ANOVA needs at least two methods and two "
        "sizes; skipped"
    ]
    assert not (tmp_path / "one").exists()
