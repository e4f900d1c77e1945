"""summary.json: the analysis results as plain data, the schema of docs/analysis.md."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from analysis.accuracy import AccuracyResult, accuracy_summary
from analysis.errors import AnalysisError
from analysis.load import QUALITY, ratings_scale_points
from analysis.plan import AnalysisPlan, Deviation
from analysis.regression import ModelFit

# Post-hoc tables in the order summary.json lists them, with the column of their statistic.
POSTHOC_STATISTICS = (("tukey", "q"), ("dunn-bonferroni", "z"), ("dunn-holm", "z"))
T = TypeVar("T")

Differences = dict[str, dict[str, pd.DataFrame | None] | None]


class Problems:
    """Statistics that could not be computed, each with its reason, for JSON and HTML."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def attempt(self, what: str, compute: Callable[[], T]) -> T | None:
        try:
            return compute()
        except AnalysisError as exc:
            self.items.append({"what": what, "reason": str(exc)})
            return None
        except np.linalg.LinAlgError as exc:
            # A singular system in one model (tiny or collinear data) costs that model only.
            self.items.append({"what": what, "reason": f"numerical failure ({exc})"})
            return None

    def reason(self, what: str) -> str | None:
        return next((p["reason"] for p in self.items if p["what"] == what), None)


@dataclass
class Results:
    """Everything the report computed, handed to :func:`summary_build` and the tables."""

    data: pd.DataFrame
    frames: dict[str, pd.DataFrame]
    conditions: list[str]
    reference: str
    plan: AnalysisPlan
    used: AnalysisPlan
    deviations: list[Deviation]
    registered_sha256: str | None
    exclusions: pd.DataFrame
    desc: pd.DataFrame
    differences: Differences
    not_run: list[dict[str, str]]
    models: dict[str, ModelFit | None]
    ordinal: dict[str, ModelFit | None] | None
    reliability: dict[str, Any] | None
    accuracy: AccuracyResult | None
    # The file's dimension keys, in its order (analysis.load.ratings_dimensions).
    dimensions: tuple[str, ...]
    problems: Problems = field(default_factory=Problems)

    @property
    def dvs(self) -> tuple[str, ...]:
        """What the tests of differences analyse: each dimension, then quality."""
        return (*self.dimensions, QUALITY)


