"""The full analysis of a ratings export, written as report.html, summary.json, tables and figures."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from analysis import figures
from analysis.accuracy import AccuracyAnova, accuracy_anova, accuracy_variants_combine
from analysis.descriptives import descriptives
from analysis.errors import AnalysisError
from analysis.exclusions import exclusions_apply
from analysis.html import report_html
from analysis.load import DIMENSIONS, QUALITY, conditions_check, ratings_load, reference_default
from analysis.regression import ModelFit, covariates_check, mixed_fit, ols_fit, ordinal_fit
from analysis.reliability import correlations, cronbach_alpha, mcdonald_omega, one_factor_ml
from analysis.tests_differences import anova_oneway, dunn, kruskal, levene, shapiro, tukey_hsd

DVS = (*DIMENSIONS, QUALITY)
T = TypeVar("T")


class _Problems:
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


@contextmanager
def _stage(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    if timings is not None:
        timings[name] = time.perf_counter() - start


def report_write(
    ratings: pd.DataFrame,
    out_dir: Path,
    *,
    reference: str | None = None,
    drop_outliers: bool = False,
    covariates: Sequence[str] = (),
    min_seconds_per_item: float | None = None,
    attention_fail_threshold: int = 2,
    accuracy: pd.DataFrame | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Analyse a ratings export and write the report directory.

    Parameters
    ----------
    ratings : pandas.DataFrame
        The ratings export (raw or from :func:`analysis.load.ratings_load`; validated again).
    out_dir : Path
        Created if needed; receives ``report.html``, ``summary.json``, ``tables/*.csv`` and
        ``figures/*.png``.
    reference : str, optional
        Reference condition of the regressions; default: the "CF:..." condition if there is
        one, else the first condition in sorted order.
    drop_outliers : bool
        Drop rated items whose quality is outside 1.5 × IQR of their condition.
    covariates : sequence of str
        Extra (demographic) columns for a second OLS model.
    min_seconds_per_item : float, optional
        Exclude participants faster than this on average.
    attention_fail_threshold : int
        Exclude participants with this many failed attention checks or more.
    accuracy : pandas.DataFrame, optional
        Accuracy of the distillation runs (``method, size, accuracy``, one row per run, as in
        the pipeline's ``accuracy_runs.csv``) for the two-way ANOVA; several data variants
        are told apart in the method (see :func:`analysis.accuracy.accuracy_variants_combine`).
    timings : dict, optional
        Filled with the seconds spent in each stage.

    Returns
    -------
    dict
        The content of summary.json.

    Raises
    ------
    AnalysisError
        Input that cannot be analysed at all (see :func:`analysis.load.ratings_load`,
        :func:`analysis.exclusions.exclusions_apply`); statistics that cannot be computed
        for one dimension or model are reported as "not computable" instead.
    """
    out_dir = Path(out_dir)
    problems = _Problems()
    with _stage(timings, "load"):
        data = ratings_load(ratings, reference=reference)
        covariates_check(data, covariates)
        _check_variation(data)
    with _stage(timings, "exclusions"):
        excluded = exclusions_apply(
            data,
            min_seconds_per_item=min_seconds_per_item,
            drop_outliers=drop_outliers,
            attention_fail_threshold=attention_fail_threshold,
        )
        kept = excluded.kept
        conditions = conditions_check(kept, reference=reference)
        reference = reference or reference_default(conditions)
    with _stage(timings, "descriptives"):
        desc = descriptives(kept, dvs=DVS)
    with _stage(timings, "differences"):
        differences = _differences(kept, problems)
    with _stage(timings, "ols"):
        ols = problems.attempt("regression ols", lambda: ols_fit(kept, reference=reference))
        ols_cov = (
            problems.attempt(
                "regression ols_covariates",
                lambda: ols_fit(kept, reference=reference, covariates=covariates),
            )
            if covariates
            else None
        )
    with _stage(timings, "ordinal"):
        ordinal = {
            dim: problems.attempt(
                f"ordinal {dim}", partial(ordinal_fit, kept, dv=dim, reference=reference)
            )
            for dim in DIMENSIONS
        }
    with _stage(timings, "mixed"):
        mixed = problems.attempt("regression mixed", lambda: mixed_fit(kept, reference=reference))
    with _stage(timings, "reliability"):
        reliability = _reliability(kept, problems)
    with _stage(timings, "accuracy"):
        if accuracy is not None:
            accuracy = accuracy_variants_combine(accuracy)
        acc = (
            problems.attempt("accuracy anova", partial(accuracy_anova, accuracy))
            if accuracy is not None
            else None
        )
    with _stage(timings, "figures"):
        pngs = _figures(kept, desc, ols, mixed, accuracy if acc is not None else None)
    summary = _summary(
        data=data,
        kept=kept,
        conditions=conditions,
        reference=reference,
        options={
            "reference": reference,
            "drop_outliers": drop_outliers,
            "covariates": list(covariates),
            "min_seconds_per_item": min_seconds_per_item,
            "attention_fail_threshold": attention_fail_threshold,
        },
        exclusions=excluded.table,
        desc=desc,
        differences=differences,
        models={"ols": ols, "ols_covariates": ols_cov, "mixed": mixed},
        ordinal=ordinal,
        reliability=reliability,
        acc=acc,
        problems=problems,
    )
    with _stage(timings, "write"):
        tables = _tables(
            excluded.table, desc, differences, ols, ols_cov, mixed, ordinal, reliability, acc
        )
        _write(out_dir, summary, tables, pngs)
    return summary


