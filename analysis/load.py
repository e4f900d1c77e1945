"""Reading and validating the ratings export (the CSV format of docs/formats.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from studyformats.ratings import (
    CELL_QUOTE,
    DEFAULT_SCALE_POINTS,
    ID_COLUMNS,
    ITEM_COLUMNS,
    OPTIONAL_COLUMNS,
    QUALITY,
    RESPONSE_COLUMNS,
    SCALE_POINTS_COLUMN,
    RatingsFormatError,
    cell_escape,
    cell_unescape,
    header_dimensions,
)

# The default questionnaire's dimensions and columns, for readers that name them.
from studyformats.ratings import DIMENSIONS as DIMENSIONS
from studyformats.ratings import RATINGS_COLUMNS as RATINGS_COLUMNS

# The explanation-length measures a regression can use, by the name a plan gives them.
LENGTH_COLUMNS = {"words": "explanation_length", "chars": "explanation_chars"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0", ""}


def frame_escape(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text cells and column names escaped, for ``to_csv``.

    Only text is touched: numbers (a negative estimate included) and missing values are
    written as pandas writes them.
    """
    escaped = frame.rename(
        columns=lambda name: cell_escape(name) if isinstance(name, str) else name
    )
    for column in escaped.select_dtypes(include=["object", "string"]).columns:
        values = escaped[column]
        escaped[column] = values.map(lambda v: cell_escape(v) if isinstance(v, str) else v)
    return escaped


