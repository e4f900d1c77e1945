from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multicomp import pairwise_tukeyhsd
from statsmodels.stats.multitest import multipletests

from analysis.errors import AnalysisError
from analysis.tests_differences import (
    anova_oneway,
    dunn,
    kruskal,
    levene,
    p_adjust,
    shapiro,
    tukey_hsd,
)


def test_anova_reproduces_r_plantgrowth_reference(plant_growth):
    row = anova_oneway(plant_growth, dv="weight", between="group").iloc[0]
    assert (row["df_between"], row["df_within"]) == (2, 27)
    assert row["F"] == pytest.approx(4.846, abs=5e-4)
    assert row["p"] == pytest.approx(0.0159, abs=5e-5)


def test_anova_matches_scipy_and_eta_squared_from_sums_of_squares(small_study):
    groups = [g["completeness"].to_numpy() for _, g in small_study.groupby("condition")]
    expected = stats.f_oneway(*groups)
    row = anova_oneway(small_study, dv="completeness").iloc[0]
    assert row["F"] == pytest.approx(expected.statistic)
    assert row["p"] == pytest.approx(expected.pvalue)
    values = small_study["completeness"].to_numpy(dtype=float)
    ss_total = ((values - values.mean()) ** 2).sum()
    ss_between = sum(len(g) * (g.mean() - values.mean()) ** 2 for g in groups)
    assert row["eta_sq"] == pytest.approx(ss_between / ss_total)


def test_kruskal_reproduces_r_plantgrowth_reference(plant_growth):
    row = kruskal(plant_growth, dv="weight", between="group").iloc[0]
    assert row["H"] == pytest.approx(7.988, abs=5e-4)
    assert row["df"] == 2
    assert row["p"] == pytest.approx(0.0184, abs=5e-5)
    assert row["epsilon_sq"] == pytest.approx(row["H"] / 29)


def test_kruskal_matches_scipy_with_ties(small_study):
    groups = [g["quality"].to_numpy() for _, g in small_study.groupby("condition")]
    row = kruskal(small_study, dv="quality").iloc[0]
    assert row["H"] == pytest.approx(stats.kruskal(*groups).statistic)


def test_levene_is_the_median_centred_scipy_test(plant_growth):
    groups = [g["weight"].to_numpy() for _, g in plant_growth.groupby("group")]
    expected = stats.levene(*groups, center="median")
    row = levene(plant_growth, dv="weight", between="group").iloc[0]
    assert row["W"] == pytest.approx(expected.statistic)
    assert row["p"] == pytest.approx(expected.pvalue)


def test_shapiro_tests_each_group_and_subsamples_large_ones():
    rng = np.random.default_rng(5)
    data = pd.DataFrame({"condition": ["a"] * 30 + ["b"] * 6000, "x": rng.normal(size=6030)})
    table = shapiro(data, dv="x")
    assert table["n"].tolist() == [30, 6000]
    assert table["n_tested"].tolist() == [30, 5000]
    assert table.loc[0, "W"] == pytest.approx(stats.shapiro(data["x"].to_numpy()[:30]).statistic)


def test_tukey_reproduces_r_tukeyhsd_on_plantgrowth(plant_growth):
    table = tukey_hsd(plant_growth, dv="weight", between="group").set_index(["a", "b"])
    # R: TukeyHSD(aov(weight ~ group, PlantGrowth))
    assert table.loc[("ctrl", "trt1"), "mean_diff"] == pytest.approx(-0.371)
    assert table.loc[("ctrl", "trt1"), "p_adj"] == pytest.approx(0.3908711, abs=1e-4)
    assert table.loc[("ctrl", "trt2"), "p_adj"] == pytest.approx(0.1979960, abs=1e-4)
    assert table.loc[("trt1", "trt2"), "p_adj"] == pytest.approx(0.0120064, abs=1e-4)
    assert table.loc[("trt1", "trt2"), "ci_low"] == pytest.approx(0.1737839, abs=1e-4)
    assert table.loc[("trt1", "trt2"), "ci_high"] == pytest.approx(1.5562161, abs=1e-4)


def test_tukey_matches_statsmodels_with_unequal_groups(small_study):
    data = small_study.iloc[: len(small_study) - 7]
    for dv in ["quality", "completeness"]:
        ours = tukey_hsd(data, dv=dv)
        reference = pairwise_tukeyhsd(data[dv].to_numpy(dtype=float), data["condition"])
        assert ours["a"].tolist() == [str(g) for g in reference.group_c]
        assert ours["b"].tolist() == [str(g) for g in reference.group_t]
        assert ours["mean_diff"].to_numpy() == pytest.approx(reference.meandiffs, abs=1e-9)
        assert ours["q"].to_numpy() == pytest.approx(
            reference.meandiffs / reference.std_pairs, abs=1e-9
        )
        assert ours["p_adj"].to_numpy() == pytest.approx(reference.pvalues, abs=1e-9)
        assert ours["ci_low"].to_numpy() == pytest.approx(reference.confint[:, 0], abs=1e-9)
        assert ours["ci_high"].to_numpy() == pytest.approx(reference.confint[:, 1], abs=1e-9)


