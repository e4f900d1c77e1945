"""docs/formats.md names every column and field that the code reads and writes."""

from __future__ import annotations

from pathlib import Path

from studyformats.explanations import RECORD_FIELDS
from studyformats.ratings import (
    COLUMN_TYPES,
    DEFAULT_SCALE_POINTS,
    DIMENSIONS,
    RATINGS_COLUMNS,
    SCALE_POINTS_COLUMN,
    ratings_header,
)
from studyformats.summary import SUMMARY_KEYS

FORMATS = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text()


def _section(title: str) -> str:
    start = FORMATS.index(f"## {title}")
    end = FORMATS.find("\n## ", start + 1)
    return FORMATS[start : end if end > 0 else None]


def test_the_ratings_columns_are_documented_in_their_order():
    section = _section("Ratings file")
    places = [section.index(f"`{column}`") for column in RATINGS_COLUMNS]
    assert places == sorted(places)


def test_the_columns_of_another_questionnaire_are_documented_in_their_order():
    section = _section("Ratings file")
    header = ratings_header(("faithfulness", "clarity"), DEFAULT_SCALE_POINTS + 2)
    assert header[-1] == SCALE_POINTS_COLUMN
    fixed = [column for column in header if column not in ("faithfulness", "clarity")]
    places = [section.index(f"`{column}`") for column in fixed]
    assert places == sorted(places)
    row = next(
        line for line in section.splitlines() if line.startswith(f"| `{SCALE_POINTS_COLUMN}` |")
    )
    assert row.split("|")[2].strip() == "integer"
    assert f"not {DEFAULT_SCALE_POINTS}" in row
    for rule in ("between `explanation_chars`", "`seconds_on_item`", "Several studies in one file"):
        assert rule in section, rule


def test_every_explanations_field_is_documented():
    section = _section("Explanations file")
    for field in RECORD_FIELDS:
        assert f"| `{field}` |" in section, field


def test_the_column_types_cover_every_column_and_agree_with_this_page():
    section = _section("Ratings file")
    assert set(COLUMN_TYPES) == set(RATINGS_COLUMNS)
    for column, kind in COLUMN_TYPES.items():
        if column in DIMENSIONS:
            continue  # one row of the table names all five
        row = next(line for line in section.splitlines() if line.startswith(f"| `{column}` |"))
        documented = row.split("|")[2].strip()
        assert documented.startswith(kind) or (kind, documented) == ("bool", "true/false"), column


def test_every_summary_key_is_documented():
    analysis = (Path(__file__).resolve().parent.parent / "docs" / "analysis.md").read_text()
    table = analysis[analysis.index("### `summary.json`") :]
    for key in SUMMARY_KEYS:
        assert f"`{key}`" in table or f"`{key}." in table, key
