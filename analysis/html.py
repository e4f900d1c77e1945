"""The self-contained report.html: rounded numbers for reading, figures embedded as PNG data."""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import partial
from itertools import combinations
from typing import Any

import pandas as pd

from analysis.html_cells import na, number, p_value, table_html
from analysis.html_sections import accuracy_section, plan_section

__all__ = ["number", "p_value", "report_html"]

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.na{color:#a33;font-style:italic}
img{max-width:100%;border:1px solid #eee}.note{color:#555;font-size:.9em}
"""


def _figure(images: dict[str, str], name: str, alt: str) -> str:
    if name not in images:
        return ""
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{images[name]}"></p>'


# Figures are inline data: images; the one stylesheet is inline; no script at all.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def report_html(
    summary: dict[str, Any], tables: dict[str, pd.DataFrame], images: dict[str, str]
) -> str:
    """Render the report page from summary.json content, the tables and base64 PNGs."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        # Opened as a file, the report carries its own policy: nothing loads or runs.
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">',
        "<title>Ratings analysis</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Ratings analysis</h1>",
        _overview(summary),
        "<h2>Analysis plan</h2>",
        plan_section(summary["plan"]),
        "<h2>Exclusions</h2>",
        table_html(
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
    ]
    if summary["reliability"] is not None:
        parts += [
            "<h2>Reliability of the five-dimension scale</h2>",
            _reliability(summary, tables),
        ]
    if "accuracy" in summary:
        parts += [
            "<h2>Accuracy of the distillation runs</h2>",
            accuracy_section(summary["accuracy"]),
            _figure(images, "interaction", "Accuracy by method and student size"),
        ]
    if summary["not_computable"]:
        parts += [
            "<h2>Not computable</h2>",
            table_html(
                ["statistic", "reason"],
                [[p["what"], p["reason"]] for p in summary["not_computable"]],
            ),
        ]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _overview(summary: dict[str, Any]) -> str:
    options = summary["options"]
    plan = summary["plan"]
    deviations = len(plan["deviations"])
    facts = [
        [
            "analysis plan",
            f"{plan['name']} ({deviations} deviation(s))" if deviations else plan["name"],
        ],
        [
            "participants analysed",
            f"{summary['n_participants']} of {summary['input']['n_participants']}",
        ],
        ["rated items analysed", f"{summary['n_ratings']} of {summary['input']['n_ratings']}"],
        ["conditions", ", ".join(summary["conditions"])],
        ["reference condition", summary["reference"]],
        [
            "outliers dropped (1.5 × IQR)",
            f"yes, for: {', '.join(summary['outliers']['applies_to'])}"
            if options["drop_outliers"]
            else "no",
        ],
        ["covariates", ", ".join(options["covariates"]) or "none"],
        [
            "minimum seconds per item",
            number(options["min_seconds_per_item"])
            if options["min_seconds_per_item"] is not None
            else "none",
        ],
    ]
    return table_html(["", "value"], facts)


def _descriptives(summary: dict[str, Any]) -> str:
    rows = []
    for dv, per_condition in summary["descriptives"].items():
        for condition, d in per_condition.items():
            ci = (
                f"[{number(d['ci_low'], 2)}, {number(d['ci_high'], 2)}]"
                if d["ci_low"] is not None
                else na("fewer than two ratings")
            )
            rows.append(
                [
                    dv,
                    condition,
                    str(d["n"]),
                    number(d["mean"], 2),
                    number(d["sd"], 2) if d["sd"] is not None else na("fewer than two ratings"),
                    number(d["median"], 1),
                    ci,
                ]
            )
    return table_html(["dimension", "condition", "n", "mean", "sd", "median", "95% CI"], rows)


def _differences(summary: dict[str, Any]) -> str:
    effects = summary["plan"]["settings"]["effect_sizes"]
    columns: list[tuple[list[str], Any]] = []
    if summary["anova"] is not None:
        columns.append((["ANOVA", "p", "η²"], partial(_anova_cells, effects["eta_sq"])))
    if summary["kruskal"] is not None:
        columns.append(
            (["Kruskal–Wallis", "p", "ε²"], partial(_kruskal_cells, effects["epsilon_sq"]))
        )
    if summary["levene"] is not None:
        columns.append((["Levene p", "Shapiro–Wilk min p"], _check_cells))
    if not columns:
        return "<p class='note'>The plan runs no test of differences.</p>"
    rows = [
        [dv, *(cell for _, cells in columns for cell in cells(summary, dv))]
        for dv in summary["dimensions"]
    ]
    note = (
        "<p class='note'>η² = SS<sub>between</sub>/SS<sub>total</sub>; ε² = H/(n − 1). Levene's test is median-centred; "
        "the Shapiro–Wilk column gives the smallest p over conditions (groups over 5000 are subsampled).</p>"
    )
    return table_html(["dimension", *(h for headers, _ in columns for h in headers)], rows) + note


def _anova_cells(shown: bool, summary: dict[str, Any], dv: str) -> list[str]:
    a = summary["anova"][dv]
    if a["F"] is None:
        return [na(a.get("not_computable"))] * 3
    return [
        f"F({a['df_between']:g}, {a['df_within']:g}) = {number(a['F'])}",
        p_value(a["p"]),
        number(a["eta_sq"]) if shown else "–",
    ]


def _kruskal_cells(shown: bool, summary: dict[str, Any], dv: str) -> list[str]:
    k = summary["kruskal"][dv]
    if k["H"] is None:
        return [na(k.get("not_computable"))] * 3
    return [
        f"H({k['df']:g}) = {number(k['H'])}",
        p_value(k["p"]),
        number(k["epsilon_sq"]) if shown else "–",
    ]


def _check_cells(summary: dict[str, Any], dv: str) -> list[str]:
    lev, shapiro = summary["levene"][dv], summary["shapiro"][dv]
    levene_cell = p_value(lev["p"]) if lev["p"] is not None else na(lev.get("not_computable"))
    if isinstance(shapiro, dict):
        return [levene_cell, na(shapiro.get("not_computable"))]
    tested = [s["p"] for s in shapiro if s["p"] is not None]
    return [
        levene_cell,
        p_value(min(tested)) if tested else na("fewer than 3 varying values per condition"),
    ]


def _posthoc(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> str:
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()}
        for name in ("tukey", "dunn")
        if name in tables and "method" in tables[name]
        for r in tables[name].to_dict("records")
    ]
    found = {(r["dimension"], r["method"], r["a"], r["b"]): r for r in records}
    tests = summary["plan"]["settings"]["tests"]
    corrections = [f"dunn-{c}" for c in tests["corrections"]] if "dunn" in tests["posthoc"] else []
    vda = summary["vda"]
    not_run = {(r["dimension"], r["method"]): r["reason"] for r in summary["posthoc_not_run"]}
    methods: list[tuple[str, list[str]]] = []
    if "tukey" in tests["posthoc"]:
        methods.append(("tukey", ["mean diff", "Tukey q", "Tukey p"]))
    if corrections:
        adjusted = [f"Dunn p ({c.removeprefix('dunn-').capitalize()})" for c in corrections]
        methods.append(("dunn", ["Dunn z", "Dunn p", *adjusted]))
    if vda is not None:
        methods.append(("vda", ["A", "magnitude"]))
    if not methods:
        return "<p class='note'>The plan runs no pairwise comparisons.</p>"
    out = [
        "<p class='note'>Differences and z are b − a. Tukey HSD follows the ANOVA; "
        "Dunn's test (mean ranks, tie-corrected, two-sided) follows Kruskal–Wallis; "
        "the Vargha–Delaney A is the chance that a rating of a exceeds one of b (ties half).</p>"
    ]
    headers = ["pair (a vs b)", *(h for _, cells in methods for h in cells)]
    for dv in summary["dimensions"]:
        out.append(f"<h3>{html.escape(dv)}</h3>")
        skipped = [not_run.get((dv, method)) for method, _ in methods]
        if all(skipped):
            out.append(f"<p class='note'>Not run: {html.escape(str(skipped[0]))}.</p>")
            continue
        rows = []
        for a, b in combinations(summary["conditions"], 2):
            row = [f"{a} vs {b}"]
            for method, cells in methods:
                if (dv, method) in not_run:
                    row += [f"not run: {not_run[(dv, method)]}"] * len(cells)
                elif method == "tukey":
                    row += _tukey_cells(found.get((dv, "tukey", a, b)), summary, dv)
                elif method == "dunn":
                    row += _dunn_cells(
                        [found.get((dv, c, a, b)) for c in corrections], summary, dv, corrections
                    )
                else:
                    row += _vda_cells(vda.get(dv), a, b, summary, dv)
            rows.append(row)
        out.append(table_html(headers, rows))
    return "\n".join(out)


def _tukey_cells(pair: dict[str, Any] | None, summary: dict[str, Any], dv: str) -> list[str]:
    if pair is None:
        return [na(_reason(summary, f"tukey {dv}"))] * 3
    return [number(pair["mean_diff"]), number(pair["q"]), p_value(pair["p_adj"])]


def _dunn_cells(
    pairs: list[dict[str, Any] | None], summary: dict[str, Any], dv: str, corrections: list[str]
) -> list[str]:
    first = pairs[0]
    if first is None or any(p is None for p in pairs):
        return [na(_reason(summary, f"{corrections[0]} {dv}"))] * (2 + len(pairs))
    return [
        number(first["z"]),
        p_value(first["p_unc"]),
        *(p_value(p["p_adj"]) for p in pairs if p is not None),
    ]


def _vda_cells(
    pairs: list[dict[str, Any]] | None, a: str, b: str, summary: dict[str, Any], dv: str
) -> list[str]:
    pair = next((p for p in pairs or [] if (p["a"], p["b"]) == (a, b)), None)
    if pair is None:
        return [na(_reason(summary, f"vda {dv}"))] * 2
    return [number(pair["A"]), pair["magnitude"]]


def _reason(summary: dict[str, Any], what: str) -> str | None:
    return next((p["reason"] for p in summary["not_computable"] if p["what"] == what), None)


def _model(title: str, model: dict[str, Any] | None, extra: Sequence[tuple[str, str]]) -> str:
    if model is None:
        return ""
    if "coef" not in model:
        return f"<h3>{html.escape(title)}</h3><p class='na'>{html.escape(na(model.get('not_computable')))}</p>"
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
        + table_html(["term", "estimate", "SE", "t / z", "p", "95% CI"], rows)
        + warn
    )


