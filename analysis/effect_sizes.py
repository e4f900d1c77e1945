"""Effect sizes for pairs of conditions on an ordinal scale."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.errors import AnalysisError

VDA_COLUMNS = ("a", "b", "n_a", "n_b", "A", "magnitude")
# Vargha and Delaney's (2000) thresholds on |A - 0.5|: small, medium and large effects.
VDA_THRESHOLDS = ((0.21, "large"), (0.14, "medium"), (0.06, "small"))


def vargha_delaney(data: pd.DataFrame, *, dv: str, between: str = "condition") -> pd.DataFrame:
    """Vargha–Delaney A for every pair of groups: ``P(X_a > X_b) + P(X_a = X_b) / 2``.

    A is the chance that a value drawn from group a exceeds one drawn from group b, ties
    counted half; 0.5 means neither dominates. It is computed from the midranks of the
    pooled pair, ``A = (R_a / n_a - (n_a + 1) / 2) / n_b``. Groups are taken in sorted order
    and A is that of the first group over the second, as R's ``rcompanion::multiVDA`` and
    ``effsize::VD.A`` report it (so A > 0.5 goes with a negative Dunn z, which is b − a).

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``a, b, n_a, n_b, A, magnitude`` (negligible, small, medium or
        large by Vargha and Delaney's thresholds 0.56, 0.64 and 0.71).

    Examples
    --------
    >>> df = pd.DataFrame({"condition": list("aaabbb"), "x": [1, 2, 3, 2, 3, 4]})
    >>> pair = vargha_delaney(df, dv="x").iloc[0]
    >>> pair["a"], pair["b"], round(float(pair["A"]), 4), pair["magnitude"]
    ('a', 'b', 0.2222, 'large')
    """
    clean = data[[between, dv]].dropna()
    groups = {
        str(name): frame[dv].to_numpy(dtype=float)
        for name, frame in clean.groupby(between, sort=True)
    }
    if len(groups) < 2:
        raise AnalysisError(f"{dv}: needs at least two groups with data, found {len(groups)}")
    rows = []
    for a, b in combinations(groups, 2):
        x, y = groups[a], groups[b]
        ranks = stats.rankdata(np.concatenate([x, y]))
        value = (ranks[: len(x)].sum() / len(x) - (len(x) + 1) / 2) / len(y)
        rows.append(
            {
                "a": a,
                "b": b,
                "n_a": len(x),
                "n_b": len(y),
                "A": float(value),
                "magnitude": vda_magnitude(value),
            }
        )
    return pd.DataFrame(rows, columns=list(VDA_COLUMNS))


def vda_magnitude(value: float) -> str:
    """Vargha and Delaney's label for an A value.

    Examples
    --------
    >>> vda_magnitude(0.5), vda_magnitude(0.3), vda_magnitude(0.9)
    ('negligible', 'medium', 'large')
    """
    distance = abs(value - 0.5)
    for threshold, label in VDA_THRESHOLDS:
        if distance >= threshold:
            return label
    return "negligible"
