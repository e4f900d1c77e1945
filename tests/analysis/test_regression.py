from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.regression.mixed_linear_model import MixedLM

from analysis.errors import AnalysisError
from analysis.load import ratings_load
from analysis.regression import (
    condition_term,
    mixed_fit,
    ols_fit,
    ordinal_fit,
    random_intercept_reml,
    regression_design,
)
from analysis.simulate import ratings_simulate

REF = "CF:original"


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return ratings_load(
        ratings_simulate(
            60,
            effects={"MT:original": {"completeness": -0.8, "plausibility": -0.4}},
            seed=4,
            covariates=True,
        )
    )


def _patsy_term(term: str) -> str:
    if term.startswith("condition[T."):
        return f"C(condition, Treatment(reference='{REF}'))[T.{term[len('condition[T.') : -1]}]"
    return term


def test_ols_matches_statsmodels_formula_with_participant_clusters(study):
    fit = ols_fit(study, reference=REF)
    expected = smf.ols(
        f"quality ~ C(condition, Treatment(reference='{REF}')) + explanation_length", data=study
    ).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(study["participant"])[0]})
    coef = fit.coef.set_index("term")
    for term in coef.index:
        assert coef.loc[term, "estimate"] == pytest.approx(expected.params[_patsy_term(term)])
        assert coef.loc[term, "se"] == pytest.approx(expected.bse[_patsy_term(term)])
        assert coef.loc[term, "p"] == pytest.approx(expected.pvalues[_patsy_term(term)])
    assert fit.stats["r_squared"] == pytest.approx(expected.rsquared)
    assert fit.n == len(study)
    assert "60 clusters" in str(fit.stats["cov_type"])
    assert fit.formula.startswith("quality ~ C(condition, Treatment(reference='CF:original'))")


def test_ols_adds_numeric_and_text_covariates_like_patsy(study):
    fit = ols_fit(study, reference=REF, covariates=["age", "gender"])
    expected = smf.ols(
        f"quality ~ C(condition, Treatment(reference='{REF}')) + explanation_length + age + C(gender)",
        data=study,
    ).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(study["participant"])[0]})
    coef = fit.coef.set_index("term")
    assert coef.loc["age", "estimate"] == pytest.approx(expected.params["age"])
    assert coef.loc["gender[T.male]", "se"] == pytest.approx(expected.bse["C(gender)[T.male]"])
    assert coef.loc["gender[T.other]", "estimate"] == pytest.approx(
        expected.params["C(gender)[T.other]"]
    )


def test_rows_with_a_missing_covariate_are_left_out_and_counted(study):
    data = study.copy()
    data["age"] = data["age"].astype(object)
    data.loc[:4, "age"] = ""
    fit = ols_fit(data, reference=REF, covariates=["age"])
    assert fit.n == len(data) - 5
    assert fit.stats["rows_dropped_missing_covariates"] == 5


def test_unknown_or_constant_terms_are_named(study):
    with pytest.raises(
        AnalysisError, match=r"covariate 'income' is not a column.*extra columns are: age, gender"
    ):
        ols_fit(study, reference=REF, covariates=["income"])
    data = study.assign(country="UK")
    with pytest.raises(AnalysisError, match="single value"):
        ols_fit(data, reference=REF, covariates=["country"])
    with pytest.raises(AnalysisError, match="reference condition 'nope'"):
        regression_design(study, reference="nope")


def test_ordinal_model_on_distinct_rows_equals_the_model_on_every_rating(study):
    fit = ordinal_fit(study, dv="completeness", reference=REF)
    design, _, _ = regression_design(study, reference=REF)
    exog = design.drop(columns="Intercept")
    endog = pd.Series(pd.Categorical(study["completeness"], ordered=True))
    full = OrderedModel(endog, exog, distr="logit").fit(method="bfgs", disp=False, maxiter=500)
    coef = fit.coef.set_index("term")
    for term in exog.columns:
        assert coef.loc[term, "estimate"] == pytest.approx(full.params[term], abs=1e-4)
        assert coef.loc[term, "se"] == pytest.approx(full.bse[term], rel=1e-3)
    assert fit.stats["converged"] is True
    assert fit.stats["distinct_rows"] < len(study)
    assert fit.n == len(study)
    cuts = list(fit.stats["thresholds"].values())  # type: ignore[union-attr]
    assert cuts == sorted(cuts)
    assert cuts == pytest.approx(full.model.transform_threshold_params(full.params)[1:-1], abs=1e-3)


def test_ordinal_model_finds_the_simulated_effect(study):
    coef = ordinal_fit(study, dv="completeness", reference=REF).coef.set_index("term")
    assert coef.loc[condition_term("MT:original"), "estimate"] < 0
    assert coef.loc[condition_term("MT:original"), "p"] < 0.01


