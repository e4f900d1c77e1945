"""Internal consistency of the rating scale formed by the questionnaire's dimensions.

Cronbach's alpha and McDonald's omega are computed over rated items (rows), treating the
dimensions of the ratings file (five for the default questionnaire) as the items of one scale
whose unweighted mean is ``quality``. Alpha needs two items, the one-factor model behind omega
and the loadings three.

McDonald's omega comes from a one-factor model fitted by maximum likelihood to the item
correlation matrix R, the method of R's ``factanal`` (Jöreskog, 1967): for uniquenesses
Psi the loadings are ``Psi^(1/2) w sqrt(max(theta - 1, 0))`` with theta, w the largest
eigenvalue and eigenvector of ``Psi^(-1/2) R Psi^(-1/2)``, and Psi minimises the ML
discrepancy ``sum_(j>1) (theta_j - log theta_j) - (p - 1)`` over the other eigenvalues,
with each uniqueness bounded to [0.005, 1]. Omega is then for the raw sum score,
``(sum lambda_i s_i)^2 / ((sum lambda_i s_i)^2 + sum psi_i s_i^2)``, with s_i the item
standard deviations, so it describes the same score as alpha.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from analysis.errors import AnalysisError

UNIQUENESS_LOWER = 0.005


def _items(data: pd.DataFrame, items: Sequence[str]) -> pd.DataFrame:
    if len(items) < 2:
        raise AnalysisError("reliability needs at least two items")
    frame = data[list(items)].dropna().astype(float)
    if len(frame) < 3:
        raise AnalysisError(f"reliability needs at least three rated items, found {len(frame)}")
    constant = [c for c in items if frame[c].nunique() < 2]
    if constant:
        raise AnalysisError(f"reliability is undefined because {', '.join(constant)} never varies")
    return frame


def cronbach_alpha(data: pd.DataFrame, *, items: Sequence[str]) -> float:
    """Cronbach's alpha, ``k/(k-1) * (1 - sum(item variances) / variance(sum score))``.

    Examples
    --------
    >>> df = pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 2, 3, 5], "c": [1, 3, 3, 4]})
    >>> round(cronbach_alpha(df, items=["a", "b", "c"]), 4)
    0.9474
    """
    frame = _items(data, items)
    k = frame.shape[1]
    total_var = frame.sum(axis=1).var(ddof=1)
    if total_var <= 1e-12:
        raise AnalysisError(
            "Cronbach's alpha is undefined because the sum of the items never varies"
        )
    return float(k / (k - 1) * (1 - frame.var(ddof=1).sum() / total_var))


def one_factor_ml(data: pd.DataFrame, *, items: Sequence[str]) -> pd.DataFrame:
    """Standardised loadings and uniquenesses of a one-factor model fitted by maximum likelihood.

    Returns
    -------
    pandas.DataFrame
        One row per item: ``item, loading, uniqueness, sd``; loadings are signed so that
        their sum is positive. A uniqueness at the 0.005 bound is a Heywood case.
    """
    frame = _items(data, items)
    if frame.shape[1] < 3:
        raise AnalysisError("a one-factor model needs at least three items")
    corr = np.corrcoef(frame.to_numpy(), rowvar=False)
    p = corr.shape[0]
    if np.linalg.eigvalsh(corr)[0] < 1e-8:
        raise AnalysisError(
            "the factor model is undefined because the item correlation matrix is singular "
            "(some item is a linear combination of the others)"
        )

    def eigen(psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = 1 / np.sqrt(psi)
        return np.linalg.eigh(corr * np.outer(scale, scale))

    def discrepancy(psi: np.ndarray) -> float:
        values = eigen(psi)[0][:-1]
        return float(np.sum(values - np.log(values)) - (p - 1))

    start = (1 - 0.5 / p) / np.diag(np.linalg.inv(corr))
    best = optimize.minimize(
        discrepancy,
        np.clip(start, UNIQUENESS_LOWER, 1.0),
        method="L-BFGS-B",
        bounds=[(UNIQUENESS_LOWER, 1.0)] * p,
    )
    psi = best.x
    values, vectors = eigen(psi)
    loadings = np.sqrt(psi) * vectors[:, -1] * np.sqrt(max(values[-1] - 1, 0.0))
    if loadings.sum() < 0:
        loadings = -loadings
    return pd.DataFrame(
        {
            "item": list(items),
            "loading": loadings,
            "uniqueness": 1 - loadings**2,
            "sd": frame.std(ddof=1).to_numpy(),
        }
    )


def mcdonald_omega(data: pd.DataFrame, *, items: Sequence[str]) -> float:
    """McDonald's omega (total) of the raw sum score from a one-factor ML model.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=2000)
    >>> df = pd.DataFrame({c: f + rng.normal(size=2000) for c in "abcd"})
    >>> round(mcdonald_omega(df, items=list("abcd")), 2)  # population value 0.8
    0.8
    """
    model = one_factor_ml(data, items=items)
    common = float((model["loading"] * model["sd"]).sum() ** 2)
    unique = float((model["uniqueness"] * model["sd"] ** 2).sum())
    return common / (common + unique)


def correlations(data: pd.DataFrame, *, items: Sequence[str]) -> pd.DataFrame:
    """Pearson and Spearman correlations between items, in long format.

    Returns
    -------
    pandas.DataFrame
        ``method, a, b, r`` for every ordered pair (a matrix once pivoted).
    """
    frame = data[list(items)].astype(float)
    rows = []
    for method in ("pearson", "spearman"):
        matrix = frame.corr(method=method).to_numpy()
        for i, a in enumerate(items):
            for j, b in enumerate(items):
                rows.append({"method": method, "a": a, "b": b, "r": float(matrix[i, j])})
    return pd.DataFrame(rows)
