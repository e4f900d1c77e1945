"""The full analysis of a ratings export under an analysis plan.

:func:`report_write` runs what the plan names (:mod:`analysis.plan`) and writes report.html,
summary.json, tables and figures.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures
from analysis.accuracy import AccuracyResult, accuracy_analyse
from analysis.descriptives import descriptives
from analysis.effect_sizes import vargha_delaney
from analysis.errors import AnalysisError
from analysis.exclusions import exclusions_apply
from analysis.html import report_html
from analysis.load import (
    QUALITY,
    conditions_check,
    frame_escape,
    length_column,
    ratings_dimensions,
    ratings_load,
    ratings_scale_points,
    reference_default,
)
from analysis.plan import (
    ANALYSES,
    REFERENCE_AUTO,
    AnalysisPlan,
    DifferenceSettings,
    EffectSizeSettings,
    plan_load,
    plan_override,
)
from analysis.regression import ModelFit, covariates_check, mixed_fit, ols_fit, ordinal_fit
from analysis.reliability import correlations, cronbach_alpha, mcdonald_omega, one_factor_ml
from analysis.summary import Differences, Problems, Results, summary_build
from analysis.tests_differences import anova_oneway, dunn, kruskal, levene, shapiro, tukey_hsd

DIFFERENCE_TESTS = (
    "anova",
    "kruskal",
    "levene",
    "shapiro",
    "tukey",
    "dunn-bonferroni",
    "dunn-holm",
    "vda",
)


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
    plan: AnalysisPlan | None = None,
    reference: str | None = None,
    drop_outliers: bool | None = None,
    covariates: Sequence[str] | None = None,
    min_seconds_per_item: float | None = None,
    attention_fail_threshold: int | None = None,
    accuracy: pd.DataFrame | None = None,
    registered_sha256: str | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Analyse a ratings export under an analysis plan and write the report directory.

    Parameters
    ----------
    ratings : pandas.DataFrame
        The ratings export (raw or from :func:`analysis.load.ratings_load`; validated again).
    out_dir : Path
        Created if needed; receives ``report.html``, ``summary.json``, ``tables/*.csv`` and
        ``figures/*.png``. Nothing is written when the input or the plan is refused.
    plan : AnalysisPlan, optional
        The analysis plan (:func:`analysis.plan.plan_load`); default: the ``standard`` plan.
    reference, drop_outliers, covariates, min_seconds_per_item, attention_fail_threshold
        When given, override one setting of the plan each (``regression.reference``,
        ``outliers.enabled``, ``regression.covariates``, the too-fast and the attention
        exclusion, which they also switch on). Each override that changes the plan's value
        is listed as a deviation. A ``reference`` equal to what the plan's "auto" picks is
        not a deviation.
    accuracy : pandas.DataFrame, optional
        Accuracy of the distillation runs (``method, size, accuracy``, one row per run, as in
        the pipeline's ``accuracy_runs.csv``), analysed by
        :func:`analysis.accuracy.accuracy_analyse` under the plan's ``[accuracy]``.
    registered_sha256 : str, optional
        The hash of the plan a study registered; summary.json says whether the analysis
        ran under that plan unchanged (same hash, no deviations).
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
        :func:`analysis.exclusions.exclusions_apply`), a reference condition or covariate
        that is not in the data, an override the plan does not accept; statistics that
        cannot be computed for one dimension or model are reported as "not computable".
    """
    out_dir = Path(out_dir)
    plan = plan if plan is not None else plan_load("standard")
    problems = Problems()
    with _stage(timings, "load"):
        data = ratings_load(ratings)
        # Every analysis below runs over the file's own dimensions (its questionnaire's).
        dimensions = ratings_dimensions(data)
        dvs = (*dimensions, QUALITY)
        all_conditions = conditions_check(data, reference=reference)
        if (
            reference is not None
            and plan.regression.reference == REFERENCE_AUTO
            and reference == reference_default(all_conditions)
        ):
            reference = None
        used, deviations = plan_override(
            plan,
            reference=reference,
            drop_outliers=drop_outliers,
            covariates=covariates,
            min_seconds_per_item=min_seconds_per_item,
            attention_fail_threshold=attention_fail_threshold,
        )
        named_reference = _reference_check(used, all_conditions)
        covariates_check(data, used.regression.covariates)
        length = length_column(data, used.regression.length)
        _check_variation(data, dimensions)
    with _stage(timings, "exclusions"):
        frames, table = _exclusions(data, used)
        conditions = conditions_check(frames["tests"], reference=named_reference)
        reference_used = named_reference or reference_default(conditions)
    with _stage(timings, "descriptives"):
        desc = descriptives(frames["descriptives"], dvs=dvs)
    with _stage(timings, "differences"):
        differences, not_run = _differences(
            frames["tests"], used.tests, used.effect_sizes, problems, dvs=dvs
        )
    regression = used.regression
    fit_data = frames["regression"]
    with _stage(timings, "ols"):
        ols_options: dict[str, Any] = {
            "reference": reference_used,
            "length": length,
            "se": regression.se,
            "min_clusters": regression.min_clusters,
            "se_fallback": regression.se_fallback,
        }
        ols = problems.attempt("regression ols", partial(ols_fit, fit_data, **ols_options))
        ols_cov = (
            problems.attempt(
                "regression ols_covariates",
                partial(ols_fit, fit_data, covariates=regression.covariates, **ols_options),
            )
            if regression.covariates
            else None
        )
    with _stage(timings, "ordinal"):
        ordinal = (
            {
                dim: problems.attempt(
                    f"ordinal {dim}",
                    partial(ordinal_fit, fit_data, dv=dim, reference=reference_used, length=length),
                )
                for dim in dimensions
            }
            if regression.ordinal
            else None
        )
    with _stage(timings, "mixed"):
        mixed = (
            problems.attempt(
                "regression mixed",
                partial(mixed_fit, fit_data, reference=reference_used, length=length),
            )
            if regression.mixed
            else None
        )
    with _stage(timings, "reliability"):
        reliability = (
            _reliability(frames["reliability"], problems, dimensions)
            if used.reliability.enabled
            else None
        )
    with _stage(timings, "accuracy"):
        acc = (
            problems.attempt("accuracy anova", partial(accuracy_analyse, accuracy, used.accuracy))
            if accuracy is not None
            else None
        )
    with _stage(timings, "figures"):
        pngs = _figures(
            frames["descriptives"],
            desc,
            ols,
            mixed,
            acc,
            length,
            dvs=dvs,
            scale_points=ratings_scale_points(data),
        )
    results = Results(
        data=data,
        frames=frames,
        conditions=conditions,
        reference=reference_used,
        plan=plan,
        used=used,
        deviations=deviations,
        registered_sha256=registered_sha256,
        exclusions=table,
        desc=desc,
        differences=differences,
        not_run=not_run,
        models={"ols": ols, "ols_covariates": ols_cov, "mixed": mixed},
        ordinal=ordinal,
        reliability=reliability,
        accuracy=acc,
        dimensions=dimensions,
        problems=problems,
    )
    summary = summary_build(results)
    with _stage(timings, "write"):
        _write(out_dir, summary, _tables(results), pngs)
    return summary


