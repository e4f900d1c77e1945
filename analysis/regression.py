"""Regression of ratings on condition: OLS, ordinal (cumulative logit) and linear mixed models.

All models share one design: treatment-coded condition dummies against a reference
condition plus explanation length (in words, ``explanation_length``, or characters,
``explanation_chars``); OLS can add demographic covariates. Coefficient tables
are tidy DataFrames with the columns ``term, estimate, se, statistic, p, ci_low, ci_high``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

from analysis.errors import AnalysisError
from analysis.load import QUALITY, ratings_dimensions
from studyformats.ratings import ITEM_COLUMNS, RESPONSE_COLUMNS, SCALE_POINTS_COLUMN

COEF_COLUMNS = ("term", "estimate", "se", "statistic", "p", "ci_low", "ci_high")
LENGTH = "explanation_length"
SE_KINDS = ("classical", "HC3", "cluster")
SE_FALLBACKS = ("classical", "HC3")


@dataclass(frozen=True)
class ModelFit:
    """One fitted model: its formula, size, coefficient table and model-level statistics."""

    name: str
    formula: str
    n: int
    coef: pd.DataFrame
    stats: dict[str, object] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def condition_term(condition: str) -> str:
    """Name of the dummy of ``condition`` in coefficient tables (patsy's spelling)."""
    return f"condition[T.{condition}]"


def regression_design(
    data: pd.DataFrame, *, reference: str, covariates: Sequence[str] = (), length: str = LENGTH
) -> tuple[pd.DataFrame, str, int]:
    """Design matrix with an intercept, condition dummies, explanation length and covariates.

    ``length`` names the length column (words by default, ``explanation_chars`` for
    characters); it enters under its own name.

    Numeric covariates enter as they are; text covariates as dummies against their first
    level in sorted order. Rows with a missing covariate are left out.

    Returns
    -------
    (pandas.DataFrame, str, int)
        The design (index aligned with ``data``), the right-hand side written as a
        formula, and the number of rows dropped for missing covariates.
    """
    conditions = sorted(data["condition"].unique().tolist())
    if reference not in conditions:
        raise AnalysisError(
            f"reference condition {reference!r} is not in the data; conditions are: {', '.join(conditions)}"
        )
    keep = pd.Series(True, index=data.index)
    parts: list[pd.DataFrame] = []
    if length not in data.columns:
        raise AnalysisError(f"the ratings have no column {length!r} for the explanation length")
    rhs = [f"C(condition, Treatment(reference={reference!r}))", length]
    for name in covariates:
        values, is_numeric = _covariate(data, name)
        if values.nunique() < 2:
            raise AnalysisError(
                f"covariate {name!r} has a single value, so its effect cannot be estimated"
            )
        keep &= values.notna()
        parts.append(values.to_frame(name) if is_numeric else _dummies(values, name))
        rhs.append(name if is_numeric else f"C({name})")
    design = pd.DataFrame({"Intercept": 1.0}, index=data.index)
    for condition in conditions:
        if condition != reference:
            design[condition_term(condition)] = (data["condition"] == condition).astype(float)
    design[length] = data[length].astype(float)
    design = pd.concat([design, *parts], axis=1).loc[keep]
    for column in design.columns[1:]:
        if design[column].nunique() < 2:
            raise AnalysisError(
                f"regression term {column} has a single value, so its effect cannot be estimated"
            )
    return design, " + ".join(rhs), int((~keep).sum())


def covariates_check(data: pd.DataFrame, covariates: Sequence[str]) -> None:
    """Raise AnalysisError unless every covariate is an extra (non-ratings) column of ``data``.

    The ratings columns are the fixed ones, ``quality`` and the file's own dimensions, so a
    plan that names a dimension of these ratings as a covariate is refused by name.
    """
    dimensions = ratings_dimensions(data)
    ratings_columns = {*ITEM_COLUMNS, *RESPONSE_COLUMNS, SCALE_POINTS_COLUMN, QUALITY}
    extra = [c for c in data.columns if c not in ratings_columns and c not in dimensions]
    for name in covariates:
        if name in dimensions:
            raise AnalysisError(
                f"covariate {name!r} is a rating dimension of these ratings "
                f"({', '.join(dimensions)}), not a covariate"
            )
        if name in ratings_columns:
            raise AnalysisError(f"covariate {name!r} is a ratings column, not a covariate")
        if name not in data.columns:
            known = ", ".join(extra) if extra else "none"
            raise AnalysisError(
                f"covariate {name!r} is not a column of the ratings; extra columns are: {known}"
            )


def _covariate(data: pd.DataFrame, name: str) -> tuple[pd.Series, bool]:
    covariates_check(data, [name])
    raw = data[name]
    text = raw.astype(str).str.strip()
    missing = raw.isna() | (text == "") | (text.str.lower() == "nan")
    numeric = pd.to_numeric(text.where(~missing), errors="coerce")
    if (numeric.notna() | missing).all():
        return numeric.astype(float), True
    return text.where(~missing), False


def _dummies(values: pd.Series, name: str) -> pd.DataFrame:
    levels = sorted(values.dropna().unique().tolist())
    return pd.DataFrame(
        {
            f"{name}[T.{level}]": (values == level).astype(float).where(values.notna())
            for level in levels[1:]
        },
        index=values.index,
    )


def _coef_table(
    terms: Sequence[str] | pd.Index, params, se, statistic, p, ci: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "term": list(terms),
            "estimate": np.asarray(params, dtype=float),
            "se": np.asarray(se, dtype=float),
            "statistic": np.asarray(statistic, dtype=float),
            "p": np.asarray(p, dtype=float),
            "ci_low": np.asarray(ci)[:, 0].astype(float),
            "ci_high": np.asarray(ci)[:, 1].astype(float),
        }
    )


