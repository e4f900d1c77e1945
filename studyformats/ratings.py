"""The ratings CSV: its columns, their types, and its cell escaping.

The study's export (``studyapp.exports``) writes it and the analysis (``analysis.load``)
reads it; both take the columns from here. The format is documented in docs/formats.md.
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
# What each column holds (docs/formats.md says what it means). "text" cells are escaped with
# ``cell_escape``; "bool" cells are "true" or "false"; a blank "number" is a missing value
# (an item shown but never timed).
COLUMN_TYPES = {
    "participant": "text",
    "study": "text",
    "position": "integer",
    "question_id": "text",
    "condition": "text",
    "explanation_id": "integer",
    "explanation_length": "integer",
    "explanation_chars": "integer",
    **dict.fromkeys(DIMENSIONS, "integer"),
    "seconds_on_item": "number",
    "attention_failed": "integer",
    "excluded": "bool",
}

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