def clean(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _record(table: pd.DataFrame | None, keys: Sequence[str], reason: str | None) -> dict[str, Any]:
    if table is None:
        return {**dict.fromkeys(keys), "not_computable": reason}
    return {k: table.iloc[0][k] for k in keys}


def model_json(fit: ModelFit | None, reason: str | None) -> dict[str, Any] | None:
    """A fitted model as JSON; None when not run, ``{"not_computable": ...}`` when it failed."""
    if fit is None:
        return None if reason is None else {"not_computable": reason}
    coef = {
        row.term: {
            "estimate": row.estimate,
            "se": row.se,
            "p": row.p,
            "statistic": row.statistic,
            "ci_low": row.ci_low,
            "ci_high": row.ci_high,
        }
        for row in fit.coef.itertuples()
    }
    return {
        "formula": fit.formula,
        "n": fit.n,
        **dict(fit.stats.items()),
        "coef": coef,
        "warnings": list(fit.warnings),
    }


def plan_json(
    plan: AnalysisPlan, deviations: Sequence[Deviation], registered_sha256: str | None
) -> dict[str, Any]:
    """summary.json's ``plan`` block: the plan in full, its hash, deviations and registration."""
    registered = None
    if registered_sha256 is not None:
        matches = registered_sha256 == plan.sha256
        registered = {
            "sha256": registered_sha256,
            "matches": matches,
            "unchanged": matches and not deviations,
        }
    return {
        "name": plan.name,
        "description": plan.description,
        "sha256": plan.sha256,
        "settings": plan.settings(),
        "reasons": dict(plan.reasons),
        "deviations": [d.as_dict() for d in deviations],
        "registered": registered,
        "text": plan.text,
    }


def _posthoc(results: Results) -> dict[str, list[dict[str, Any]]]:
    posthoc: dict[str, list[dict[str, Any]]] = {}
    for dv in results.dvs:
        entries: list[dict[str, Any]] = []
        for name, statistic in POSTHOC_STATISTICS:
            tables = results.differences.get(name)
            table = tables[dv] if tables is not None else None
            if table is None:
                continue
            entries.extend(
                {
                    "a": r["a"],
                    "b": r["b"],
                    "statistic": r[statistic],
                    "p": r.get("p_unc"),
                    "p_adj": r["p_adj"],
                    "method": r["method"],
                }
                for r in table.to_dict("records")
            )
        posthoc[dv] = entries
    return posthoc


def _per_dv(
    results: Results, test: str, keys: Sequence[str], hidden: Sequence[str] = ()
) -> dict[str, dict[str, Any]] | None:
    tables = results.differences.get(test)
    if tables is None:
        return None
    out = {}
    for dv in results.dvs:
        record = _record(tables[dv], keys, results.problems.reason(f"{test} {dv}"))
        out[dv] = {k: (None if k in hidden else v) for k, v in record.items()}
    return out


def _reliability(results: Results) -> dict[str, Any] | None:
    reliability = results.reliability
    if reliability is None:
        return None
    loadings = reliability["loadings"]
    return {
        "cronbach_alpha": reliability["cronbach_alpha"],
        "mcdonald_omega": reliability["mcdonald_omega"],
        "loadings": None
        if loadings is None
        else dict(zip(loadings["item"], loadings["loading"], strict=True)),
        "method_omega": "one-factor maximum-likelihood model on the item correlations; omega of the raw sum score",
        "not_computable": [p for p in results.problems.items if p["what"].startswith("reliability")]
        or None,
    }


def summary_build(results: Results) -> dict[str, Any]:
    """The content of summary.json (see docs/analysis.md for every key)."""
    used = results.used
    problems = results.problems
    tested = results.frames["tests"]
    effects = used.effect_sizes
    shapiro_tables = results.differences.get("shapiro")
    vda_tables = results.differences.get("vda")
    ordinal = results.ordinal
    exclusions = used.exclusions
    outliers = used.outliers
    summary: dict[str, Any] = {
        "n_participants": int(tested["participant"].nunique()),
        "n_ratings": len(tested),
        "conditions": results.conditions,
        "dimensions": list(results.dvs),
        "anova": _per_dv(
            results,
            "anova",
            ("F", "df_between", "df_within", "p", "eta_sq"),
            hidden=() if effects.eta_sq else ("eta_sq",),
        ),
        "kruskal": _per_dv(
            results,
            "kruskal",
            ("H", "df", "p", "epsilon_sq"),
            hidden=() if effects.epsilon_sq else ("epsilon_sq",),
        ),
        "posthoc": _posthoc(results),
        "posthoc_not_run": results.not_run,
        "vda": None
        if vda_tables is None
        else {
            dv: [{k: r[k] for k in ("a", "b", "A", "magnitude")} for r in table.to_dict("records")]
            for dv, table in vda_tables.items()
            if table is not None
        },
        "regression": {
            name: model_json(results.models[name], problems.reason(f"regression {name}"))
            for name in ("ols", "ols_covariates", "mixed")
        },
        "reference": results.reference,
        "plan": plan_json(results.plan, results.deviations, results.registered_sha256),
        "options": {
            "reference": results.reference,
            "drop_outliers": outliers.enabled,
            "covariates": list(used.regression.covariates),
            "min_seconds_per_item": exclusions.min_seconds_per_item
            if exclusions.too_fast
            else None,
            "attention_fail_threshold": exclusions.attention_fail_threshold
            if exclusions.attention
            else None,
        },
        "input": {
            "n_participants": int(results.data["participant"].nunique()),
            "n_ratings": len(results.data),
            "scale_points": ratings_scale_points(results.data),
        },
        "exclusions": results.exclusions.to_dict("records"),
        "outliers": {
            "enabled": outliers.enabled,
            "multiplier": outliers.multiplier,
            "applies_to": list(outliers.applies_to) if outliers.enabled else [],
            "n_ratings": {name: len(frame) for name, frame in results.frames.items()},
        },
        "descriptives": {
            dv: {
                r["condition"]: {
                    k: r[k] for k in ("n", "mean", "sd", "se", "median", "ci_low", "ci_high")
                }
                for r in rows.to_dict("records")
            }
            for dv, rows in results.desc.groupby("dimension", sort=False)
        },
        "levene": _per_dv(results, "levene", ("W", "df_between", "df_within", "p")),
        "shapiro": None
        if shapiro_tables is None
        else {
            dv: (
                t.drop(columns="note").to_dict("records")
                if t is not None
                else {"not_computable": problems.reason(f"shapiro {dv}")}
            )
            for dv, t in shapiro_tables.items()
        },
        "reliability": _reliability(results),
        "not_computable": problems.items,
    }
    summary["regression"]["ordinal"] = (
        None
        if ordinal is None
        else {
            dim: model_json(fit, problems.reason(f"ordinal {dim}")) for dim, fit in ordinal.items()
        }
    )
    for name in ("ols", "ols_covariates"):
        block = summary["regression"][name]
        if block is not None and "coef" in block:
            block["plan"] = results.plan.name
    if results.accuracy is not None:
        summary["accuracy"] = accuracy_summary(results.accuracy)
    elif problems.reason("accuracy anova"):
        summary["accuracy"] = {"not_computable": problems.reason("accuracy anova")}
    return clean(summary)
