"""docs/formats.md names every column and field that the code reads and writes."""

from __future__ import annotations

from pathlib import Path

from studyformats.explanations import RECORD_FIELDS
from studyformats.ratings import COLUMN_TYPES, DIMENSIONS, RATINGS_COLUMNS
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
