"""Participant and rating exclusions, applied in a fixed order and counted for the report."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.errors import AnalysisError
from analysis.load import DIMENSIONS, QUALITY

EXCLUSION_COLUMNS = ("rule", "description", "participants", "ratings")


@dataclass(frozen=True)
class Exclusions:
    """The ratings kept and one row per rule with what it removed."""

    kept: pd.DataFrame
    table: pd.DataFrame


def exclusions_apply(
    ratings: pd.DataFrame,
    *,
    min_seconds_per_item: float | None = None,
    drop_outliers: bool = False,
    attention_fail_threshold: int = 2,
) -> Exclusions:
    """Remove excluded participants, then (optionally) outlying ratings.

    Rules run in this order and each counts only what earlier rules left, so the counts add
    up to the total removed:

    1. ``researcher``: participants marked ``excluded``.
    2. ``attention``: ``attention_fail_threshold`` or more failed attention checks.
    3. ``straight_lining``: every rating of the participant (all dimensions, all items) has
       the same value.
    4. ``too_fast``: mean ``seconds_on_item`` below ``min_seconds_per_item`` (only when given;
       participants without recorded times are kept).
    5. ``outlier``: with ``drop_outliers``, rated items whose ``quality`` lies outside
       ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`` of their condition (the paper's rule).

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
    """
    if min_seconds_per_item is not None and min_seconds_per_item < 0:
        raise AnalysisError("min_seconds_per_item must be zero or more")
    if attention_fail_threshold < 1:
        raise AnalysisError("attention_fail_threshold must be at least 1")
    per_participant = ratings.groupby("participant", sort=False)
    values = ratings[list(DIMENSIONS)]
    straight = (
        values.min(axis=1).groupby(ratings["participant"]).min()
        == values.max(axis=1).groupby(ratings["participant"]).max()
    )
    rules: list[tuple[str, str, pd.Series | None]] = [
        ("researcher", "excluded by a researcher", per_participant["excluded"].any()),
        (
            "attention",
            f"failed {attention_fail_threshold} or more attention checks",
            per_participant["attention_failed"].max() >= attention_fail_threshold,
        ),
        ("straight_lining", "gave the same rating everywhere", straight),
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
    outliers = _quality_outliers(kept) if drop_outliers else pd.Series(False, index=kept.index)
    rows.append(
        {
            "rule": "outlier",
            "description": "quality outside 1.5 × IQR of its condition"
            if drop_outliers
            else "not applied",
            "participants": 0,
            "ratings": int(outliers.sum()),
        }
    )
    kept = kept.loc[~outliers]
    table = pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS))
    if kept.empty:
        removed = ", ".join(f"{r['rule']} {r['ratings']}" for r in rows if r["ratings"])
        raise AnalysisError(
            f"no ratings are left after exclusions (ratings removed by rule: {removed})"
        )
    return Exclusions(kept=kept.reset_index(drop=True), table=table)


def _quality_outliers(ratings: pd.DataFrame) -> pd.Series:
    grouped = ratings.groupby("condition")[QUALITY]
    q1 = grouped.transform(lambda s: s.quantile(0.25))
    q3 = grouped.transform(lambda s: s.quantile(0.75))
    iqr = q3 - q1
    return (ratings[QUALITY] < q1 - 1.5 * iqr) | (ratings[QUALITY] > q3 + 1.5 * iqr)
