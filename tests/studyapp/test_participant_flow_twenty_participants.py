"""The issue's "Done when": twenty participants over plain HTTP, no JavaScript."""

from __future__ import annotations

from collections import Counter

import pytest
from django.test import Client
from django.urls import reverse

from studyapp.models import Assignment, Explanation, Participant, Rating
from tests.studyapp.participant_pool import entry_url, participant_run, rating_post, study_make

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_twenty_participants_complete_a_balanced_study() -> None:
    study = study_make(questions=16)
    completion = f"https://app.prolific.com/submissions/complete?cc={study.completion_code}"

    for n in range(20):
        last = participant_run(Client(), study, f"participant-{n:02d}", value=1 + n % 5)
        assert last.status_code == 200
        assert f'href="{completion}"' in last.content.decode()

    assert Participant.objects.filter(status=Participant.Status.COMPLETED).count() == 20
    assert Assignment.objects.count() == 240
    assert Rating.objects.count() == 1200
    for participant in Participant.objects.all():
        items = participant.assignments.select_related("explanation__condition")
        per_condition = Counter(a.explanation.condition.name for a in items)
        assert sorted(per_condition.values()) == [3, 3, 3, 3]
        assert len({a.question_id for a in items}) == 12
        assert participant.attention_checks.filter(passed=True).count() == 2
    exposure = Counter(Assignment.objects.values_list("explanation_id", flat=True))
    counts = [exposure[e] for e in Explanation.objects.values_list("id", flat=True)]
    assert max(counts) - min(counts) <= 1

    # A returning participant lands on their completion page; nothing new is assigned.
    again = Client().get(entry_url(study, "participant-07"), follow=True)
    assert study.completion_code in again.content.decode()
    assert Assignment.objects.count() == 240


def test_a_participant_who_leaves_midway_resumes_in_a_new_browser() -> None:
    study = study_make()
    first = Client()
    first.get(entry_url(study, "leaver"))
    first.post(reverse("studyapp:consent", kwargs={"slug": study.slug}), {"decision": "agree"})
    step = reverse("studyapp:step", kwargs={"slug": study.slug})
    first.get(step)
    first.post(
        step,
        rating_post("item-1", 3),
    )

    last = participant_run(Client(), study, "leaver")

    participant = Participant.objects.get()
    assert participant.status == Participant.Status.COMPLETED
    assert study.completion_code in last.content.decode()
    assert participant.assignments.count() == 12
    assert Rating.objects.filter(assignment__participant=participant).count() == 60
    assert Rating.objects.get(assignment__position=1, dimension="plausibility").value == 3