def test_tukey_keeps_the_data_order_of_numeric_groups():
    # Groups 10 and 9 sort as numbers (9 before 10), not as the strings "10" < "9".
    data = pd.DataFrame({"g": [10, 10, 10, 9, 9, 9, 11, 11], "x": [1, 2, 3, 4, 5, 6, 2, 4]})
    table = tukey_hsd(data, dv="x", between="g")
    assert list(zip(table["a"], table["b"], strict=True)) == [
        ("9", "10"),
        ("9", "11"),
        ("10", "11"),
    ]
    assert table["mean_diff"].tolist() == pytest.approx([-3.0, -2.0, 1.0])


def test_dunn_matches_a_hand_computation_with_ties():
    data = pd.DataFrame(
        {"condition": ["a"] * 4 + ["b"] * 5 + ["c"] * 3, "x": [1, 2, 2, 3, 2, 3, 4, 4, 5, 5, 5, 6]}
    )
    # Ranked by hand: 1→1, the three 2s→3, the two 3s→5.5, the two 4s→7.5, the three 5s→10, 6→12.
    mean_rank = {
        "a": (1 + 3 + 3 + 5.5) / 4,
        "b": (3 + 5.5 + 7.5 + 7.5 + 10) / 5,
        "c": (10 + 10 + 12) / 3,
    }
    size = {"a": 4, "b": 5, "c": 3}
    n = 12
    ties = (3**3 - 3) + (2**3 - 2) + (2**3 - 2) + (3**3 - 3)
    variance = n * (n + 1) / 12 - ties / (12 * (n - 1))
    table = dunn(data, dv="x").set_index(["a", "b"])
    for a, b in [("a", "b"), ("a", "c"), ("b", "c")]:
        z = (mean_rank[b] - mean_rank[a]) / np.sqrt(variance * (1 / size[a] + 1 / size[b]))
        p = 2 * (1 - stats.norm.cdf(abs(z)))
        assert table.loc[(a, b), "mean_rank_a"] == pytest.approx(mean_rank[a])
        assert table.loc[(a, b), "z"] == pytest.approx(z)
        assert table.loc[(a, b), "p_unc"] == pytest.approx(p)
        assert table.loc[(a, b), "p_adj"] == pytest.approx(min(1.0, 3 * p))
    assert set(table["method"]) == {"dunn-bonferroni"}


def test_dunn_holm_adjusts_the_same_unadjusted_p_values(plant_growth):
    bonferroni = dunn(plant_growth, dv="weight", between="group")
    holm = dunn(plant_growth, dv="weight", between="group", p_adjust_method="holm")
    assert holm["p_unc"].tolist() == bonferroni["p_unc"].tolist()
    expected = multipletests(holm["p_unc"], method="holm")[1]
    assert holm["p_adj"].to_numpy() == pytest.approx(expected)
    assert (holm["p_adj"] <= bonferroni["p_adj"]).all()


@pytest.mark.parametrize("dv", ["completeness", "plausibility", "quality"])
def test_dunn_matches_scikit_posthocs_on_tied_likert_ratings(small_study, dv):
    # Five-point ratings: hundreds of ties. Unequal groups: a few items dropped.
    data = small_study.iloc[: len(small_study) - 5]
    assert data[dv].nunique() < len(data) / 10
    for correction in ("bonferroni", "holm"):
        ours = dunn(data, dv=dv, p_adjust_method=correction)
        unadjusted = sp.posthoc_dunn(data, val_col=dv, group_col="condition")
        adjusted = sp.posthoc_dunn(data, val_col=dv, group_col="condition", p_adjust=correction)
        for row in ours.itertuples(index=False):
            assert row.p_unc == pytest.approx(unadjusted.loc[row.a, row.b], rel=1e-9, abs=1e-12)
            assert row.p_adj == pytest.approx(adjusted.loc[row.a, row.b], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("method", ["bonferroni", "holm"])
def test_p_adjust_matches_statsmodels(method):
    p = [0.001, 0.2, 0.03, 0.04, 0.5, 0.011]
    assert p_adjust(p, method) == pytest.approx(multipletests(p, method=method)[1])


def test_p_adjust_rejects_an_unknown_method():
    with pytest.raises(AnalysisError, match="unknown p-value adjustment 'fdr'"):
        p_adjust([0.1], "fdr")


@pytest.mark.parametrize("test", [anova_oneway, kruskal, levene, tukey_hsd, dunn])
def test_constant_values_get_a_clear_error(test):
    data = pd.DataFrame({"condition": list("aabb"), "x": [3, 3, 3, 3]})
    with pytest.raises(AnalysisError, match=r"^x: "):
        test(data, dv="x")


def test_a_single_group_is_refused():
    data = pd.DataFrame({"condition": list("aaa"), "x": [1, 2, 3]})
    with pytest.raises(AnalysisError, match="at least two groups"):
        anova_oneway(data, dv="x")


def test_levene_without_spread_around_the_medians_is_named():
    data = pd.DataFrame({"condition": list("aabb"), "x": [1, 3, 2, 4]})
    with pytest.raises(AnalysisError, match="equally far from the condition's median"):
        levene(data, dv="x")
