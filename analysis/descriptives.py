"""Descriptive statistics per condition and dimension."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

DESCRIPTIVES_COLUMNS = (
    "dimension",
    "condition",
    "n",
    "mean",
    "sd",
    "se",
    "median",
    "ci_low",
    "ci_high",
)


def descriptives(
    data: pd.DataFrame, *, dvs: Sequence[str], between: str = "condition"
) -> pd.DataFrame:
    """n, mean, sd, standard error, median and a t-based 95% CI of each dv per group.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per observation.
    dvs : sequence of str
        Numeric columns to describe (the file's dimensions and ``quality``).
    between : str
        Grouping column.

    Returns
    -------
    pandas.DataFrame
        Columns ``dimension, condition, n, mean, sd, se, median, ci_low, ci_high``; sd, se
        and the CI are NaN for a group of one.

    Examples
    --------
    >>> df = pd.DataFrame({"condition": ["a", "a", "b", "b"], "x": [1, 3, 2, 2]})
    >>> descriptives(df, dvs=["x"])[["condition", "mean", "sd"]].values.tolist()
    [['a', 2.0, 1.4142135623730951], ['b', 2.0, 0.0]]
    """
    grouped = data.groupby(between, sort=True)
    frames = []
    for dv in dvs:
        agg = grouped[dv].agg(["count", "mean", "std", "median"])
        n = agg["count"].to_numpy(dtype=float)
        se = agg["std"].to_numpy() / np.sqrt(n)
        with np.errstate(invalid="ignore"):
            half = stats.t.ppf(0.975, n - 1) * se
        frames.append(
            pd.DataFrame(
                {
                    "dimension": dv,
                    "condition": agg.index.astype(str),
                    "n": agg["count"].to_numpy(dtype="int64"),
                    "mean": agg["mean"].to_numpy(),
                    "sd": agg["std"].to_numpy(),
                    "se": se,
                    "median": agg["median"].to_numpy(dtype=float),
                    "ci_low": agg["mean"].to_numpy() - half,
                    "ci_high": agg["mean"].to_numpy() + half,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(DESCRIPTIVES_COLUMNS)]
