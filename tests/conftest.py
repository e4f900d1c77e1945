from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
# The real data (CommonsenseQA, the published teacher outputs, a published rating instrument):
# EXPLAINSTUDY_TEST_DATA names its folder; by default the data folder beside the project.
SHARED_DATA = Path(
    os.environ.get("EXPLAINSTUDY_TEST_DATA") or ROOT.parent / "shared" / "data"
).resolve()


@pytest.fixture
def shared_data() -> Path:
    """The real CommonsenseQA and teacher data; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (present in CI)")
    return SHARED_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip_pg)


@pytest.fixture(autouse=True)
def rate_windows_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test inside one rate-limit window, however slowly the machine runs it.

    Fixed windows turn over on the clock's minute; a test that counts to a limit would
    otherwise start afresh whenever a boundary fell between its requests.
    """
    from studyapp.ratelimit import WindowCounter

    # The middle of a one-minute and of a one-hour window.
    monkeypatch.setattr(WindowCounter, "clock", staticmethod(lambda: 1_800_001_830.0))
