"""The self-contained report.html, rendered from the Jinja2 templates in ``analysis/templates``.

The page is one file: its stylesheet is inline, the figures are PNG data: URIs and its own
Content-Security-Policy lets nothing load or run. Numbers are rounded for reading by the
templates' ``number`` and ``p_value`` filters; summary.json and the tables keep full
precision.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from analysis.html_cells import na, number, p_value, setting_text
from analysis.html_sections import correlations_view, posthoc_view, reason_find

__all__ = ["TEMPLATES", "number", "p_value", "report_html"]

# Loaded through the package, so an installed wheel finds its templates too.
TEMPLATES = Environment(
    loader=PackageLoader("analysis", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters.update(number=number, p_value=p_value, na=na, setting_text=setting_text)
TEMPLATES.globals.update(reason_find=reason_find)


def report_html(
    summary: dict[str, Any], tables: dict[str, pd.DataFrame], images: dict[str, str]
) -> str:
    """Render the report page from summary.json content, the tables and base64 PNGs.

    Parameters
    ----------
    summary : dict
        The content of summary.json (:func:`analysis.summary.summary_build`).
    tables : dict of pandas.DataFrame
        The tables written to ``tables/``; the post-hoc records and the correlations are
        read from them.
    images : dict of str
        Base64-encoded PNGs by figure name (``means``, ``distributions``,
        ``coefficients``, ``interaction``); a figure that is absent is left out.

    Returns
    -------
    str
        One HTML document with no external resource.
    """
    correlations = (
        correlations_view(tables["correlations"]) if summary["reliability"] is not None else None
    )
    return TEMPLATES.get_template("report.html").render(
        summary=summary,
        images=images,
        posthoc=posthoc_view(summary, tables),
        correlations=correlations,
    )
