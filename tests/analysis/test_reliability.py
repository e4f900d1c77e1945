from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from analysis.errors import AnalysisError
from analysis.reliability import correlations, cronbach_alpha, mcdonald_omega, one_factor_ml


def _one_factor_sample(loadings, n, seed) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=n)
    return pd.DataFrame(
        {
            f"i{k}": lam * factor + np.sqrt(1 - lam**2) * rng.normal(size=n)
            for k, lam in enumerate(loadings)
        }
    )


def test_alpha_equals_hoyts_anova_estimate(small_study):
    items = ["plausibility", "understandability", "completeness", "satisfaction", "contrastiveness"]
    sample = small_study[items].iloc[:40].reset_index(names="person")
    long = sample.melt(id_vars="person", var_name="item", value_name="score")
    table = anova_lm(smf.ols("score ~ C(person) + C(item)", data=long).fit())
    ms_person = table.loc["C(person)", "mean_sq"]
    ms_error = table.loc["Residual", "mean_sq"]
    assert cronbach_alpha(sample, items=items) == pytest.approx(1 - ms_error / ms_person)


def test_three_item_loadings_equal_the_closed_form_solution():
    data = _one_factor_sample([0.8, 0.7, 0.5], 4000, seed=1)
    r = data.corr().to_numpy()
    # With three items the one-factor model is just identified: lambda_i^2 = r_ij r_ik / r_jk.
    expected = [
        np.sqrt(r[0, 1] * r[0, 2] / r[1, 2]),
        np.sqrt(r[0, 1] * r[1, 2] / r[0, 2]),
        np.sqrt(r[0, 2] * r[1, 2] / r[0, 1]),
    ]
    model = one_factor_ml(data, items=list(data.columns))
    assert model["loading"].to_numpy() == pytest.approx(expected, abs=1e-4)
    assert model["uniqueness"].to_numpy() == pytest.approx(1 - np.square(expected), abs=2e-4)


def test_omega_recovers_the_population_value():
    loadings = np.array([0.8, 0.7, 0.6, 0.5, 0.4])
    data = _one_factor_sample(loadings, 20000, seed=2)
    population = loadings.sum() ** 2 / (loadings.sum() ** 2 + (1 - loadings**2).sum())
    assert mcdonald_omega(data, items=list(data.columns)) == pytest.approx(population, abs=0.01)


def test_omega_equals_alpha_for_parallel_items():
    data = _one_factor_sample([0.6] * 5, 20000, seed=3)
    items = list(data.columns)
    assert mcdonald_omega(data, items=items) == pytest.approx(
        cronbach_alpha(data, items=items), abs=0.005
    )


def test_omega_describes_the_raw_sum_score_when_items_differ_in_scale():
    data = _one_factor_sample([0.7, 0.7, 0.7, 0.7], 20000, seed=4)
    scaled = data.assign(i0=data["i0"] * 3)
    items = list(data.columns)
    # Loadings are scale-free, the raw-score omega is not: a noisier-weighted sum is less reliable.
    assert one_factor_ml(scaled, items=items)["loading"].to_numpy() == pytest.approx(
        one_factor_ml(data, items=items)["loading"].to_numpy(), abs=1e-4
    )
    assert mcdonald_omega(scaled, items=items) < mcdonald_omega(data, items=items)


def test_correlations_match_pandas(small_study):
    items = ["plausibility", "completeness", "satisfaction"]
    table = correlations(small_study, items=items)
    spearman = table[table["method"] == "spearman"].pivot(index="a", columns="b", values="r")
    expected = small_study[items].corr(method="spearman")
    assert spearman.loc["plausibility", "completeness"] == pytest.approx(
        expected.loc["plausibility", "completeness"]
    )
    assert len(table) == 2 * len(items) ** 2


def test_a_constant_item_is_named():
    data = pd.DataFrame({"a": [1, 2, 3, 4], "b": [3, 3, 3, 3], "c": [2, 1, 4, 3]})
    with pytest.raises(AnalysisError, match="because b never varies"):
        cronbach_alpha(data, items=["a", "b", "c"])


def test_a_constant_sum_or_a_singular_correlation_matrix_is_named():
    rotated = pd.DataFrame(
        {"a": [1, 2, 3, 1, 2, 3], "b": [2, 3, 1, 2, 3, 1], "c": [3, 1, 2, 3, 1, 2]}
    )
    with pytest.raises(AnalysisError, match="sum of the items never varies"):
        cronbach_alpha(rotated, items=["a", "b", "c"])
    with pytest.raises(AnalysisError, match="correlation matrix is singular"):
        one_factor_ml(rotated, items=["a", "b", "c"])