def _regression(summary: dict[str, Any]) -> str:
    reg = summary["regression"]
    parts = [
        _model(
            "OLS",
            reg["ols"],
            [("R²", "r_squared"), ("standard errors", "cov_type"), ("plan", "plan")],
        ),
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
    if reg["ordinal"] is None:
        return "\n".join(parts)
    rows = []
    for dim, model in reg["ordinal"].items():
        if model is None or "coef" not in model:
            rows.append(
                [dim, na(None if model is None else model.get("not_computable")), "", "", ""]
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
    parts.append(table_html(["dimension", "term", "log odds ratio", "p", "converged"], rows))
    return "\n".join(parts)


def _reliability(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> str:
    rel = summary["reliability"]
    reasons = {p["what"]: p["reason"] for p in rel["not_computable"] or []}

    def value(key: str) -> str:
        return number(rel[key]) if rel[key] is not None else na(reasons.get(f"reliability {key}"))

    parts = [
        table_html(
            ["coefficient", "value"],
            [["Cronbach's α", value("cronbach_alpha")], ["McDonald's ω", value("mcdonald_omega")]],
        ),
        f"<p class='note'>ω: {html.escape(rel['method_omega'])}.</p>",
    ]
    if rel["loadings"]:
        parts.append(
            table_html(
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
        table_html(
            ["", *items], [[a, *(number(pearson.loc[a, b], 2) for b in items)] for a in items]
        )
    )
    return "\n".join(parts)
