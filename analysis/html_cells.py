"""Formatting of numbers and table cells for report.html."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


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


def table_html(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of already formatted cells (escaped here)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(text: str) -> str:
    css = ' class="na"' if text.startswith("not computable") else ""
    return f"<td{css}>{html.escape(text)}</td>"


def na(reason: str | None) -> str:
    """The text of a cell whose statistic could not be computed."""
    return f"not computable: {reason}" if reason else "not computable"
