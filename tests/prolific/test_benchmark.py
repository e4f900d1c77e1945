"""The Prolific benchmark's measurements do what they say, on a small scale."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.prolific_status import SECRET, hook_cpu_ms, item_cpu_ms
from studyapp.models import Participant, Rating
from tests.prolific.fake import FakeProlific
from tests.studyapp.participant_pool import study_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_fake(fake_prolific: FakeProlific, settings: Any) -> Any:
    settings.PROLIFIC_HOOK_SECRET = SECRET
    prolific_id = fake_prolific.add_study(
        status="ACTIVE",
        total_available_places=20,
        external_study_url="https://study.example.org/s/bench/?PROLIFIC_PID="
        "{{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
    )
    return study_make(slug="bench", prolific_study_id=prolific_id)


def test_items_are_posted_and_timed(fake_prolific: FakeProlific, on_fake: Any) -> None:
    assert item_cpu_ms(on_fake, fake_prolific, 14) > 0
    assert Rating.objects.count() == 14 * 5
    assert Participant.objects.count() == 2  # twelve items each


def test_each_hook_releases_a_working_participant(
    fake_prolific: FakeProlific, on_fake: Any
) -> None:
    assert hook_cpu_ms(on_fake, fake_prolific, 3) > 0
    assert list(Participant.objects.values_list("status", flat=True)) == ["returned"] * 3
