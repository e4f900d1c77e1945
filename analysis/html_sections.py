"""Sections of report.html for the analysis plan and the accuracy analysis."""

from __future__ import annotations

import html
from typing import Any

from analysis.html_cells import na, number, p_value, table_html

SCALES = {"percent": "in percent", "as_recorded": "as recorded"}


def setting_text(value: Any) -> str:
    """A plan setting as the plan file spells it: true/false, lists, "not set"."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(setting_text(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plan_section(plan: dict[str, Any]) -> str:
    """The plan's name, hash, deviations, registration and every setting with its reason."""
    parts = [
        f"<p>Plan <strong>{html.escape(plan['name'])}</strong> · SHA-256 "
        f"<code>{html.escape(plan['sha256'])}</code></p>",
    ]
    if plan["description"]:
        parts.append(f"<p class='note'>{html.escape(plan['description'])}</p>")
    deviations = plan["deviations"]
    if deviations:
        parts.append(
            f"<p><strong>{len(deviations)} deviation(s) from the plan</strong>, "
            "set by options of this run:</p>"
        )
        parts.append(
            table_html(
                ["setting", "plan", "used", "option"],
                [
                    [d["setting"], setting_text(d["plan"]), setting_text(d["used"]), d["option"]]
                    for d in deviations
                ],
            )
        )
    else:
        parts.append("<p><strong>No deviations from the plan.</strong></p>")
    registered = plan["registered"]
    if registered is None:
        parts.append("<p class='note'>No registered plan was given for this analysis.</p>")
    else:
        verdict = (
            "the analysis ran under it unchanged"
            if registered["unchanged"]
            else "this plan has a different hash"
            if not registered["matches"]
            else "the analysis deviated from it"
        )
        parts.append(
            f"<p>Registered plan SHA-256 <code>{html.escape(registered['sha256'])}</code>: "
            f"{html.escape(verdict)}.</p>"
        )
    reasons = plan["reasons"]
    rows = [
        [f"{section}.{key}", setting_text(value), reasons.get(f"{section}.{key}", "")]
        for section, values in plan["settings"].items()
        for key, value in values.items()
    ]
    parts.append("<h3>Settings</h3>")
    parts.append(table_html(["setting", "value", "why"], rows))
    return "\n".join(parts)


def accuracy_section(acc: dict[str, Any]) -> str:
    """Runs analysed, the two-way type II ANOVA and Tukey HSD within each size."""
    if "anova" not in acc:
        return f"<p class='na'>{html.escape(na(acc.get('not_computable')))}</p>"
    runs = acc["runs"]
    facts = (
        f"{runs['analysed']} of {runs['runs']} runs analysed "
        f"({runs['left_out_methods']} of methods outside the plan, "
        f"{runs['outliers']} outliers removed); accuracy {SCALES[acc['scale']]}."
    )
    anova_rows = [
        [
            term,
            number(row["sum_sq"], 4),
            number(row["df"], 0),
            number(row["F"]),
            p_value(row["p"]),
            number(row["ges"]),
        ]
        for term, row in acc["anova"].items()
    ]
    residual = acc["residual"]
    anova_rows.append(
        ["Residual", number(residual["sum_sq"], 4), number(residual["df"], 0), "–", "–", "–"]
    )
    tukey_rows = [
        [
            size,
            f"{r['a']} vs {r['b']}",
            number(r["mean_diff"], 4),
            p_value(r["p_adj"]),
            f"[{number(r['ci_low'], 4)}, {number(r['ci_high'], 4)}]",
        ]
        for size, pairs in acc["tukey"].items()
        for r in pairs
    ]
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in acc["notes"])
    return (
        f"<p class='note'>{html.escape(facts)}</p>"
        + "<h3>Two-way ANOVA (Type II)</h3>"
        + table_html(["source", "sum of squares", "df", "F", "p", "generalised η²"], anova_rows)
        + notes
        + "<h3>Tukey HSD between methods within each size</h3>"
        + table_html(["size", "pair (a vs b)", "difference b − a", "p", "95% CI"], tukey_rows)
    )
