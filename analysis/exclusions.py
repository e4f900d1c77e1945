"""Participant and rating exclusions, applied in a fixed order and counted for the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.errors import AnalysisError
from analysis.load import QUALITY, ratings_dimensions

EXCLUSION_COLUMNS = ("rule", "description", "participants", "ratings")


@dataclass(frozen=True)
class Exclusions:
    """The ratings kept, those left for outlier-trimmed analyses, and one row per rule."""

    kept: pd.DataFrame
    table: pd.DataFrame
    trimmed: pd.DataFrame


def exclusions_apply(
    ratings: pd.DataFrame,
    *,
    researcher: bool = True,
    attention_fail_threshold: int | None = 2,
    straight_lining: bool = True,
    min_seconds_per_item: float | None = None,
    drop_outliers: bool = False,
    outlier_multiplier: float = 1.5,
    outliers_for: str | None = None,
) -> Exclusions:
    """Remove excluded participants, then (optionally) outlying ratings.

    Rules run in this order and each counts only what earlier rules left, so the counts add
    up to the total removed:

    1. ``researcher``: participants marked ``excluded`` (unless ``researcher`` is False).
    2. ``attention``: ``attention_fail_threshold`` or more failed attention checks (off
       when the threshold is None).
    3. ``straight_lining``: every rating of the participant (all dimensions, all items) has
       the same value (unless ``straight_lining`` is False).
    4. ``too_fast``: mean ``seconds_on_item`` below ``min_seconds_per_item`` (only when given;
       participants without recorded times are kept).
    5. ``outlier``: with ``drop_outliers``, rated items whose ``quality`` lies strictly
       outside ``[Q1 - k IQR, Q3 + k IQR]`` of their condition (``k = outlier_multiplier``,
       type-7 quantiles), see :func:`iqr_outliers`.

    Parameters
    ----------
    outliers_for : str, optional
        With ``drop_outliers``, the analyses the trim applies to, for the table's
        description. When given, outliers stay in ``kept`` and are removed from ``trimmed``
        only; otherwise they are removed from both.

    Returns
    -------
    Exclusions
        ``kept`` (ratings left by the rules), ``trimmed`` (``kept`` without outliers) and
        ``table`` (``rule, description, participants, ratings``).

    Raises
    ------
    AnalysisError
        Nothing is left, naming the rules that removed the ratings.

    Examples
    --------
    >>> from analysis.simulate import ratings_simulate
    >>> from analysis.load import ratings_load
    >>> result = exclusions_apply(ratings_load(ratings_simulate(50, seed=3)))
    >>> result.table["rule"].tolist()
    ['researcher', 'attention', 'straight_lining', 'too_fast', 'outlier']
    >>> result.table["description"].iloc[-1]
    'not applied'
    """
    if min_seconds_per_item is not None and min_seconds_per_item < 0:
        raise AnalysisError("min_seconds_per_item must be zero or more")
    if attention_fail_threshold is not None and attention_fail_threshold < 1:
        raise AnalysisError("attention_fail_threshold must be at least 1")
    per_participant = ratings.groupby("participant", sort=False)
    values = ratings[list(ratings_dimensions(ratings))]
    straight = (
        values.min(axis=1).groupby(ratings["participant"]).min()
        == values.max(axis=1).groupby(ratings["participant"]).max()
    )
    rules: list[tuple[str, str, pd.Series | None]] = [
        (
            "researcher",
            "excluded by a researcher",
            per_participant["excluded"].any() if researcher else None,
        ),
        (
            "attention",
            f"failed {attention_fail_threshold} or more attention checks",
            per_participant["attention_failed"].max() >= attention_fail_threshold
            if attention_fail_threshold is not None
            else None,
        ),
        (
            "straight_lining",
            "gave the same rating everywhere",
            straight if straight_lining else None,
        ),
        (
            "too_fast",
            f"under {min_seconds_per_item:g} s per item on average"
            if min_seconds_per_item is not None
            else "not applied (no minimum time)",
            per_participant["seconds_on_item"].mean() < min_seconds_per_item
            if min_seconds_per_item is not None
            else None,
        ),
    ]
    kept = ratings
    rows = []
    for rule, description, flagged in rules:
        if flagged is None:
            if not description.startswith("not applied"):
                description = "not applied"
            rows.append({"rule": rule, "description": description, "participants": 0, "ratings": 0})
            continue
        drop = kept["participant"].map(flagged).fillna(False).astype(bool)
        rows.append(
            {
                "rule": rule,
                "description": description,
                "participants": int(kept.loc[drop, "participant"].nunique()),
                "ratings": int(drop.sum()),
            }
        )
        kept = kept.loc[~drop]
    outliers = (
        iqr_outliers(kept, QUALITY, by=["condition"], multiplier=outlier_multiplier)
        if drop_outliers
        else pd.Series(False, index=kept.index)
    )
    description = "not applied"
    if drop_outliers:
        description = f"quality outside {outlier_multiplier:g} × IQR of its condition"
        if outliers_for is not None:
            description += f"; left out of: {outliers_for}"
    rows.append(
        {
            "rule": "outlier",
            "description": description,
            "participants": 0,
            "ratings": int(outliers.sum()),
        }
    )
    trimmed = kept.loc[~outliers]
    if outliers_for is None:
        kept = trimmed
    table = pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS))
    if trimmed.empty:
        removed = ", ".join(f"{r['rule']} {r['ratings']}" for r in rows if r["ratings"])
        raise AnalysisError(
            f"no ratings are left after exclusions (ratings removed by rule: {removed})"
        )
    return Exclusions(
        kept=kept.reset_index(drop=True),
        table=table,
        trimmed=trimmed.reset_index(drop=True),
    )


def iqr_outliers(
    data: pd.DataFrame, column: str, *, by: Sequence[str], multiplier: float = 1.5
) -> pd.Series:
    """Rows whose ``column`` lies strictly outside ``[Q1 - k IQR, Q3 + k IQR]`` of their group.

    Quartiles are type 7 (linear interpolation; R's ``quantile`` default, as rstatix's
    ``identify_outliers`` uses), so a value exactly on a fence is kept.

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["a"] * 5, "x": [1.0, 2.0, 3.0, 4.0, 7.0]})
    >>> iqr_outliers(df, "x", by=["g"]).tolist()  # Q3 + 1.5 IQR = 7: on the fence
    [False, False, False, False, False]
    >>> iqr_outliers(df.assign(x=[1.0, 2.0, 3.0, 4.0, 7.5]), "x", by=["g"]).tolist()
    [False, False, False, False, True]
    """
    grouped = data.groupby(list(by), sort=False)[column]
    q1 = grouped.transform(lambda s: s.quantile(0.25))
    q3 = grouped.transform(lambda s: s.quantile(0.75))
    iqr = q3 - q1
    return (data[column] < q1 - multiplier * iqr) | (data[column] > q3 + multiplier * iqr)