def _messages(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(
            f"{w.category.__name__}: {str(w.message).strip().splitlines()[0]}" for w in caught
        )
    )


def _check_varies(y: np.ndarray, dv: str, model: str) -> None:
    if len(y) and np.ptp(y) == 0:
        raise AnalysisError(f"{dv}: {model} is undefined because every value is {y[0]:g}")


def ols_fit(
    data: pd.DataFrame,
    *,
    dv: str = "quality",
    reference: str,
    covariates: Sequence[str] = (),
    length: str = LENGTH,
    se: str = "cluster",
    cluster: str | None = "participant",
    min_clusters: int = 2,
    se_fallback: str = "classical",
) -> ModelFit:
    """OLS of ``dv`` on condition and explanation length (and covariates).

    Parameters
    ----------
    se : {"classical", "HC3", "cluster"}
        Standard errors: classical (homoskedastic), HC3 (heteroskedasticity-robust), or
        cluster-robust by ``cluster`` (ratings of one participant are not independent). With
        ``cluster`` None or fewer than two clusters, "cluster" falls back to classical.
        ``stats["se_kind"]`` says which kind was used and ``stats["cov_type"]`` describes it.
    min_clusters : int
        With ``se="cluster"`` and fewer clusters than this (but at least two), the fit uses
        ``se_fallback`` instead, records ``stats["se_fallback"]`` and adds a warning that
        says why. Cluster-robust errors need many clusters to be trusted; the analysis
        plans set 30.
    se_fallback : {"classical", "HC3"}
        The standard errors used below ``min_clusters``.

    Examples
    --------
    >>> from analysis.simulate import ratings_simulate
    >>> from analysis.load import ratings_load
    >>> fit = ols_fit(ratings_load(ratings_simulate(30, seed=2)), reference="CF:original")
    >>> fit.coef["term"].tolist()[:2]
    ['Intercept', 'condition[T.MT+CF:original]']
    >>> fit.stats["se_kind"]
    'cluster'
    >>> few = ols_fit(
    ...     ratings_load(ratings_simulate(5, seed=2)), reference="CF:original",
    ...     min_clusters=30, se_fallback="HC3",
    ... )
    >>> few.stats["se_kind"], few.stats["se_fallback"]["clusters"]
    ('HC3', 5)
    """
    if se not in SE_KINDS:
        raise AnalysisError(f"unknown standard errors {se!r}; use one of: {', '.join(SE_KINDS)}")
    if se_fallback not in SE_FALLBACKS:
        raise AnalysisError(
            f"unknown fallback standard errors {se_fallback!r}; use one of: "
            f"{', '.join(SE_FALLBACKS)}"
        )
    design, rhs, dropped = regression_design(
        data, reference=reference, covariates=covariates, length=length
    )
    y = data.loc[design.index, dv].astype(float)
    _check_varies(y.to_numpy(), dv, "OLS")
    if len(y) <= design.shape[1]:
        raise AnalysisError(
            f"OLS needs more rated items ({len(y)}) than coefficients ({design.shape[1]})"
        )
    model = sm.OLS(y, design)
    groups = data.loc[design.index, cluster] if cluster and se == "cluster" else None
    n_clusters = int(groups.nunique()) if groups is not None else 0
    fallback: dict[str, Any] | None = None
    notes: list[str] = []
    if groups is not None and 2 <= n_clusters < min_clusters:
        fallback = {
            "requested": "cluster",
            "used": se_fallback,
            "clusters": n_clusters,
            "min_clusters": min_clusters,
        }
        notes.append(
            f"Only {n_clusters} {cluster} clusters, fewer than the plan's minimum of "
            f"{min_clusters} for cluster-robust standard errors, so {se_fallback} standard "
            "errors were used instead."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if groups is not None and n_clusters >= 2 and fallback is None:
            result = model.fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(groups)[0]})
            se_kind, cov_type = "cluster", f"cluster-robust by {cluster} ({n_clusters} clusters)"
        elif se == "HC3" or (fallback is not None and se_fallback == "HC3"):
            result = model.fit(cov_type="HC3")
            se_kind, cov_type = "HC3", "HC3 (heteroskedasticity-robust)"
        else:
            result = model.fit()
            se_kind = "classical"
            cov_type = "classical" if se == "classical" else "classical (one cluster or none)"
    if fallback is not None:
        cov_type += f", instead of cluster-robust: {n_clusters} clusters < {min_clusters}"
    coef = _coef_table(
        design.columns,
        result.params,
        result.bse,
        result.tvalues,
        result.pvalues,
        np.asarray(result.conf_int()),
    )
    return ModelFit(
        name="ols",
        formula=f"{dv} ~ {rhs}",
        n=int(result.nobs),
        coef=coef,
        stats={
            "r_squared": float(result.rsquared),
            "adj_r_squared": float(result.rsquared_adj),
            "se_kind": se_kind,
            "cov_type": cov_type,
            "rows_dropped_missing_covariates": dropped,
            **({"se_fallback": fallback} if fallback is not None else {}),
        },
        warnings=(*notes, *_messages(caught)),
    )


