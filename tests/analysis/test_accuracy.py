from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multicomp import pairwise_tukeyhsd

from analysis.accuracy import accuracy_anova, accuracy_load, accuracy_variants_combine
from analysis.errors import AnalysisError


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
    at_large = runs[runs["size"] == "large"]
    reference = pairwise_tukeyhsd(at_large["accuracy"], at_large["method"])
    ours = tukey[tukey["size"] == "large"]
    assert ours["p_adj"].to_numpy() == pytest.approx(
        np.asarray(reference.pvalues, dtype=float), abs=2e-3
    )
    assert ours["mean_diff"].to_numpy() == pytest.approx(
        np.asarray(reference.meandiffs, dtype=float)
    )


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
