"""The ratings CSV: its columns, their types, and its cell escaping.

The study's export (``studyapp.exports``) writes it and the analysis (``analysis.load``)
reads it; both take the columns from here. The format is documented in docs/formats.md.

A file has one column per dimension of the study's questionnaire, in the questionnaire's
order, between the explanation's lengths and ``seconds_on_item``; ``ratings_header`` gives
the columns for a list of dimension keys and ``header_dimensions`` reads the keys back. The
default questionnaire (plain-5) gives ``RATINGS_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Sequence

# The default questionnaire's dimension keys, in its order (studyformats.questionnaire.PLAIN_5).
DIMENSIONS = (
    "plausibility",
    "understandability",
    "completeness",
    "satisfaction",
    "contrastiveness",
)
QUALITY = "quality"
ID_COLUMNS = ("participant", "study", "question_id", "condition", "explanation_id")
# The columns before and after the dimensions; every ratings file has them in this order.
ITEM_COLUMNS = (
    "participant",
    "study",
    "position",
    "question_id",
    "condition",
    "explanation_id",
    "explanation_length",
    "explanation_chars",
)
RESPONSE_COLUMNS = ("seconds_on_item", "attention_failed", "excluded")
# Written only for a scale other than DEFAULT_SCALE_POINTS, right after ``excluded``, so that
# a five-point study's file has exactly the columns it had before questionnaires existed; a
# reader takes DEFAULT_SCALE_POINTS when the column is absent.
SCALE_POINTS_COLUMN = "scale_points"
DEFAULT_SCALE_POINTS = 5
# Older exports have no character length; they load, and only an analysis that needs it fails.
OPTIONAL_COLUMNS = ("explanation_chars",)
# The demographic covariates an export appends after the other columns, once a study's
# Prolific demographics are imported.
COVARIATE_COLUMNS = (
    "age",
    "sex",
    "ethnicity",
    "country_of_birth",
    "country",
    "nationality",
    "language",
    "student_status",
    "employment_status",
)
# Names a dimension key cannot take: the other columns, and the mean the analysis adds.
RESERVED_COLUMNS = frozenset(
    {*ITEM_COLUMNS, *RESPONSE_COLUMNS, SCALE_POINTS_COLUMN, QUALITY, *COVARIATE_COLUMNS}
)


class RatingsFormatError(ValueError):
    """A ratings header that breaks the format; the message names the column."""


def ratings_header(
    dimensions: Sequence[str] = DIMENSIONS, scale_points: int = DEFAULT_SCALE_POINTS
) -> tuple[str, ...]:
    """The documented columns of a ratings file whose questionnaire has these dimension keys.

    Demographic covariates, when an export has them, follow these columns.

    Parameters
    ----------
    dimensions : sequence of str
        The questionnaire's dimension keys, in its order.
    scale_points : int
        The number of points of its scale; other than 5, a ``scale_points`` column follows
        ``excluded``.

    Raises
    ------
    RatingsFormatError
        No dimension, a repeated key, a key that is the name of another column (or of
        ``quality``), or a scale of fewer than two points.

    Examples
    --------
    >>> ratings_header() == RATINGS_COLUMNS
    True
    >>> ratings_header(["faithfulness", "helpfulness"], 7)[7:]
    ('explanation_chars', 'faithfulness', 'helpfulness', 'seconds_on_item', 'attention_failed', 'excluded', 'scale_points')
    """
    keys = tuple(dimensions)
    if not keys:
        raise RatingsFormatError("a ratings file needs at least one dimension column")
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise RatingsFormatError(f"dimension {', '.join(map(repr, repeated))} appears twice")
    taken = [key for key in keys if key in RESERVED_COLUMNS]
    if taken:
        raise RatingsFormatError(
            f"dimension {taken[0]!r} has the name of another column of the ratings file; "
            f"a dimension may not be named any of: {', '.join(sorted(RESERVED_COLUMNS))}"
        )
    if isinstance(scale_points, bool) or not isinstance(scale_points, int) or scale_points < 2:
        raise RatingsFormatError(
            f"scale_points must be a whole number of at least 2; got {scale_points!r}"
        )
    extra = (SCALE_POINTS_COLUMN,) if scale_points != DEFAULT_SCALE_POINTS else ()
    return (*ITEM_COLUMNS, *keys, *RESPONSE_COLUMNS, *extra)


def header_dimensions(columns: Sequence[str]) -> tuple[str, ...]:
    """The dimension keys of a ratings file: its columns between ``explanation_chars`` (or
    ``explanation_length``, in files without character lengths) and ``seconds_on_item``.

    Raises
    ------
    RatingsFormatError
        A header without those columns, with them out of order, without a column between
        them, or with a column there that has the name of another column.

    Examples
    --------
    >>> header_dimensions(ratings_header(["faithfulness", "helpfulness"], 7))
    ('faithfulness', 'helpfulness')
    >>> header_dimensions(["explanation_length", "plausibility", "seconds_on_item"])
    ('plausibility',)
    """
    names = [str(column) for column in columns]
    for needed in ("explanation_length", "seconds_on_item"):
        if needed not in names:
            raise RatingsFormatError(f"the ratings have no column {needed}")
    first = "explanation_chars" if "explanation_chars" in names else "explanation_length"
    start, end = names.index(first) + 1, names.index("seconds_on_item")
    if start > end:
        raise RatingsFormatError(
            f"the column {first} must come before seconds_on_item, with the dimension columns "
            "between them"
        )
    found = tuple(names[start:end])
    if not found:
        raise RatingsFormatError(
            f"the ratings have no dimension columns: there is no column between {first} and "
            "seconds_on_item"
        )
    misplaced = [name for name in found if name in RESERVED_COLUMNS]
    if misplaced:
        raise RatingsFormatError(
            f"the column {misplaced[0]} stands among the dimension columns (between {first} "
            "and seconds_on_item); the ratings' columns are out of order"
        )
    repeated = sorted({name for name in found if found.count(name) > 1})
    if repeated:
        raise RatingsFormatError(f"dimension column {repeated[0]} appears twice")
    return found


RATINGS_COLUMNS = ratings_header()
# What each column holds (docs/formats.md says what it means). "text" cells are escaped with
# ``cell_escape``; "bool" cells are "true" or "false"; a blank "number" is a missing value
# (an item shown but never timed). Every dimension column is an "integer" like these five.
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
