"""Fixtures: a fake Prolific served on loopback, and a client on it that never really waits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from studyapp.prolific.client import ProlificClient, Retry
from tests.prolific.fake import FakeProlific, serve

TOKEN = "test-token"


@pytest.fixture
def fake_prolific(settings: Any) -> Iterator[FakeProlific]:
    """A FakeProlific on 127.0.0.1 (``fake.base_url``), with the Django settings pointing at it."""
    fake = FakeProlific()
    fake.tokens = {TOKEN}
    with serve(fake) as base_url:
        settings.PROLIFIC_API_TOKEN = TOKEN
        settings.PROLIFIC_API_URL = base_url
        settings.PROLIFIC_HOOK_SECRET = fake.hook_secret
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    """The waits ``client_fast`` asked for, in order (it waits for none of them)."""
    return []


@pytest.fixture
def client_fast(fake_prolific: FakeProlific, sleeps: list[float]) -> Iterator[ProlificClient]:
    """A ProlificClient on the fake whose retries record their wait in ``sleeps``."""
    client = ProlificClient.from_settings(retry=Retry(sleep=sleeps.append), timeout=5.0)
    yield client
    client.close()
