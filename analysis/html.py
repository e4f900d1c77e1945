"""The self-contained report.html: rounded numbers for reading, figures embedded as PNG data."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import pandas as pd

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.na{color:#a33;font-style:italic}
img{max-width:100%;border:1px solid #eee}.note{color:#555;font-size:.9em}
"""


def number(value: Any, digits: int = 3) -> str:
    """A number rounded for reading; missing values say they could not be computed."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "not computable"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Per-word effects of explanation length are tiny; fixed decimals would show -0.000.
        if value != 0 and abs(value) < 0.5 * 10**-digits:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def p_value(value: Any) -> str:
    """A p-value with four decimals, or "< 0.0001"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "not computable"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(text: str) -> str:
    css = ' class="na"' if text.startswith("not computable") else ""
    return f"<td{css}>{html.escape(text)}</td>"


def _na(reason: str | None) -> str:
    return f"not computable: {reason}" if reason else "not computable"


def _figure(images: dict[str, str], name: str, alt: str) -> str:
    if name not in images:
        return ""
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{images[name]}"></p>'


def report_html(
    summary: dict[str, Any], tables: dict[str, pd.DataFrame], images: dict[str, str]
) -> str:
    """Render the report page from summary.json content, the tables and base64 PNGs."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Ratings analysis</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Ratings analysis</h1>",
        _overview(summary),
        "<h2>Exclusions</h2>",
        _table(
            ["rule", "description", "participants", "ratings"],
            [
                [r["rule"], r["description"], str(r["participants"]), str(r["ratings"])]
                for r in summary["exclusions"]
            ],
        ),
        "<h2>Descriptives</h2>",
        _figure(images, "means", "Mean rating ± SE per dimension and condition"),
        _descriptives(summary),
        _figure(images, "distributions", "Distribution of ratings per dimension and condition"),
        "<h2>Tests of differences between conditions</h2>",
        _differences(summary),
        "<h2>Post-hoc comparisons</h2>",
        _posthoc(summary, tables),
        "<h2>Regression</h2>",
        _regression(summary),
        _figure(images, "coefficients", "Condition coefficients with 95% confidence intervals"),
        "<h2>Reliability of the five-dimension scale</h2>",
        _reliability(summary, tables),
    ]
    if "accuracy" in summary:
        parts += [
            "<h2>Accuracy of the distillation runs</h2>",
            _accuracy(summary),
            _figure(images, "interaction", "Accuracy by method and student size"),
        ]
    if summary["not_computable"]:
        parts += [
            "<h2>Not computable</h2>",
            _table(
                ["statistic", "reason"],
                [[p["what"], p["reason"]] for p in summary["not_computable"]],
            ),
        ]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _overview(summary: dict[str, Any]) -> str:
    options = summary["options"]
    facts = [
        [
            "participants analysed",
            f"{summary['n_participants']} of {summary['input']['n_participants']}",
        ],
        ["rated items analysed", f"{summary['n_ratings']} of {summary['input']['n_ratings']}"],
        ["conditions", ", ".join(summary["conditions"])],
        ["reference condition", summary["reference"]],
        ["outliers dropped (1.5 × IQR)", "yes" if options["drop_outliers"] else "no"],
        ["covariates", ", ".join(options["covariates"]) or "none"],
        [
            "minimum seconds per item",
            number(options["min_seconds_per_item"])
            if options["min_seconds_per_item"] is not None
            else "none",
        ],
    ]
    return _table(["", "value"], facts)


def _descriptives(summary: dict[str, Any]) -> str:
    rows = []
    for dv, per_condition in summary["descriptives"].items():
        for condition, d in per_condition.items():
            ci = (
                f"[{number(d['ci_low'], 2)}, {number(d['ci_high'], 2)}]"
                if d["ci_low"] is not None
                else _na("fewer than two ratings")
            )
            rows.append(
                [
                    dv,
                    condition,
                    str(d["n"]),
                    number(d["mean"], 2),
                    number(d["sd"], 2) if d["sd"] is not None else _na("fewer than two ratings"),
                    number(d["median"], 1),
                    ci,
                ]
            )
    return _table(["dimension", "condition", "n", "mean", "sd", "median", "95% CI"], rows)


def _differences(summary: dict[str, Any]) -> str:
    rows = []
    for dv in summary["dimensions"]:
        a, k, lev = summary["anova"][dv], summary["kruskal"][dv], summary["levene"][dv]
        shapiro = summary["shapiro"][dv]
        anova_cells = (
            [
                f"F({a['df_between']:g}, {a['df_within']:g}) = {number(a['F'])}",
                p_value(a["p"]),
                number(a["eta_sq"]),
            ]
            if a["F"] is not None
            else [_na(a.get("not_computable"))] * 3
        )
        kruskal_cells = (
            [f"H({k['df']:g}) = {number(k['H'])}", p_value(k["p"]), number(k["epsilon_sq"])]
            if k["H"] is not None
            else [_na(k.get("not_computable"))] * 3
        )
        levene_cell = p_value(lev["p"]) if lev["p"] is not None else _na(lev.get("not_computable"))
        if isinstance(shapiro, dict):
            shapiro_cell = _na(shapiro.get("not_computable"))
        else:
            tested = [s["p"] for s in shapiro if s["p"] is not None]
            shapiro_cell = (
                p_value(min(tested)) if tested else _na("fewer than 3 varying values per condition")
            )
        rows.append([dv, *anova_cells, *kruskal_cells, levene_cell, shapiro_cell])
    note = (
        "<p class='note'>η² = SS<sub>between</sub>/SS<sub>total</sub>; ε² = H/(n − 1). Levene's test is median-centred; "
        "the Shapiro–Wilk column gives the smallest p over conditions (groups over 5000 are subsampled).</p>"
    )
    return (
        _table(
            [
                "dimension",
                "ANOVA",
                "p",
                "η²",
                "Kruskal–Wallis",
                "p",
                "ε²",
                "Levene p",
                "Shapiro–Wilk min p",
            ],
            rows,
        )
        + note
    )


def _posthoc(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> str:
    found = {
        (r["dimension"], r["method"], r["a"], r["b"]): r
        for name in ("tukey", "dunn")
        for r in tables[name].to_dict("records")
    }
    out = [
        "<p class='note'>Differences are b − a. Tukey HSD follows the ANOVA; "
        "Dunn's test (mean ranks, tie-corrected) follows Kruskal–Wallis.</p>"
    ]
    headers = [
        "pair (a vs b)",
        "mean diff",
        "Tukey q",
        "Tukey p",
        "Dunn z",
        "Dunn p (Bonferroni)",
        "Dunn p (Holm)",
    ]
    for dv in summary["dimensions"]:
        rows = []
        for a, b in combinations(summary["conditions"], 2):
            tukey = found.get((dv, "tukey", a, b))
            bonferroni = found.get((dv, "dunn-bonferroni", a, b))
            holm = found.get((dv, "dunn-holm", a, b))
            tukey_cells = (
                [number(tukey["mean_diff"]), number(tukey["q"]), p_value(tukey["p_adj"])]
                if tukey
                else [_na(_reason(summary, f"tukey {dv}"))] * 3
            )
            dunn_cells = (
                [number(bonferroni["z"]), p_value(bonferroni["p_adj"]), p_value(holm["p_adj"])]
                if bonferroni and holm
                else [_na(_reason(summary, f"dunn-bonferroni {dv}"))] * 3
            )
            rows.append([f"{a} vs {b}", *tukey_cells, *dunn_cells])
        out.append(f"<h3>{html.escape(dv)}</h3>")
        out.append(_table(headers, rows))
    return "\n".join(out)


def _reason(summary: dict[str, Any], what: str) -> str | None:
    return next((p["reason"] for p in summary["not_computable"] if p["what"] == what), None)


def _model(title: str, model: dict[str, Any] | None, extra: Sequence[tuple[str, str]]) -> str:
    if model is None:
        return ""
    if "coef" not in model:
        return f"<h3>{html.escape(title)}</h3><p class='na'>{html.escape(_na(model.get('not_computable')))}</p>"
    facts = " · ".join(f"{name}: {html.escape(number(model.get(key)))}" for name, key in extra)
    rows = [
        [
            term,
            number(c["estimate"]),
            number(c["se"]),
            number(c["statistic"], 2),
            p_value(c["p"]),
            f"[{number(c['ci_low'])}, {number(c['ci_high'])}]",
        ]
        for term, c in model["coef"].items()
    ]
    warn = "".join(f"<p class='note'>{html.escape(w)}</p>" for w in model.get("warnings", []))
    return (
        f"<h3>{html.escape(title)}</h3><p class='note'><code>{html.escape(model['formula'])}</code> · n = {model['n']} · {facts}</p>"
        + _table(["term", "estimate", "SE", "t / z", "p", "95% CI"], rows)
        + warn
    )


def _regression(summary: dict[str, Any]) -> str:
    reg = summary["regression"]
    parts = [
        _model("OLS", reg["ols"], [("R²", "r_squared"), ("standard errors", "cov_type")]),
        _model(
            "OLS with covariates",
            reg["ols_covariates"],
            [
                ("R²", "r_squared"),
                ("standard errors", "cov_type"),
                ("rows without covariates", "rows_dropped_missing_covariates"),
            ],
        ),
        _model(
            "Linear mixed model (random intercept per participant)",
            reg["mixed"],
            [
                ("participants", "groups"),
                ("participant variance", "group_variance"),
                ("residual variance", "residual_variance"),
                ("ICC", "icc"),
                ("converged", "converged"),
            ],
        ),
    ]
    rows = []
    for dim, model in reg["ordinal"].items():
        if model is None or "coef" not in model:
            rows.append(
                [dim, _na(None if model is None else model.get("not_computable")), "", "", ""]
            )
            continue
        for term, c in model["coef"].items():
            rows.append(
                [
                    dim,
                    term,
                    number(c["estimate"]),
                    p_value(c["p"]),
                    "yes" if model["converged"] else "no (estimates unreliable)",
                ]
            )
    parts.append("<h3>Ordinal (cumulative logit) model per dimension</h3>")
    parts.append(
        "<p class='note'>Estimates are log odds ratios of a higher rating against the reference condition.</p>"
    )
    parts.append(_table(["dimension", "term", "log odds ratio", "p", "converged"], rows))
    return "\n".join(parts)


def _reliability(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> str:
    rel = summary["reliability"]
    reasons = {p["what"]: p["reason"] for p in rel["not_computable"] or []}

    def value(key: str) -> str:
        return number(rel[key]) if rel[key] is not None else _na(reasons.get(f"reliability {key}"))

    parts = [
        _table(
            ["coefficient", "value"],
            [["Cronbach's α", value("cronbach_alpha")], ["McDonald's ω", value("mcdonald_omega")]],
        ),
        f"<p class='note'>ω: {html.escape(rel['method_omega'])}.</p>",
    ]
    if rel["loadings"]:
        parts.append(
            _table(
                ["dimension", "standardised loading"],
                [[k, number(v)] for k, v in rel["loadings"].items()],
            )
        )
    corr = tables["correlations"]
    pearson = corr[corr["method"] == "pearson"].pivot(index="a", columns="b", values="r")
    items = list(dict.fromkeys(corr["a"]))
    pearson = pearson.reindex(index=items, columns=items)
    parts.append("<h3>Inter-dimension correlations (Pearson)</h3>")
    parts.append(
        _table(["", *items], [[a, *(number(pearson.loc[a, b], 2) for b in items)] for a in items])
    )
    return "\n".join(parts)


def _accuracy(summary: dict[str, Any]) -> str:
    acc = summary["accuracy"]
    if "anova" not in acc:
        return f"<p class='na'>{html.escape(_na(acc.get('not_computable')))}</p>"
    anova_rows = [
        [
            r["source"],
            number(r["sum_sq"], 4),
            number(r["df"], 0),
            number(r["F"]) if r["F"] is not None else "–",
            p_value(r["p"]) if r["p"] is not None else "–",
            number(r["eta_sq_partial"]) if r["eta_sq_partial"] is not None else "–",
        ]
        for r in acc["anova"]
    ]
    tukey_rows = [
        [
            str(r["size"]),
            f"{r['a']} vs {r['b']}",
            number(r["mean_diff"], 4),
            p_value(r["p_adj"]),
            f"[{number(r['ci_low'], 4)}, {number(r['ci_high'], 4)}]",
        ]
        for r in acc["tukey"]
    ]
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in acc["notes"])
    return (
        "<h3>Two-way ANOVA (Type II)</h3>"
        + _table(["source", "sum of squares", "df", "F", "p", "partial η²"], anova_rows)
        + notes
        + "<h3>Tukey HSD between methods within each size</h3>"
        + _table(["size", "pair (a vs b)", "difference b − a", "p", "95% CI"], tukey_rows)
    )