class _FrequencyOrderedModel(OrderedModel):
    """OrderedModel on distinct (design row, response) pairs weighted by their counts.

    With categorical predictors, tens of thousands of ratings collapse to a few hundred
    distinct rows; the log-likelihood is the count-weighted sum, so estimates and the
    Hessian-based standard errors equal those of the model fitted on every rating.
    """

    def __init__(self, endog, exog, *, counts: np.ndarray, **kwargs) -> None:
        super().__init__(endog, exog, **kwargs)
        self.counts = np.asarray(counts, dtype=float)

    def loglikeobs(self, params):
        return self.counts * super().loglikeobs(params)

    @property
    def start_params(self):
        # Thresholds of the model without predictors, from the weighted category shares.
        shares = np.bincount(self.endog, weights=self.counts) / self.counts.sum()
        cuts = self.distr.ppf(np.clip(shares.cumsum(), 0, 1))
        return np.concatenate(
            (np.zeros(self.k_vars), self.transform_reverse_threshold_params(cuts))
        )


def ordinal_fit(
    data: pd.DataFrame, *, dv: str, reference: str, length: str = LENGTH, maxiter: int = 200
) -> ModelFit:
    """Cumulative-link (proportional-odds, logit) model of one rating dimension.

    Estimates are log odds ratios of a higher rating; the thresholds between adjacent
    observed categories are in ``stats["thresholds"]``. Fitted by BFGS on the distinct
    (design, rating) rows with frequency weights, started from the thresholds of the
    model without predictors.
    """
    design, rhs, _ = regression_design(data, reference=reference, length=length)
    exog = design.drop(columns="Intercept")
    # Length is on a far larger scale than the dummies, which makes BFGS crawl; the model
    # is fitted per standard deviation and the coefficient scaled back.
    scale = pd.Series(1.0, index=exog.columns)
    scale[length] = float(exog[length].std()) or 1.0
    exog = exog / scale
    frame = exog.copy()
    frame["_y"] = data.loc[design.index, dv].to_numpy()
    compact = frame.groupby(list(frame.columns), sort=True).size().reset_index(name="_count")
    levels = sorted(compact["_y"].unique().tolist())
    if len(levels) < 2:
        raise AnalysisError(
            f"{dv}: the ordinal model needs at least two different ratings, all are {levels[0]}"
        )
    n_params = exog.shape[1] + len(levels) - 1
    if len(frame) <= n_params:
        raise AnalysisError(
            f"{dv}: the ordinal model has {n_params} parameters and needs more ratings than that, "
            f"found {len(frame)}"
        )
    endog = pd.Series(pd.Categorical(compact["_y"], categories=levels, ordered=True))
    try:
        model = _FrequencyOrderedModel(
            endog, compact[list(exog.columns)], counts=compact["_count"].to_numpy(), distr="logit"
        )
    except ValueError:
        # statsmodels refuses predictors that combine into a constant, which would make
        # them interchangeable with the thresholds; only tiny samples get here.
        raise AnalysisError(
            f"{dv}: the ordinal model is not identified: with {len(frame)} ratings the "
            "predictors combine into a constant"
        ) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(method="bfgs", maxiter=maxiter, disp=False)
    k = exog.shape[1]
    params = np.asarray(result.params)
    no_maximum = AnalysisError(
        f"{dv}: the ordinal model has no finite maximum (a rating category or predictor "
        "separates the data perfectly, which small samples make likely)"
    )
    if not np.isfinite(params).all():
        raise no_maximum
    try:
        cov = np.asarray(result.cov_params())
    except ValueError:
        # statsmodels leaves the covariance unset when the Hessian cannot be inverted.
        raise no_maximum from None
    se = np.sqrt(np.clip(np.diag(cov)[:k], 0, None))
    z = params[:k] / se
    cuts = model.transform_threshold_params(params)[1:-1]
    params, se = params[:k] / scale.to_numpy(), se / scale.to_numpy()
    p = 2 * stats.norm.sf(np.abs(z))
    z_crit = stats.norm.ppf(0.975)
    ci = np.column_stack((params - z_crit * se, params + z_crit * se))
    converged = bool(result.mle_retvals.get("converged", False))
    return ModelFit(
        name=f"ordinal:{dv}",
        formula=f"{dv} (ordered) ~ {rhs}, logit link",
        n=int(compact["_count"].sum()),
        coef=_coef_table(exog.columns, params, se, z, p, ci),
        stats={
            "converged": converged,
            "function_evaluations": int(result.mle_retvals.get("fcalls", 0)),
            "log_likelihood": float(result.llf),
            "thresholds": {
                f"{a}|{b}": float(c) for a, b, c in zip(levels[:-1], levels[1:], cuts, strict=True)
            },
            "distinct_rows": len(compact),
        },
        warnings=_messages(caught),
    )