def _check_variation(data: pd.DataFrame) -> None:
    values = np.unique(data[list(DIMENSIONS)].to_numpy())
    if len(values) == 1:
        raise AnalysisError(
            f"every rating in the data is {values[0]}, so there is no variation to analyse"
        )


def _differences(
    kept: pd.DataFrame, problems: _Problems
) -> dict[str, dict[str, pd.DataFrame | None]]:
    tests: dict[str, Callable[..., pd.DataFrame]] = {
        "anova": anova_oneway,
        "kruskal": kruskal,
        "levene": levene,
        "shapiro": shapiro,
        "tukey": tukey_hsd,
        "dunn-bonferroni": partial(dunn, p_adjust_method="bonferroni"),
        "dunn-holm": partial(dunn, p_adjust_method="holm"),
    }
    return {
        name: {dv: problems.attempt(f"{name} {dv}", partial(test, kept, dv=dv)) for dv in DVS}
        for name, test in tests.items()
    }


def _reliability(kept: pd.DataFrame, problems: _Problems) -> dict[str, Any]:
    return {
        "cronbach_alpha": problems.attempt(
            "reliability cronbach_alpha", lambda: cronbach_alpha(kept, items=DIMENSIONS)
        ),
        "mcdonald_omega": problems.attempt(
            "reliability mcdonald_omega", lambda: mcdonald_omega(kept, items=DIMENSIONS)
        ),
        "loadings": problems.attempt(
            "reliability loadings", lambda: one_factor_ml(kept, items=DIMENSIONS)
        ),
        "correlations": correlations(kept, items=DIMENSIONS),
    }


def _figures(
    kept: pd.DataFrame,
    desc: pd.DataFrame,
    ols: ModelFit | None,
    mixed: ModelFit | None,
    accuracy: pd.DataFrame | None,
) -> dict[str, bytes]:
    made = {
        "means": figures.figure_means(desc),
        "distributions": figures.figure_distributions(kept, dims=DVS),
    }
    coefficient_tables = {f"{m.name.upper()}": m.coef for m in (ols, mixed) if m is not None}
    if coefficient_tables:
        made["coefficients"] = figures.figure_coefficients(
            coefficient_tables, exclude=("Intercept", "explanation_length")
        )
    if accuracy is not None:
        made["interaction"] = figures.figure_interaction(accuracy)
    return {name: figures.figure_png(figure) for name, figure in made.items()}


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


def _model_json(fit: ModelFit | None, reason: str | None) -> dict[str, Any] | None:
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
    extra = dict(fit.stats.items())
    return {
        "formula": fit.formula,
        "n": fit.n,
        **extra,
        "coef": coef,
        "warnings": list(fit.warnings),
    }