def _reference_check(used: AnalysisPlan, conditions: list[str]) -> str | None:
    reference = used.regression.reference
    if reference == REFERENCE_AUTO:
        return None
    if reference not in conditions:
        raise AnalysisError(
            f"regression.reference {reference!r} of plan {used.name!r} is not in the data; "
            f"conditions are: {', '.join(conditions)} (or 'auto')"
        )
    return reference


def _exclusions(
    data: pd.DataFrame, used: AnalysisPlan
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    rules, outliers = used.exclusions, used.outliers
    everywhere = set(outliers.applies_to) == set(ANALYSES)
    excluded = exclusions_apply(
        data,
        researcher=rules.researcher,
        attention_fail_threshold=rules.attention_fail_threshold if rules.attention else None,
        straight_lining=rules.straight_lining,
        min_seconds_per_item=rules.min_seconds_per_item if rules.too_fast else None,
        drop_outliers=outliers.enabled,
        outlier_multiplier=outliers.multiplier,
        outliers_for=None if everywhere else ", ".join(outliers.applies_to),
    )
    frames: dict[str, pd.DataFrame] = {
        name: excluded.trimmed
        if outliers.enabled and name in outliers.applies_to
        else excluded.kept
        for name in ANALYSES
    }
    return frames, excluded.table


def _check_variation(data: pd.DataFrame, dimensions: Sequence[str]) -> None:
    values = np.unique(data[list(dimensions)].to_numpy())
    if len(values) == 1:
        raise AnalysisError(
            f"every rating in the data is {values[0]}, so there is no variation to analyse"
        )


def _differences(
    data: pd.DataFrame,
    settings: DifferenceSettings,
    effects: EffectSizeSettings,
    problems: Problems,
    *,
    dvs: Sequence[str],
) -> tuple[Differences, list[dict[str, str]]]:
    differences: Differences = dict.fromkeys(DIFFERENCE_TESTS)
    not_run: list[dict[str, str]] = []

    def run(
        name: str, test: Callable[..., pd.DataFrame], chosen: Sequence[str] = dvs
    ) -> dict[str, pd.DataFrame | None]:
        return {
            dv: problems.attempt(f"{name} {dv}", partial(test, data, dv=dv))
            if dv in chosen
            else None
            for dv in dvs
        }

    def gate(omnibus: str, label: str, method: str) -> list[str]:
        # Which dimensions get pairwise comparisons: all, or those whose omnibus test is
        # significant at alpha; the others are recorded with the reason.
        tables = differences[omnibus]
        if settings.posthoc_when == "always" or tables is None:
            return list(dvs)
        chosen = []
        for dv in dvs:
            table = tables[dv]
            if table is None:
                reason = f"{label} not computable"
            elif float(table["p"].iloc[0]) < settings.alpha:
                chosen.append(dv)
                continue
            else:
                reason = f"{label} p = {float(table['p'].iloc[0]):.4f} ≥ α = {settings.alpha:g}"
            not_run.append({"dimension": dv, "method": method, "reason": reason})
        return chosen

    if settings.anova:
        differences["anova"] = run("anova", anova_oneway)
    if settings.kruskal:
        differences["kruskal"] = run("kruskal", kruskal)
    if settings.assumption_checks:
        differences["levene"] = run("levene", levene)
        differences["shapiro"] = run("shapiro", shapiro)
    if "tukey" in settings.posthoc:
        differences["tukey"] = run("tukey", tukey_hsd, gate("anova", "ANOVA", "tukey"))
    if "dunn" in settings.posthoc:
        gated = gate("kruskal", "Kruskal–Wallis", "dunn")
        for correction in settings.corrections:
            differences[f"dunn-{correction}"] = run(
                f"dunn-{correction}", partial(dunn, p_adjust_method=correction), gated
            )
    if effects.vargha_delaney:
        differences["vda"] = run("vda", vargha_delaney, gate("kruskal", "Kruskal–Wallis", "vda"))
    return differences, not_run


# The fewest dimensions each reliability statistic is defined for: alpha compares items
# with their sum, the one-factor model behind omega and the loadings is identified from three.
RELIABILITY_MIN_DIMENSIONS = {
    "cronbach_alpha": ("Cronbach's alpha", 2),
    "mcdonald_omega": ("McDonald's omega (from a one-factor model)", 3),
    "loadings": ("the one-factor model's loadings", 3),
}


def _reliability(
    kept: pd.DataFrame, problems: Problems, dimensions: Sequence[str]
) -> dict[str, Any]:
    compute: dict[str, Callable[..., Any]] = {
        "cronbach_alpha": cronbach_alpha,
        "mcdonald_omega": mcdonald_omega,
        "loadings": one_factor_ml,
    }
    found: dict[str, Any] = {}
    for name, function in compute.items():
        found[name] = problems.attempt(
            f"reliability {name}",
            partial(_reliability_statistic, function, name, kept, dimensions),
        )
    found["correlations"] = correlations(kept, items=dimensions)
    return found


def _reliability_statistic(
    function: Callable[..., Any], name: str, kept: pd.DataFrame, dimensions: Sequence[str]
) -> Any:
    label, needed = RELIABILITY_MIN_DIMENSIONS[name]
    if len(dimensions) < needed:
        raise AnalysisError(
            f"{label} needs at least {needed} dimensions; these ratings have "
            f"{len(dimensions)} ({', '.join(dimensions)})"
        )
    return function(kept, items=dimensions)


def _figures(
    described: pd.DataFrame,
    desc: pd.DataFrame,
    ols: ModelFit | None,
    mixed: ModelFit | None,
    accuracy: AccuracyResult | None,
    length: str,
    *,
    dvs: Sequence[str],
    scale_points: int,
) -> dict[str, bytes]:
    made = {
        "means": figures.figure_means(desc, scale_points=scale_points),
        "distributions": figures.figure_distributions(
            described, dims=dvs, scale_points=scale_points
        ),
    }
    coefficient_tables = {f"{m.name.upper()}": m.coef for m in (ols, mixed) if m is not None}
    if coefficient_tables:
        made["coefficients"] = figures.figure_coefficients(
            coefficient_tables, exclude=("Intercept", length)
        )
    if accuracy is not None:
        made["interaction"] = figures.figure_interaction(accuracy.runs)
    return {name: figures.figure_png(figure) for name, figure in made.items()}


def _tables(results: Results) -> dict[str, pd.DataFrame]:
    differences = results.differences
    effects = results.used.effect_sizes

    def stacked(parts: dict[str, pd.DataFrame | None], key: str = "dimension") -> pd.DataFrame:
        frames = [
            t.assign(**{key: name})[[key, *t.columns]] for name, t in parts.items() if t is not None
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({key: []})

    tables: dict[str, pd.DataFrame] = {
        "exclusions": results.exclusions,
        "descriptives": results.desc,
    }
    for name in ("anova", "kruskal", "levene", "shapiro", "tukey", "vda"):
        parts = differences[name]
        if parts is not None:
            tables[name] = stacked(parts)
    hidden = {"anova": "eta_sq", "kruskal": "epsilon_sq"}
    for name, column in hidden.items():
        if name in tables and not getattr(effects, column) and column in tables[name]:
            tables[name] = tables[name].drop(columns=column)
    dunn_parts = [differences[n] for n in ("dunn-bonferroni", "dunn-holm")]
    dunn_tables = [stacked(parts) for parts in dunn_parts if parts is not None]
    if dunn_tables:
        tables["dunn"] = pd.concat(dunn_tables, ignore_index=True)
    if results.ordinal is not None:
        tables["regression_ordinal"] = stacked(
            {dim: fit.coef if fit else None for dim, fit in results.ordinal.items()}
        )
    for name, fit in results.models.items():
        if fit is not None:
            tables[f"regression_{name}"] = fit.coef
    reliability = results.reliability
    if reliability is not None:
        tables["correlations"] = reliability["correlations"]
        tables["reliability"] = pd.DataFrame(
            {
                "coefficient": ["cronbach_alpha", "mcdonald_omega"],
                "value": [reliability["cronbach_alpha"], reliability["mcdonald_omega"]],
            }
        )
        if reliability["loadings"] is not None:
            tables["factor_loadings"] = reliability["loadings"]
    if results.accuracy is not None:
        tables["accuracy_anova"] = results.accuracy.anova
        tables["accuracy_tukey"] = results.accuracy.tukey
    return tables


def _write(
    out_dir: Path, summary: dict[str, Any], tables: dict[str, pd.DataFrame], pngs: dict[str, bytes]
) -> None:
    try:
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            # Escaped: a condition name such as "+MT:x" is no formula in a spreadsheet.
            frame_escape(table).to_csv(out_dir / "tables" / f"{name}.csv", index=False)
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