def test_ordinal_model_refuses_a_constant_dimension(study):
    with pytest.raises(AnalysisError, match="at least two different ratings"):
        ordinal_fit(study.assign(completeness=4), dv="completeness", reference=REF)


def test_profiled_reml_equals_statsmodels_mixedlm_from_a_cold_start(study):
    design, _, _ = regression_design(study, reference=REF)
    y = study["quality"].to_numpy()
    beta, group_var, resid_var = random_intercept_reml(
        y, design.to_numpy(), study["participant"].to_numpy()
    )
    cold = MixedLM(y, design, groups=study["participant"].to_numpy()).fit(reml=True)
    assert beta == pytest.approx(np.asarray(cold.fe_params), abs=1e-5)
    assert group_var == pytest.approx(float(np.asarray(cold.cov_re)[0, 0]), rel=1e-3)
    assert resid_var == pytest.approx(cold.scale, rel=1e-4)


def test_mixed_model_reports_mixedlm_estimates_and_variance_components(study):
    fit = mixed_fit(study, reference=REF)
    design, _, _ = regression_design(study, reference=REF)
    cold = MixedLM(study["quality"].to_numpy(), design, groups=study["participant"].to_numpy()).fit(
        reml=True
    )
    coef = fit.coef.set_index("term")
    assert coef["estimate"].to_numpy() == pytest.approx(np.asarray(cold.fe_params), abs=1e-5)
    assert coef["se"].to_numpy() == pytest.approx(np.asarray(cold.bse_fe), rel=1e-3)
    assert fit.stats["converged"] is True
    assert fit.stats["groups"] == 60
    icc = fit.stats["group_variance"] / (
        fit.stats["group_variance"] + fit.stats["residual_variance"]
    )  # type: ignore[operator]
    assert fit.stats["icc"] == pytest.approx(icc)
    assert fit.formula.endswith("+ (1 | participant)")


def test_models_of_a_constant_outcome_or_single_rating_participants_are_refused(study):
    with pytest.raises(AnalysisError, match="quality: OLS is undefined because every value is 3"):
        ols_fit(study.assign(quality=3.0), reference=REF)
    with pytest.raises(AnalysisError, match="quality: the mixed model is undefined"):
        mixed_fit(study.assign(quality=3.0), reference=REF)
    one_each = study.assign(participant=[f"x{i}" for i in range(len(study))])
    with pytest.raises(AnalysisError, match="two or more ratings"):
        mixed_fit(one_each, reference=REF)


@pytest.mark.parametrize(
    ("se", "fit_options"),
    [
        ("classical", {}),
        ("HC3", {"cov_type": "HC3"}),
        ("cluster", {"cov_type": "cluster"}),
    ],
)
def test_each_kind_of_standard_error_matches_statsmodels(study, se, fit_options):
    if se == "cluster":
        fit_options = {**fit_options, "cov_kwds": {"groups": pd.factorize(study["participant"])[0]}}
    expected = smf.ols(
        f"quality ~ C(condition, Treatment(reference='{REF}')) + explanation_chars", data=study
    ).fit(**fit_options)
    fit = ols_fit(study, reference=REF, length="explanation_chars", se=se)
    coef = fit.coef.set_index("term")
    for term in coef.index:
        assert coef.loc[term, "estimate"] == pytest.approx(expected.params[_patsy_term(term)])
        assert coef.loc[term, "se"] == pytest.approx(expected.bse[_patsy_term(term)]), term
        assert coef.loc[term, "p"] == pytest.approx(expected.pvalues[_patsy_term(term)]), term
    assert fit.stats["se_kind"] == se
    assert fit.formula.endswith("+ explanation_chars")


def test_the_three_kinds_of_standard_error_differ(study):
    ses = {
        se: ols_fit(study, reference=REF, se=se)
        .coef.set_index("term")
        .loc["explanation_length", "se"]
        for se in ("classical", "HC3", "cluster")
    }
    assert len(set(ses.values())) == 3


def test_cluster_errors_with_one_cluster_fall_back_to_classical(study):
    fit = ols_fit(study.assign(participant="one"), reference=REF, se="cluster")
    classical = ols_fit(study, reference=REF, se="classical")
    assert fit.stats["se_kind"] == "classical"
    assert fit.stats["cov_type"] == "classical (one cluster or none)"
    assert fit.coef["se"].tolist() == pytest.approx(classical.coef["se"].tolist())
    with pytest.raises(AnalysisError, match="unknown standard errors 'robust'"):
        ols_fit(study, reference=REF, se="robust")
