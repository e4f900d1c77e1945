"""A whole study run through Prolific: created and published from here, twenty participants
arriving by Prolific's study link, three returning midway, their items going to others."""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from studyapp import selectors
from studyapp.models import Assignment, Explanation, Participant, ProlificSubmission, Study
from studyapp.prolific.client import ProlificClient
from studyapp.prolific.services import (
    StudyDraft,
    prolific_comparison,
    prolific_sync,
    study_create_on_prolific,
    study_publish,
)
from tests.prolific.fake import FakeProlific
from tests.prolific.hook_support import hook_sink
from tests.studyapp.participant_pool import (
    page_instructed_value,
    page_step_token,
    rating_post,
    step_url,
    study_make,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PLACES = 20
RETURNERS = {3, 8, 13}  # arrival numbers of those who return after RATED_BEFORE_RETURN items
RATED_BEFORE_RETURN = 4
ITEMS = 12


def arrive(browser: Client, study: Study, link: str) -> None:
    """Open Prolific's study link (path and query of the URL Prolific sends) and consent."""
    parts = urlsplit(link)
    assert parts.netloc == "study.example.org"
    entry = browser.get(f"{parts.path}?{parts.query}")
    assert entry.status_code == 302, entry.status_code
    consent = browser.post(f"/s/{study.slug}/consent/", {"decision": "agree"})
    assert consent.status_code == 302, consent.status_code


def rate(browser: Client, study: Study, items: int | None) -> str | None:
    """Answer ``items`` rated items (None: to the end); the completion code at the end."""
    rated = 0
    while items is None or rated < items:
        page = browser.get(step_url(study))
        if page.status_code == 302:
            done = browser.get(page["Location"]).content.decode()
            match = re.search(r"submissions/complete\?cc=([A-Za-z0-9]+)", done)
            assert match is not None, "the completion page has no link back to Prolific"
            return match.group(1)
        html = page.content.decode()
        token = page_step_token(html)
        answer = page_instructed_value(html) if token.startswith("check-") else 4
        assert browser.post(step_url(study), rating_post(token, answer)).status_code == 302
        rated += not token.startswith("check-")
    return None


def held(study: Study) -> int:
    """Explanations rated or held by someone still working."""
    return sum(selectors.explanation_exposures(study=study, now=timezone.now()).values())


def test_twenty_participants_through_prolific_with_three_returns(
    fake_prolific: FakeProlific,
) -> None:
    fake = fake_prolific
    fake.hook_sink = hook_sink
    study = study_make(slug="cqa-prolific", live=False)
    draft = StudyDraft(
        name="Rate how computer models explain their answers",
        description="Read everyday questions, a model's answer and its explanation; rate each.",
        reward=225,
        estimated_completion_time=15,
        total_available_places=PLACES,
        site_url="https://study.example.org",
    )
    with ProlificClient.from_settings() as client:
        study_create_on_prolific(study=study, draft=draft, client=client, by=None)
        study_publish(study=study, client=client, by=None)
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    assert fake.studies[study.prolific_study_id]["status"] == "ACTIVE"

    submissions: dict[str, str] = {}  # Prolific ID -> submission id
    completed = 0
    arrivals = 0
    while completed < PLACES:
        arrivals += 1
        submission_id, link = fake.participant_arrive(study.prolific_study_id)
        pid = fake.submissions[submission_id]["participant_id"]
        submissions[pid] = submission_id
        browser = Client()
        arrive(browser, study, link)
        if arrivals in RETURNERS:
            rate(browser, study, RATED_BEFORE_RETURN)
            before = held(study)
            fake.participant_return(submission_id)  # the hook arrives at once
            participant = Participant.objects.get(study=study, prolific_pid=pid)
            assert participant.status == Participant.Status.RETURNED
            # Their unrated items went back to the pool the moment Prolific said so.
            assert held(study) == before - (ITEMS - RATED_BEFORE_RETURN)
            continue
        code = rate(browser, study, None)
        assert code == study.completion_code
        assert fake.participant_complete(submission_id, code) == "APPROVED"
        completed += 1

    assert arrivals == PLACES + len(RETURNERS)
    statuses = Counter(Participant.objects.filter(study=study).values_list("status", flat=True))
    assert statuses == {"completed": PLACES, "returned": len(RETURNERS)}
    assert Counter(s.status for s in ProlificSubmission.objects.filter(study=study)) == {
        "APPROVED": PLACES,
        "RETURNED": len(RETURNERS),
    }
    # Every hook was accepted, and the two sides agree.
    assert {status for _, _, status in fake.deliveries} == {200}
    assert prolific_comparison(study).disagreements == []

    # The returners' unrated items were given to others: every rated item counts once,
    # the pool stays balanced, and nobody holds an item any more.
    rated = Assignment.objects.filter(participant__study=study, answered_at__isnull=False)
    assert rated.count() == PLACES * ITEMS + len(RETURNERS) * RATED_BEFORE_RETURN
    assert held(study) == rated.count()
    exposure = Counter(rated.values_list("explanation_id", flat=True))
    counts = [exposure[e] for e in Explanation.objects.values_list("id", flat=True)]
    # Within two, not one: while a returner held their items, others were drawn around them.
    assert max(counts) - min(counts) <= 2
    for returner in Participant.objects.filter(study=study, status=Participant.Status.RETURNED):
        released = returner.assignments.filter(answered_at__isnull=True)
        assert released.count() == ITEMS - RATED_BEFORE_RETURN
        for assignment in released:
            later = rated.filter(
                explanation_id=assignment.explanation_id,
                participant__started_at__gt=returner.started_at,
            ).exclude(participant=returner)
            assert later.exists(), f"an item {returner.prolific_pid} left was never rated"

    # Polling afterwards finds nothing new.
    with ProlificClient.from_settings() as client:
        summary = prolific_sync(study=study, client=client)
    assert (summary.submissions, summary.changed, summary.released) == (
        PLACES + len(RETURNERS),
        0,
        0,
    )


def test_a_made_up_study_id_is_refused_once_the_study_is_on_prolific(
    fake_prolific: FakeProlific,
) -> None:
    study = study_make(prolific_study_id="a" * 24)
    response = Client().get(
        f"/s/{study.slug}/?PROLIFIC_PID=someone&STUDY_ID={'b' * 24}&SESSION_ID=x"
    )
    assert response.status_code == 403
    assert not Participant.objects.exists()
