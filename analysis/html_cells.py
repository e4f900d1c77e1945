"""Formatting of numbers, p-values and settings for report.html (the templates' filters)."""

from __future__ import annotations

import math
from typing import Any


def number(value: Any, digits: int = 3) -> str:
    """A number rounded for reading; missing values say they could not be computed.

    Examples
    --------
    >>> number(4.84606), number(-0.0000352), number(12), number(None)
    ('4.846', '-3.52e-05', '12', 'not computable')
    """
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
    """A p-value with four decimals, or "< 0.0001".

    Examples
    --------
    >>> p_value(0.015939), p_value(3e-9)
    ('0.0159', '< 0.0001')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "not computable"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def na(reason: str | None) -> str:
    """The text of a cell whose statistic could not be computed.

    Examples
    --------
    >>> na("fewer than two ratings"), na(None)
    ('not computable: fewer than two ratings', 'not computable')
    """
    return f"not computable: {reason}" if reason else "not computable"


def setting_text(value: Any) -> str:
    """A plan setting as the plan file spells it: true/false, lists, "not set".

    Examples
    --------
    >>> setting_text(True), setting_text(["tukey", "dunn"]), setting_text([]), setting_text(1.5)
    ('true', 'tukey, dunn', 'none', '1.5')
    """
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(setting_text(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