def random_intercept_reml(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """REML estimates of ``y = x b + u_group + e`` by the profiled likelihood in one variable.

    With ``g = var(u) / var(e)``, each group's covariance is ``s2 (I + g 11')``; subtracting
    ``theta_i`` times the group mean, ``theta_i = 1 - 1/sqrt(1 + n_i g)``, whitens it, so for
    a given g the fixed effects are OLS on transformed data and the REML criterion is
    ``(N-p) log(RSS/(N-p)) + sum log(1 + n_i g) + log det(X*'X*)``, minimised over log g.

    Returns
    -------
    (numpy.ndarray, float, float)
        Fixed effects, group variance and residual variance.
    """
    codes, _ = pd.factorize(groups)
    n_i = np.bincount(codes).astype(float)
    y_sum = np.bincount(codes, weights=y)
    x_sum = np.column_stack([np.bincount(codes, weights=x[:, j]) for j in range(x.shape[1])])
    n, p = x.shape

    def profile(log_g: float) -> tuple[float, np.ndarray, float]:
        theta = 1 - 1 / np.sqrt(1 + n_i * np.exp(log_g))
        ys = y - (theta * y_sum / n_i)[codes]
        xs = x - (theta[:, None] * x_sum / n_i[:, None])[codes]
        beta, *_ = np.linalg.lstsq(xs, ys, rcond=None)
        s2 = float(((ys - xs @ beta) ** 2).sum() / (n - p))
        _, logdet = np.linalg.slogdet(xs.T @ xs)
        return (n - p) * np.log(s2) + np.log1p(n_i * np.exp(log_g)).sum() + logdet, beta, s2

    best = optimize.minimize_scalar(lambda v: profile(v)[0], bounds=(-15.0, 8.0), method="bounded")
    _, beta, s2 = profile(float(best.x))
    return beta, float(np.exp(best.x) * s2), s2


def mixed_fit(
    data: pd.DataFrame,
    *,
    dv: str = "quality",
    reference: str,
    group: str = "participant",
    length: str = LENGTH,
    maxiter: int = 50,
) -> ModelFit:
    """Linear mixed model with a random intercept per participant (statsmodels MixedLM, REML).

    MixedLM starts from the exact profiled-REML solution of :func:`random_intercept_reml`,
    so it usually confirms the optimum in a few steps instead of searching for it
    (a full search costs seconds on 50,000 ratings).
    """
    design, rhs, _ = regression_design(data, reference=reference, length=length)
    y = data.loc[design.index, dv].to_numpy(dtype=float)
    groups = data.loc[design.index, group].to_numpy()
    _check_varies(y, dv, "the mixed model")
    sizes = pd.Series(groups).value_counts()
    n_groups = len(sizes)
    if n_groups < 2:
        raise AnalysisError(
            f"the mixed model needs ratings from at least two {group}s, found {n_groups}"
        )
    if sizes.max() < 2:
        raise AnalysisError(
            f"the mixed model needs some {group} with two or more ratings to separate "
            "the random intercept from the residual"
        )
    x = design.to_numpy()
    beta, group_var, resid_var = random_intercept_reml(y, x, groups)
    model = MixedLM(y, design, groups=groups)
    start = MixedLMParams.from_components(beta, cov_re=np.array([[group_var / resid_var]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(reml=True, start_params=start, maxiter=maxiter)
    k = design.shape[1]
    ci = np.asarray(result.conf_int())[:k]
    group_var = float(np.asarray(result.cov_re)[0, 0])
    resid_var = float(result.scale)
    return ModelFit(
        name="mixed",
        formula=f"{dv} ~ {rhs} + (1 | {group})",
        n=len(y),
        coef=_coef_table(
            design.columns,
            result.fe_params,
            result.bse_fe,
            np.asarray(result.tvalues)[:k],
            np.asarray(result.pvalues)[:k],
            ci,
        ),
        stats={
            "converged": bool(result.converged),
            "groups": n_groups,
            "group_variance": group_var,
            "residual_variance": resid_var,
            "icc": group_var / (group_var + resid_var)
            if group_var + resid_var > 0
            else float("nan"),
            "method": "REML",
        },
        warnings=_messages(caught),
    )
