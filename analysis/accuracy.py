"""Accuracy of the distillation runs: two-way ANOVA of method × student size, Tukey HSD per size.

:func:`accuracy_analyse` is the one path from a table of runs (the pipeline's
``accuracy_runs.csv``) to the results, under a plan's ``[accuracy]`` settings: which runs
are kept, the scale, the outlier trim, the ANOVA and Tukey HSD within each size. The
command line and the distillation pipeline both call it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from analysis.errors import AnalysisError
from analysis.exclusions import iqr_outliers
from analysis.plan import AccuracySettings
from analysis.tests_differences import tukey_hsd

ANOVA_COLUMNS = ("source", "sum_sq", "df", "F", "p", "eta_sq_partial", "ges")
TUKEY_KEYS = ("a", "b", "mean_diff", "se", "q", "p_adj", "ci_low", "ci_high")


class AccuracyAnova(NamedTuple):
    """Result of :func:`accuracy_anova`: the ANOVA table, Tukey HSD within sizes, and notes."""

    anova: pd.DataFrame
    tukey: pd.DataFrame
    notes: tuple[str, ...]


class AccuracyResult(NamedTuple):
    """Result of :func:`accuracy_analyse`: the runs analysed, their counts, and the tests."""

    runs: pd.DataFrame
    counts: dict[str, int]
    scale: str
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
    df: pd.DataFrame,
    *,
    accuracy: str = "accuracy",
    method: str = "method",
    size: str = "size",
    interaction: bool = True,
) -> AccuracyAnova:
    """Type II two-way ANOVA of accuracy on method × size, then Tukey HSD between methods per size.

    Each row is one run (e.g. one seed of one method at one student size). With a single
    run per method × size cell the interaction has no residual to be tested against, so
    the additive model (no interaction) is fitted and a note says so; ``interaction=False``
    fits the additive model always. Tukey HSD compares the methods within each size as a
    one-way model of that size's runs, with its own error term.

    The effect size of each term is the generalised η² (Olejnik and Algina, 2003). With
    every factor manipulated and each run observed once, it is
    ``SS_term / (SS_term + SS_residual)``, the same value as partial η²; both columns are
    given so that tables from either convention can be compared.

    Returns
    -------
    AccuracyAnova
        ``anova``: ``source, sum_sq, df, F, p, eta_sq_partial, ges`` (sources named after
        the columns, the interaction ``method:size``, and ``Residual``); ``tukey``: the
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
            "acc": _accuracy_values(df, accuracy),
            "m": df[method].astype(str),
            "s": df[size].astype(str),
        }
    )
    if data["m"].nunique() < 2 or data["s"].nunique() < 2:
        raise AnalysisError("the accuracy ANOVA needs at least two methods and two sizes")
    notes: list[str] = []
    replicated = bool(data.groupby(["m", "s"]).size().min() >= 2)
    formula = "acc ~ C(m) * C(s)" if replicated and interaction else "acc ~ C(m) + C(s)"
    if interaction and not replicated:
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
    effect = (table["sum_sq"] / (table["sum_sq"] + residual_ss)).to_numpy()
    anova = pd.DataFrame(
        {
            "source": [names[i] for i in table.index],
            "sum_sq": table["sum_sq"].to_numpy(),
            "df": table["df"].to_numpy(),
            "F": table["F"].to_numpy(),
            "p": table["PR(>F)"].to_numpy(),
            "eta_sq_partial": effect,
            "ges": effect,
        }
    )
    anova.loc[anova["source"] == "Residual", ["F", "p", "eta_sq_partial", "ges"]] = np.nan
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


