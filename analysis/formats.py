"""The ratings CSV's columns and its cell escaping, with no dependency beyond Python.

The study's export (``studyapp.exports``) and the analysis's reader (``analysis.load``) both
use these, so the web process does not load pandas to write a CSV. The format is documented
in docs/formats.md.
"""

from __future__ import annotations

DIMENSIONS = (
    "plausibility",
    "understandability",
    "completeness",
    "satisfaction",
    "contrastiveness",
)
QUALITY = "quality"
ID_COLUMNS = ("participant", "study", "question_id", "condition", "explanation_id")
RATINGS_COLUMNS = (
    "participant",
    "study",
    "position",
    "question_id",
    "condition",
    "explanation_id",
    "explanation_length",
    "explanation_chars",
    *DIMENSIONS,
    "seconds_on_item",
    "attention_failed",
    "excluded",
)
# Older exports have no character length; they load, and only an analysis that needs it fails.
OPTIONAL_COLUMNS = ("explanation_chars",)

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); tab
# and carriage return start formulas in some spreadsheets too. Such a text cell is written
# with a leading quote, and so is one that starts with a quote, so reading removes exactly
# one quote and every name comes back as it was (a condition "+MT:x" stays "+MT:x").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CELL_QUOTE = "'"


def cell_escape(value: object) -> str:
    """Text for one CSV cell: a text a spreadsheet would run as a formula gets a leading quote.

    Examples
    --------
    >>> cell_escape("+MT:x"), cell_escape(-3), cell_escape("'quoted"), cell_escape(None)
    ("'+MT:x", '-3', "''quoted", '')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, int | float):
        return text
    if text.startswith((*FORMULA_PREFIXES, CELL_QUOTE)):
        return CELL_QUOTE + text
    return text


def cell_unescape(text: str) -> str:
    """The value ``cell_escape`` wrote: one leading quote removed.

    Examples
    --------
    >>> cell_unescape("'+MT:x"), cell_unescape("''quoted"), cell_unescape("MT:x")
    ('+MT:x', "'quoted", 'MT:x')
    """
    return text[1:] if text.startswith(CELL_QUOTE) else text
