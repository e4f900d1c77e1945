"""Tests of differences between conditions: ANOVA, Kruskal–Wallis, their checks and post-hoc tests.

Every function takes a long-format DataFrame, the name of the dependent variable and of the
grouping column, and returns a tidy DataFrame with fixed columns. Groups are taken in sorted
order; a pair ``(a, b)`` has ``a`` before ``b`` and differences are ``b - a``.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multicomp import tukeyhsd as statsmodels_tukeyhsd
from statsmodels.stats.multitest import multipletests

from analysis.errors import AnalysisError

P_ADJUST_METHODS = ("bonferroni", "holm")
# Shapiro–Wilk p-values are only accurate up to 5000 observations (SciPy's documented
# limit); larger groups are tested on a seeded random subsample of this size.
SHAPIRO_MAX_N = 5000


def _groups(data: pd.DataFrame, dv: str, between: str) -> tuple[list[str], list[np.ndarray]]:
    clean = data[[between, dv]].dropna()
    names: list[str] = []
    values: list[np.ndarray] = []
    for name, frame in clean.groupby(between, sort=True):
        names.append(str(name))
        values.append(frame[dv].to_numpy(dtype=float))
    if len(names) < 2:
        raise AnalysisError(f"{dv}: needs at least two groups with data, found {len(names)}")
    return names, values


def anova_oneway(data: pd.DataFrame, *, dv: str, between: str = "condition") -> pd.DataFrame:
    """One-way between-subjects ANOVA with eta squared (SS_between / SS_total).

    Returns
    -------
    pandas.DataFrame
        One row: ``F, df_between, df_within, p, eta_sq``.

    Raises
    ------
    AnalysisError
        Fewer than two groups, no residual degrees of freedom, or no variation within groups.

    Examples
    --------
    >>> df = pd.DataFrame({"condition": list("aaabbb"), "x": [1, 2, 3, 3, 4, 5]})
    >>> anova_oneway(df, dv="x").round(3).iloc[0].to_dict()
    {'F': 6.0, 'df_between': 1.0, 'df_within': 4.0, 'p': 0.07, 'eta_sq': 0.6}
    """
    _, values = _groups(data, dv, between)
    k = len(values)
    n = sum(len(v) for v in values)
    grand = np.concatenate(values).mean()
    ss_between = sum(len(v) * (v.mean() - grand) ** 2 for v in values)
    ss_within = sum(((v - v.mean()) ** 2).sum() for v in values)
    df_between, df_within = k - 1, n - k
    if df_within < 1:
        raise AnalysisError(
            f"{dv}: ANOVA needs more observations than groups ({n} observations, {k} groups)"
        )
    if ss_within <= 1e-12 * max(1.0, ss_between):
        raise AnalysisError(
            f"{dv}: ANOVA is undefined because ratings do not vary within conditions"
        )
    f = (ss_between / df_between) / (ss_within / df_within)
    return pd.DataFrame(
        {
            "F": [f],
            "df_between": [float(df_between)],
            "df_within": [float(df_within)],
            "p": [float(stats.f.sf(f, df_between, df_within))],
            "eta_sq": [ss_between / (ss_between + ss_within)],
        }
    )


def kruskal(data: pd.DataFrame, *, dv: str, between: str = "condition") -> pd.DataFrame:
    """Kruskal–Wallis H test (tie-corrected) with epsilon squared, H / (n - 1).

    Returns
    -------
    pandas.DataFrame
        One row: ``H, df, p, epsilon_sq``.

    Examples
    --------
    >>> df = pd.DataFrame({"condition": list("aaabbb"), "x": [1, 2, 3, 4, 5, 6]})
    >>> kruskal(df, dv="x").round(4).iloc[0].to_dict()
    {'H': 3.8571, 'df': 1.0, 'p': 0.0495, 'epsilon_sq': 0.7714}
    """
    _, values = _groups(data, dv, between)
    n = sum(len(v) for v in values)
    if np.ptp(np.concatenate(values)) == 0:
        raise AnalysisError(f"{dv}: Kruskal–Wallis is undefined because every value is the same")
    h, p = stats.kruskal(*values)
    return pd.DataFrame(
        {
            "H": [float(h)],
            "df": [float(len(values) - 1)],
            "p": [float(p)],
            "epsilon_sq": [float(h) / (n - 1)],
        }
    )


def levene(data: pd.DataFrame, *, dv: str, between: str = "condition") -> pd.DataFrame:
    """Levene's test of equal variances, median-centred (Brown–Forsythe).

    Returns
    -------
    pandas.DataFrame
        One row: ``W, df_between, df_within, p, equal_var`` (``p > 0.05``).
    """
    _, values = _groups(data, dv, between)
    if all(np.ptp(v) == 0 for v in values):
        raise AnalysisError(
            f"{dv}: Levene's test is undefined because ratings do not vary within conditions"
        )
    # W divides by the spread of |x - median| within conditions, which is also zero when
    # each condition's values lie symmetrically at one distance from its median (tiny samples).
    if all(np.ptp(np.abs(v - np.median(v))) == 0 for v in values):
        raise AnalysisError(
            f"{dv}: Levene's test is undefined because, in every condition, all ratings lie "
            "equally far from the condition's median"
        )
    w, p = stats.levene(*values, center="median")
    n = sum(len(v) for v in values)
    return pd.DataFrame(
        {
            "W": [float(w)],
            "df_between": [float(len(values) - 1)],
            "df_within": [float(n - len(values))],
            "p": [float(p)],
            "equal_var": [bool(p > 0.05)],
        }
    )


def shapiro(
    data: pd.DataFrame, *, dv: str, between: str = "condition", seed: int = 0
) -> pd.DataFrame:
    """Shapiro–Wilk test of normality in each group.

    Groups larger than 5000 are tested on a random subsample of 5000 drawn with ``seed``
    (``n_tested`` says how many were used). Groups with fewer than 3 values or no
    variation get NaN (``normal`` None) and a ``note``.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``condition, n, n_tested, W, p, normal, note``.
    """
    names, values = _groups(data, dv, between)
    rng = np.random.default_rng(seed)
    rows = []
    for name, v in zip(names, values, strict=True):
        tested = rng.choice(v, SHAPIRO_MAX_N, replace=False) if len(v) > SHAPIRO_MAX_N else v
        note = ""
        w = p = float("nan")
        if len(tested) < 3:
            note = "fewer than 3 values"
        elif np.ptp(tested) == 0:
            note = "no variation"
        else:
            w, p = (float(x) for x in stats.shapiro(tested))
        rows.append(
            {
                "condition": name,
                "n": len(v),
                "n_tested": len(tested),
                "W": w,
                "p": p,
                "normal": None if np.isnan(p) else bool(p > 0.05),
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def tukey_hsd(data: pd.DataFrame, *, dv: str, between: str = "condition") -> pd.DataFrame:
    """Tukey's honestly significant difference test (Tukey–Kramer for unequal group sizes).

    ``q = (mean_b - mean_a) / sqrt(MSE / 2 * (1/n_a + 1/n_b))`` is referred to the
    studentized range distribution with k groups and n - k degrees of freedom.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``a, b, mean_diff, se, q, p_adj, ci_low, ci_high, method``
        (``se`` is the standard error of the difference; the CI is the 95% simultaneous
        interval of ``mean_diff``).
    """
    names, values = _groups(data, dv, between)
    k = len(values)
    n = sum(len(v) for v in values)
    df_within = n - k
    ss_within = sum(((v - v.mean()) ** 2).sum() for v in values)
    if df_within < 1 or ss_within <= 0:
        raise AnalysisError(
            f"{dv}: Tukey HSD is undefined because ratings do not vary within conditions"
        )
    nobs = np.array([len(v) for v in values])
    # statsmodels' summary-data form, so that the critical q shared by every dimension is
    # computed once (pairwise_tukeyhsd would integrate it again on each call).
    pairs, _, diffs, se_pairs, ci, _, _, _, p_values = statsmodels_tukeyhsd(
        np.array([v.mean() for v in values]),
        nobs,
        ss_within / df_within,
        df=nobs - 1,
        q_crit=_studentized_range_critical(k, df_within),
    )
    return pd.DataFrame(
        {
            "a": [names[i] for i in pairs[0]],
            "b": [names[j] for j in pairs[1]],
            "mean_diff": diffs,
            "se": se_pairs * np.sqrt(2),
            "q": diffs / se_pairs,
            "p_adj": np.minimum(1.0, p_values),
            "ci_low": ci[:, 0],
            "ci_high": ci[:, 1],
            "method": "tukey",
        }
    )


@lru_cache(maxsize=32)
def _studentized_range_critical(k: int, df: int) -> float:
    # The quantile is a numerical integral (~0.15 s); every dimension shares k and df.
    return float(stats.studentized_range.ppf(0.95, k, df))


def p_adjust(p_values: np.ndarray | list[float], method: str) -> np.ndarray:
    """Adjust p-values for multiple comparisons (Bonferroni, capped at 1, or Holm's step-down).

    Examples
    --------
    >>> p_adjust([0.01, 0.04, 0.03], "holm").round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    if method not in P_ADJUST_METHODS:
        raise AnalysisError(
            f"unknown p-value adjustment {method!r}; use one of: {', '.join(P_ADJUST_METHODS)}"
        )
    p = np.asarray(p_values, dtype=float)
    if len(p) == 0:
        return p
    return np.asarray(multipletests(p, method=method)[1], dtype=float)


def dunn(
    data: pd.DataFrame, *, dv: str, between: str = "condition", p_adjust_method: str = "bonferroni"
) -> pd.DataFrame:
    """Dunn's (1964) pairwise test on mean ranks, with the tie correction.

    All observations are ranked together (average ranks for ties). For groups a and b,
    ``z = (R_b - R_a) / sqrt((N(N+1)/12 - sum(t^3 - t) / (12(N-1))) * (1/n_a + 1/n_b))``,
    where R are mean ranks and t the sizes of the tied groups; p is two-sided normal,
    then adjusted over all pairs (Bonferroni capped at 1). These are the conventions of
    R's ``rstatix::dunn_test`` (the z sign: second group minus first); ``dunn.test`` and
    FSA differ in sign or adjustment.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``a, b, mean_rank_a, mean_rank_b, z, p_unc, p_adj, method``
        (method ``dunn-bonferroni`` or ``dunn-holm``).

    Examples
    --------
    >>> df = pd.DataFrame({"condition": list("aaabbb"), "x": [1, 2, 3, 4, 5, 6]})
    >>> dunn(df, dv="x")[["z", "p_unc"]].round(4).iloc[0].tolist()
    [1.964, 0.0495]
    """
    if p_adjust_method not in P_ADJUST_METHODS:
        raise AnalysisError(
            f"unknown p-value adjustment {p_adjust_method!r}; use one of: {', '.join(P_ADJUST_METHODS)}"
        )
    names, values = _groups(data, dv, between)
    pooled = np.concatenate(values)
    n = len(pooled)
    ranks = stats.rankdata(pooled)
    _, tie_sizes = np.unique(pooled, return_counts=True)
    variance = n * (n + 1) / 12 - (tie_sizes**3 - tie_sizes).sum() / (12 * (n - 1))
    if variance <= 0:
        raise AnalysisError(f"{dv}: Dunn's test is undefined because every value is the same")
    bounds = np.cumsum([0] + [len(v) for v in values])
    mean_ranks = [ranks[bounds[g] : bounds[g + 1]].mean() for g in range(len(values))]
    rows = []
    for i, j in combinations(range(len(values)), 2):
        z = (mean_ranks[j] - mean_ranks[i]) / np.sqrt(
            variance * (1 / len(values[i]) + 1 / len(values[j]))
        )
        rows.append(
            {
                "a": names[i],
                "b": names[j],
                "mean_rank_a": mean_ranks[i],
                "mean_rank_b": mean_ranks[j],
                "z": z,
                "p_unc": float(2 * stats.norm.sf(abs(z))),
            }
        )
    table = pd.DataFrame(rows)
    table["p_adj"] = p_adjust(table["p_unc"].to_numpy(), p_adjust_method)
    table["method"] = f"dunn-{p_adjust_method}"
    return table
