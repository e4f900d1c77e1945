"""Accuracy of the distillation runs: two-way ANOVA of method × student size, Tukey HSD per size."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from analysis.errors import AnalysisError
from analysis.tests_differences import tukey_hsd

ANOVA_COLUMNS = ("source", "sum_sq", "df", "F", "p", "eta_sq_partial")


class AccuracyAnova(NamedTuple):
    """Result of :func:`accuracy_anova`: the ANOVA table, Tukey HSD within sizes, and notes."""

    anova: pd.DataFrame
    tukey: pd.DataFrame
    notes: tuple[str, ...]


def accuracy_load(path: str | Path) -> pd.DataFrame:
    """Read an accuracy table (CSV with ``method, size, accuracy``, one row per run)."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise AnalysisError(f"accuracy file not found: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise AnalysisError(
            f"accuracy file {path} is not a readable CSV: {str(exc).splitlines()[0]}"
        ) from None
    return table


def accuracy_variants_combine(runs: pd.DataFrame, *, method: str = "method") -> pd.DataFrame:
    """Fold a ``data_variant`` column into the method, as the study's conditions do.

    The pipeline's ``accuracy_runs.csv`` has one row per student, seed and data variant
    (original or revised explanations). Pooling variants inside one method would count
    their difference as noise, so with more than one variant the method becomes
    ``<method>:<variant>`` (e.g. ``mt+cf:revised``). Other tables pass through unchanged.

    Examples
    --------
    >>> runs = pd.DataFrame({"method": ["cf", "cf"], "data_variant": ["original", "revised"]})
    >>> accuracy_variants_combine(runs)["method"].tolist()
    ['cf:original', 'cf:revised']
    """
    if (
        "data_variant" not in runs.columns
        or runs["data_variant"].nunique() < 2
        or method not in runs.columns
    ):
        return runs
    combined = runs.copy()
    combined[method] = runs[method].astype(str) + ":" + runs["data_variant"].astype(str)
    return combined


def accuracy_anova(
    df: pd.DataFrame, *, accuracy: str = "accuracy", method: str = "method", size: str = "size"
) -> AccuracyAnova:
    """Type II two-way ANOVA of accuracy on method × size, then Tukey HSD between methods per size.

    Each row is one run (e.g. one seed of one method at one student size). With a single
    run per method × size cell the interaction has no residual to be tested against, so
    the additive model (no interaction) is fitted and a note says so.

    Returns
    -------
    AccuracyAnova
        ``anova``: ``source, sum_sq, df, F, p, eta_sq_partial`` (sources named after the
        columns, the interaction ``method:size``, and ``Residual``); ``tukey``: the
        :func:`analysis.tests_differences.tukey_hsd` columns plus ``size``.

    Examples
    --------
    >>> runs = pd.DataFrame({"method": ["mt", "cf"] * 4, "size": ["s", "s", "b", "b"] * 2,
    ...                      "accuracy": [0.5, 0.55, 0.6, 0.66, 0.52, 0.56, 0.61, 0.68]})
    >>> accuracy_anova(runs).anova["source"].tolist()
    ['method', 'size', 'method:size', 'Residual']
    """
    for column in (accuracy, method, size):
        if column not in df.columns:
            raise AnalysisError(f"the accuracy table is missing the column {column!r}")
    data = pd.DataFrame(
        {
            "acc": pd.to_numeric(df[accuracy], errors="coerce"),
            "m": df[method].astype(str),
            "s": df[size].astype(str),
        }
    )
    bad = data["acc"].isna() | ~np.isfinite(data["acc"])
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise AnalysisError(
            f"{accuracy} must be a number; row {first + 1} has '{df[accuracy].iloc[first]}'"
        )
    if data["m"].nunique() < 2 or data["s"].nunique() < 2:
        raise AnalysisError("the accuracy ANOVA needs at least two methods and two sizes")
    notes: list[str] = []
    replicated = bool(data.groupby(["m", "s"]).size().min() >= 2)
    formula = "acc ~ C(m) * C(s)" if replicated else "acc ~ C(m) + C(s)"
    if not replicated:
        notes.append(
            "some method × size cell has a single run, so the interaction was not tested (additive model)"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = anova_lm(smf.ols(formula, data=data).fit(), typ=2)
    notes.extend(str(w.message).splitlines()[0] for w in caught)
    residual_ss = float(table.loc["Residual", "sum_sq"])
    if table.loc["Residual", "df"] < 1 or residual_ss <= 0:
        raise AnalysisError(
            "the accuracy ANOVA has no residual variation (every run in a cell is identical)"
        )
    names = {"C(m)": method, "C(s)": size, "C(m):C(s)": f"{method}:{size}", "Residual": "Residual"}
    anova = pd.DataFrame(
        {
            "source": [names[i] for i in table.index],
            "sum_sq": table["sum_sq"].to_numpy(),
            "df": table["df"].to_numpy(),
            "F": table["F"].to_numpy(),
            "p": table["PR(>F)"].to_numpy(),
            "eta_sq_partial": (table["sum_sq"] / (table["sum_sq"] + residual_ss)).to_numpy(),
        }
    )
    anova.loc[anova["source"] == "Residual", ["F", "p", "eta_sq_partial"]] = np.nan
    frames = []
    for level, group in data.groupby("s", sort=True):
        try:
            named = pd.DataFrame({accuracy: group["acc"], method: group["m"]})
            pairs = tukey_hsd(named, dv=accuracy, between=method)
        except AnalysisError as exc:
            notes.append(f"Tukey HSD at {size} {level}: not computable ({exc})")
            continue
        pairs.insert(0, "size", level)
        frames.append(pairs)
    tukey = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return AccuracyAnova(anova=anova[list(ANOVA_COLUMNS)], tukey=tukey, notes=tuple(notes))