def _summary(
    *,
    data: pd.DataFrame,
    kept: pd.DataFrame,
    conditions: list[str],
    reference: str,
    options: dict[str, Any],
    exclusions: pd.DataFrame,
    desc: pd.DataFrame,
    differences: dict[str, dict[str, pd.DataFrame | None]],
    models: dict[str, ModelFit | None],
    ordinal: dict[str, ModelFit | None],
    reliability: dict[str, Any],
    acc: AccuracyAnova | None,
    problems: _Problems,
) -> dict[str, Any]:
    posthoc: dict[str, list[dict[str, Any]]] = {}
    for dv in DVS:
        entries: list[dict[str, Any]] = []
        for name, statistic in (("tukey", "q"), ("dunn-bonferroni", "z"), ("dunn-holm", "z")):
            table = differences[name][dv]
            if table is not None:
                entries.extend(
                    {
                        "a": r["a"],
                        "b": r["b"],
                        "statistic": r[statistic],
                        "p_adj": r["p_adj"],
                        "method": r["method"],
                    }
                    for r in table.to_dict("records")
                )
        posthoc[dv] = entries
    loadings = reliability["loadings"]

    def per_dv(test: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {
            dv: _record(differences[test][dv], keys, problems.reason(f"{test} {dv}")) for dv in DVS
        }

    summary = {
        "n_participants": int(kept["participant"].nunique()),
        "n_ratings": len(kept),
        "conditions": conditions,
        "dimensions": list(DVS),
        "anova": per_dv("anova", ("F", "df_between", "df_within", "p", "eta_sq")),
        "kruskal": per_dv("kruskal", ("H", "df", "p", "epsilon_sq")),
        "posthoc": posthoc,
        "regression": {
            "ols": _model_json(models["ols"], problems.reason("regression ols")),
            "ols_covariates": _model_json(
                models["ols_covariates"], problems.reason("regression ols_covariates")
            ),
            "mixed": _model_json(models["mixed"], problems.reason("regression mixed")),
            "ordinal": {
                dim: _model_json(fit, problems.reason(f"ordinal {dim}"))
                for dim, fit in ordinal.items()
            },
        },
        "reference": reference,
        "options": options,
        "input": {"n_participants": int(data["participant"].nunique()), "n_ratings": len(data)},
        "exclusions": exclusions.to_dict("records"),
        "descriptives": {
            dv: {
                r["condition"]: {
                    k: r[k] for k in ("n", "mean", "sd", "se", "median", "ci_low", "ci_high")
                }
                for r in rows.to_dict("records")
            }
            for dv, rows in desc.groupby("dimension", sort=False)
        },
        "levene": per_dv("levene", ("W", "df_between", "df_within", "p")),
        "shapiro": {
            dv: (
                t.drop(columns="note").to_dict("records")
                if t is not None
                else {"not_computable": problems.reason(f"shapiro {dv}")}
            )
            for dv, t in differences["shapiro"].items()
        },
        "reliability": {
            "cronbach_alpha": reliability["cronbach_alpha"],
            "mcdonald_omega": reliability["mcdonald_omega"],
            "loadings": None
            if loadings is None
            else dict(zip(loadings["item"], loadings["loading"], strict=True)),
            "method_omega": "one-factor maximum-likelihood model on the item correlations; omega of the raw sum score",
            "not_computable": [p for p in problems.items if p["what"].startswith("reliability")]
            or None,
        },
        "not_computable": problems.items,
    }
    if acc is not None:
        summary["accuracy"] = {
            "anova": acc.anova.to_dict("records"),
            "tukey": acc.tukey.to_dict("records"),
            "notes": list(acc.notes),
        }
    elif problems.reason("accuracy anova"):
        summary["accuracy"] = {"not_computable": problems.reason("accuracy anova")}
    return clean(summary)


def _tables(
    exclusions: pd.DataFrame,
    desc: pd.DataFrame,
    differences: dict[str, dict[str, pd.DataFrame | None]],
    ols: ModelFit | None,
    ols_cov: ModelFit | None,
    mixed: ModelFit | None,
    ordinal: dict[str, ModelFit | None],
    reliability: dict[str, Any],
    acc: AccuracyAnova | None,
) -> dict[str, pd.DataFrame]:
    def stacked(parts: dict[str, pd.DataFrame | None], key: str = "dimension") -> pd.DataFrame:
        frames = [
            t.assign(**{key: name})[[key, *t.columns]] for name, t in parts.items() if t is not None
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({key: []})

    tables = {
        "exclusions": exclusions,
        "descriptives": desc,
        **{
            name: stacked(differences[name])
            for name in ("anova", "kruskal", "levene", "shapiro", "tukey")
        },
        "dunn": pd.concat(
            [stacked(differences["dunn-bonferroni"]), stacked(differences["dunn-holm"])],
            ignore_index=True,
        ),
        "regression_ordinal": stacked(
            {dim: fit.coef if fit else None for dim, fit in ordinal.items()}
        ),
        "correlations": reliability["correlations"],
        "reliability": pd.DataFrame(
            {
                "coefficient": ["cronbach_alpha", "mcdonald_omega"],
                "value": [reliability["cronbach_alpha"], reliability["mcdonald_omega"]],
            }
        ),
    }
    for name, fit in (
        ("regression_ols", ols),
        ("regression_ols_covariates", ols_cov),
        ("regression_mixed", mixed),
    ):
        if fit is not None:
            tables[name] = fit.coef
    if reliability["loadings"] is not None:
        tables["factor_loadings"] = reliability["loadings"]
    if acc is not None:
        tables["accuracy_anova"] = acc.anova
        tables["accuracy_tukey"] = acc.tukey
    return tables


def _write(
    out_dir: Path, summary: dict[str, Any], tables: dict[str, pd.DataFrame], pngs: dict[str, bytes]
) -> None:
    try:
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_csv(out_dir / "tables" / f"{name}.csv", index=False)
        for name, png in pngs.items():
            (out_dir / "figures" / f"{name}.png").write_bytes(png)
        (out_dir / "summary.json").write_text(
            json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        images = {name: base64.b64encode(png).decode("ascii") for name, png in pngs.items()}
        (out_dir / "report.html").write_text(report_html(summary, tables, images), encoding="utf-8")
    except OSError as exc:
        raise AnalysisError(
            f"cannot write the report to {out_dir}: {exc.strerror or exc}"
        ) from None