def accuracy_analyse(runs: pd.DataFrame, settings: AccuracySettings) -> AccuracyResult:
    """The accuracy analysis of a plan, in order: rows, scale, outlier trim, ANOVA, Tukey.

    1. **Rows.** With ``settings.methods`` set, only runs whose ``method:data_variant``
       (or ``method``, for a table without variants) is listed are kept, compared without
       regard to case; otherwise every run is kept and several data variants become part
       of the method (:func:`accuracy_variants_combine`).
    2. **Scale.** ``percent`` multiplies proportions (0–1) by 100; ``as_recorded`` leaves
       the values as they are.
    3. **Outliers.** With ``settings.outliers``, runs strictly outside
       ``[Q1 - k IQR, Q3 + k IQR]`` of their method × size cell are removed (type-7
       quartiles, ``k = settings.outlier_multiplier``).
    4. **ANOVA** of accuracy on method × size with type II sums of squares, and
    5. **Tukey HSD** between the methods within each size (:func:`accuracy_anova`).

    Returns
    -------
    AccuracyResult
        ``runs`` (``method, size, accuracy`` as analysed), ``counts`` (``runs``,
        ``left_out_methods``, ``outliers``, ``analysed``), the tables and notes.

    Examples
    --------
    >>> from analysis.plan import plan_load
    >>> runs = pd.DataFrame({"method": ["mt", "cf", "mt", "cf"] * 2,
    ...                      "data_variant": ["original"] * 8,
    ...                      "size": ["base"] * 4 + ["large"] * 4,
    ...                      "accuracy": [0.50, 0.55, 0.52, 0.56, 0.60, 0.66, 0.61, 0.68]})
    >>> result = accuracy_analyse(runs, plan_load("paper").accuracy)
    >>> sorted(result.runs["method"].unique()), float(result.runs["accuracy"].max())
    (['cf:original', 'mt:original'], 68.0)
    """
    for column in ("method", "size", "accuracy"):
        if column not in runs.columns:
            raise AnalysisError(f"the accuracy table is missing the column {column!r}")
    values = _accuracy_values(runs, "accuracy")
    notes: list[str] = []
    if settings.methods:
        labels = runs["method"].astype(str)
        if "data_variant" in runs.columns:
            labels = labels + ":" + runs["data_variant"].astype(str)
        wanted = {m.casefold() for m in settings.methods}
        keep = labels.str.casefold().isin(wanted)
        if not keep.any():
            raise AnalysisError(
                "no accuracy run belongs to accuracy.methods ("
                + ", ".join(settings.methods)
                + "); the runs are of: "
                + ", ".join(sorted(labels.unique()))
            )
        found = set(labels[keep].str.casefold())
        absent = [m for m in settings.methods if m.casefold() not in found]
        if absent:
            notes.append(f"accuracy.methods names {', '.join(absent)}, which have no runs")
        left_out = sorted(labels[~keep].unique())
        if left_out:
            notes.append(f"runs of {', '.join(left_out)} are not in accuracy.methods: left out")
        frame = pd.DataFrame({"method": labels, "size": runs["size"].astype(str)})
    else:
        keep = pd.Series(True, index=runs.index)
        combined = accuracy_variants_combine(runs)
        frame = pd.DataFrame(
            {"method": combined["method"].astype(str), "size": runs["size"].astype(str)}
        )
    frame["accuracy"] = values
    frame = frame.loc[keep]
    if settings.scale == "percent":
        outside = (keep & ((values < 0) | (values > 1))).to_numpy()
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise AnalysisError(
                "accuracy.scale = 'percent' expects accuracies as proportions from 0 to 1; "
                f"row {first + 1} has {runs['accuracy'].iloc[first]!r} "
                "(use accuracy.scale = 'as_recorded' for values already in percent)"
            )
        frame["accuracy"] = frame["accuracy"] * 100
    outliers = pd.Series(False, index=frame.index)
    if settings.outliers:
        outliers = iqr_outliers(
            frame, "accuracy", by=["method", "size"], multiplier=settings.outlier_multiplier
        )
        notes.append(
            f"{int(outliers.sum())} run(s) outside {settings.outlier_multiplier:g} × IQR of "
            "their method × size cell removed"
        )
    frame = frame.loc[~outliers].reset_index(drop=True)
    result = accuracy_anova(frame, interaction=settings.interaction)
    return AccuracyResult(
        runs=frame,
        counts={
            "runs": len(runs),
            "left_out_methods": int((~keep).sum()),
            "outliers": int(outliers.sum()),
            "analysed": len(frame),
        },
        scale=settings.scale,
        anova=result.anova,
        tukey=result.tukey,
        notes=(*notes, *result.notes),
    )


def accuracy_summary(result: AccuracyResult) -> dict[str, Any]:
    """The result as summary.json's ``accuracy`` block.

    ``anova`` maps each term to ``F, df, p, ges`` (with ``sum_sq`` and
    ``eta_sq_partial``), ``residual`` holds the error term, and ``tukey`` maps each size to
    its list of pairs.
    """
    terms = result.anova[result.anova["source"] != "Residual"]
    residual = result.anova[result.anova["source"] == "Residual"].iloc[0]
    tukey: dict[str, list[dict[str, Any]]] = {}
    if not result.tukey.empty:
        for size, pairs in result.tukey.groupby("size", sort=True):
            tukey[str(size)] = [
                {key: row[key] for key in TUKEY_KEYS} for row in pairs.to_dict("records")
            ]
    return {
        "scale": result.scale,
        "runs": dict(result.counts),
        "anova": {
            row["source"]: {
                "F": row["F"],
                "df": row["df"],
                "p": row["p"],
                "ges": row["ges"],
                "sum_sq": row["sum_sq"],
                "eta_sq_partial": row["eta_sq_partial"],
            }
            for row in terms.to_dict("records")
        },
        "residual": {"sum_sq": float(residual["sum_sq"]), "df": float(residual["df"])},
        "tukey": tukey,
        "notes": list(result.notes),
    }


def _accuracy_values(df: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise AnalysisError(
            f"{column} must be a number; row {first + 1} has '{df[column].iloc[first]}'"
        )
    return values.astype(float)