def frame_unescape(frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV read as text, with the quotes ``cell_escape`` added removed again."""
    frame = frame.rename(columns=lambda name: cell_unescape(str(name)))
    for column in frame.columns:
        values = frame[column].astype(str)
        frame[column] = values.mask(values.str.startswith(CELL_QUOTE), values.str[1:])
    return frame


def ratings_load(
    source: str | Path | pd.DataFrame, *, reference: str | None = None
) -> pd.DataFrame:
    """Read a ratings export and check every value the analysis relies on.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A CSV file in the ratings format of docs/formats.md, or a DataFrame with the same columns
        (for example built from ``studyapp.exports.ratings_rows``).
    reference : str, optional
        A condition that must be present (the regression's reference condition).

    Returns
    -------
    pandas.DataFrame
        A copy with typed columns (ids as strings, ratings as integers from 1 to the scale's
        points, lengths in words and, when the file has them, characters as numbers,
        ``excluded`` as bool, ``attention_failed`` as a count) and a ``quality`` column, the
        mean of the dimensions of each rated item. The columns keep their order, so
        :func:`ratings_dimensions` and :func:`ratings_scale_points` read the dimensions and
        the scale back from the frame. Extra columns (demographic covariates) are kept as
        they are.

    Raises
    ------
    AnalysisError
        Unreadable file, missing columns (``explanation_chars`` may be absent), no dimension
        columns, a ``scale_points`` that is not one whole number of at least 2, a rating
        outside 1 to the scale's points, a non-numeric length or time, fewer than two
        conditions, or a reference condition that is not in the data. The message names the
        column and the first offending lines.

    Notes
    -----
    The dimensions are the columns between ``explanation_chars`` (``explanation_length`` in
    files without character lengths) and ``seconds_on_item``, in their order; the scale has
    the points of the ``scale_points`` column, or 5 when the file has none (docs/formats.md).

    ``attention_failed`` is the participant's number of failed attention checks. An
    export that writes it as true/false is read as 1/0 fails per participant; the
    exclusion rule then needs ``attention_fail_threshold=1`` (``report_write``, or
    ``--attention-fail-threshold 1`` on the command line) to drop them.

    Examples
    --------
    >>> from analysis.simulate import ratings_simulate
    >>> df = ratings_load(ratings_simulate(5, seed=0))
    >>> df.loc[0, [*DIMENSIONS, "quality"]].tolist()
    [3.0, 2.0, 2.0, 1.0, 1.0, 1.8]
    >>> df = ratings_load(ratings_simulate(5, dimensions=["faithful", "clear"], scale_points=7))
    >>> ratings_dimensions(df), ratings_scale_points(df)
    (('faithful', 'clear'), 7)
    """
    if isinstance(source, pd.DataFrame):
        raw = source.copy()
        where = "row"
        first_row = 0
    else:
        raw = _csv_read(Path(source))
        where = "line"
        first_row = 2  # line 1 is the header
    required = (*ITEM_COLUMNS, *RESPONSE_COLUMNS)
    missing = [c for c in required if c not in raw.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise AnalysisError(f"the ratings are missing the column(s): {', '.join(missing)}")
    dimensions = ratings_dimensions(raw)
    if raw.empty:
        raise AnalysisError("the ratings have no rows")
    labels = pd.Series(np.arange(len(raw)) + first_row, index=raw.index)
    points = _scale_points_read(raw, labels, where)
    df = raw.copy()
    for col in ID_COLUMNS:
        df[col] = _text_column(
            raw[col], col, labels, where, required=col in ("participant", "condition")
        )
    if SCALE_POINTS_COLUMN in raw.columns:
        df[SCALE_POINTS_COLUMN] = points
    for dim in dimensions:
        df[dim] = _integer_column(raw[dim], dim, labels, where, low=1, high=points)
    df["position"] = _integer_column(raw["position"], "position", labels, where, low=0, high=None)
    df["explanation_length"] = _number_column(
        raw["explanation_length"], "explanation_length", labels, where, required=True
    )
    if "explanation_chars" in raw.columns:
        df["explanation_chars"] = _number_column(
            raw["explanation_chars"], "explanation_chars", labels, where, required=True
        )
    df["seconds_on_item"] = _number_column(
        raw["seconds_on_item"], "seconds_on_item", labels, where, required=False
    )
    df["attention_failed"] = _attention_column(raw["attention_failed"], labels, where)
    df["excluded"] = _bool_column(raw["excluded"], "excluded", labels, where)
    df[QUALITY] = df[list(dimensions)].mean(axis=1)
    conditions_check(df, reference=reference)
    return df.reset_index(drop=True)


def ratings_dimensions(ratings: pd.DataFrame) -> tuple[str, ...]:
    """The dimension keys of a ratings export, in its order (see :func:`ratings_load`).

    Raises
    ------
    AnalysisError
        The columns that bound the dimensions are missing or out of order, or nothing lies
        between them.

    Examples
    --------
    >>> from analysis.simulate import ratings_simulate
    >>> ratings_dimensions(ratings_simulate(2, dimensions=["faithful", "clear", "useful"]))
    ('faithful', 'clear', 'useful')
    """
    try:
        return header_dimensions(list(ratings.columns))
    except RatingsFormatError as exc:
        raise AnalysisError(str(exc)) from None


def ratings_scale_points(ratings: pd.DataFrame) -> int:
    """The number of points of the rating scale: the ``scale_points`` column, else 5.

    Reads a frame of :func:`ratings_load`, whose ``scale_points`` column (when there is one)
    holds one checked value.

    Examples
    --------
    >>> ratings_scale_points(pd.DataFrame({"scale_points": [7, 7]}))
    7
    >>> ratings_scale_points(pd.DataFrame({"plausibility": [4]}))
    5
    """
    if SCALE_POINTS_COLUMN not in ratings.columns or ratings.empty:
        return DEFAULT_SCALE_POINTS
    return int(ratings[SCALE_POINTS_COLUMN].iloc[0])


def conditions_check(df: pd.DataFrame, *, reference: str | None = None) -> list[str]:
    """Return the sorted conditions, raising AnalysisError if fewer than two or no reference.

    Examples
    --------
    >>> conditions_check(pd.DataFrame({"condition": ["b", "a", "b"]}))
    ['a', 'b']
    """
    conditions = sorted(df["condition"].unique().tolist())
    if len(conditions) < 2:
        found = f"only {conditions[0]!r}" if conditions else "none"
        raise AnalysisError(
            f"the analysis compares conditions and needs at least two; found {found}"
        )
    if reference is not None and reference not in conditions:
        raise AnalysisError(
            f"reference condition {reference!r} is not in the data; conditions are: {', '.join(conditions)}"
        )
    return conditions


def length_column(data: pd.DataFrame, measure: str) -> str:
    """The column of an explanation-length measure (``words`` or ``chars``) present in ``data``.

    Examples
    --------
    >>> length_column(pd.DataFrame({"explanation_length": [3]}), "words")
    'explanation_length'
    """
    if measure not in LENGTH_COLUMNS:
        raise AnalysisError(
            f"unknown explanation-length measure {measure!r}; use one of: {', '.join(LENGTH_COLUMNS)}"
        )
    column = LENGTH_COLUMNS[measure]
    if column not in data.columns:
        raise AnalysisError(
            f"regression.length = {measure!r} needs the column {column}, which these ratings "
            "lack (an export made before it was added); export the ratings again or use "
            "regression.length = 'words'"
        )
    return column


def reference_default(conditions: Sequence[str]) -> str:
    """The paper's reference: the counterfactual-only model ("CF:..."), else the first condition.

    Examples
    --------
    >>> reference_default(["MT:original", "CF:original"])
    'CF:original'
    >>> reference_default(["b", "a"])
    'a'
    """
    ordered = sorted(conditions)
    for condition in ordered:
        if condition.split(":", 1)[0].strip().upper() == "CF":
            return condition
    return ordered[0]


def _csv_read(path: Path) -> pd.DataFrame:
    try:
        return frame_unescape(pd.read_csv(path, dtype=str, keep_default_na=False))
    except FileNotFoundError:
        raise AnalysisError(f"ratings file not found: {path}") from None
    except IsADirectoryError:
        raise AnalysisError(f"ratings path is a directory, not a CSV file: {path}") from None
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"ratings file is empty: {path}") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise AnalysisError(f"ratings file {path} is not a valid CSV: {first}") from None
    except UnicodeDecodeError:
        raise AnalysisError(f"ratings file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise AnalysisError(f"cannot read ratings file {path}: {exc.strerror or exc}") from None


def _bad(
    column: str, rule: str, bad: pd.Series, raw: pd.Series, labels: pd.Series, where: str
) -> AnalysisError:
    shown = [f"{where} {labels[i]} has {_show(raw[i])}" for i in bad[bad].index[:3]]
    more = int(bad.sum()) - len(shown)
    tail = f" (and {more} more)" if more > 0 else ""
    return AnalysisError(f"{column} {rule}; {', '.join(shown)}{tail}")


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return "an empty value"
    return repr(str(value))


def _blank(raw: pd.Series) -> pd.Series:
    return raw.isna() | (raw.astype(str).str.strip() == "")


def _text_column(
    raw: pd.Series, column: str, labels: pd.Series, where: str, *, required: bool
) -> pd.Series:
    blank = _blank(raw)
    if required and blank.any():
        raise _bad(column, "must not be empty", blank, raw, labels, where)
    return raw.where(~blank, "").astype(str).str.strip()


def _numeric(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
        return raw.astype(float)
    return pd.to_numeric(raw.astype(str).str.strip().where(~_blank(raw)), errors="coerce")


def _integer_column(
    raw: pd.Series, column: str, labels: pd.Series, where: str, *, low: int, high: int | None
) -> pd.Series:
    values = _numeric(raw)
    bad = values.isna() | np.isinf(values) | (values != values.round()) | (values < low)
    if high is not None:
        bad |= values > high
    if bad.any():
        rule = (
            f"must be a whole number from {low} to {high}"
            if high is not None
            else f"must be a whole number ≥ {low}"
        )
        raise _bad(column, rule, bad, raw, labels, where)
    return values.astype("int64")


def _number_column(
    raw: pd.Series, column: str, labels: pd.Series, where: str, *, required: bool
) -> pd.Series:
    values = _numeric(raw)
    blank = _blank(raw)
    bad = (values.isna() & (~blank | required)) | (values < 0) | np.isinf(values)
    if bad.any():
        rule = "must be a number ≥ 0" if required else "must be empty or a number ≥ 0"
        raise _bad(column, rule, bad, raw, labels, where)
    return values.astype(float)


def _scale_points_read(raw: pd.DataFrame, labels: pd.Series, where: str) -> int:
    # One scale per file: a study has one questionnaire, and an export of several studies
    # refuses questionnaires with different scales.
    if SCALE_POINTS_COLUMN not in raw.columns:
        return DEFAULT_SCALE_POINTS
    column = raw[SCALE_POINTS_COLUMN]
    values = _integer_column(column, SCALE_POINTS_COLUMN, labels, where, low=2, high=None)
    first = int(values.iloc[0])
    differs = values != first
    if differs.any():
        raise _bad(
            SCALE_POINTS_COLUMN,
            f"must be the same in every row ({where} {labels.iloc[0]} has {first}); "
            "analyse ratings on different scales separately",
            differs,
            column,
            labels,
            where,
        )
    return first


def _bool_values(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype(bool), pd.Series(False, index=raw.index)
    text = raw.where(~raw.isna(), "").astype(str).str.strip().str.lower()
    return text.isin(_TRUE), ~(text.isin(_TRUE) | text.isin(_FALSE))


def _bool_column(raw: pd.Series, column: str, labels: pd.Series, where: str) -> pd.Series:
    values, bad = _bool_values(raw)
    if bad.any():
        raise _bad(column, "must be true or false", bad, raw, labels, where)
    return values


def _attention_column(raw: pd.Series, labels: pd.Series, where: str) -> pd.Series:
    # A count of failed checks; true/false exports are read as 1/0 (see ratings_load).
    as_bool, not_bool = _bool_values(raw)
    counts = _numeric(raw)
    counts = counts.where(not_bool, as_bool.astype(float))
    bad = counts.isna() | np.isinf(counts) | (counts < 0) | (counts != counts.round())
    if bad.any():
        raise _bad(
            "attention_failed",
            "must be a count of failed checks (0, 1, 2, …) or true/false",
            bad,
            raw,
            labels,
            where,
        )
    return counts.astype("int64")
