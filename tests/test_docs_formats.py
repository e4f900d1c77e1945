"""docs/formats.md names every column and field that the code reads and writes."""

from __future__ import annotations

from pathlib import Path

from analysis.formats import RATINGS_COLUMNS
from studyapp.importing import RECORD_FIELDS

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
