"""Every API endpoint refuses anonymous and non-staff callers (session or token) and serves staff."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from studyapp.api.permissions import FailedAuthenticationThrottle, ResearcherRateThrottle
from studyapp.models import Study
from tests.studyapp.participant_pool import explanation_lines, study_make
from tests.studyapp.researcher_data import client_for, participant_finish, token_client_for

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "study list": reverse("api:study-list"),
    "study detail": reverse("api:study-detail", kwargs={"slug": "pilot"}),
    "progress": reverse("api:study-progress", kwargs={"slug": "pilot"}),
    "participants": reverse("api:study-participants", kwargs={"slug": "pilot"}),
    "ratings": reverse("api:study-ratings", kwargs={"slug": "pilot"}),
    "ratings csv": reverse("api:study-ratings-csv", kwargs={"slug": "pilot"}),
    "schema": reverse("api:schema"),
    "docs": reverse("api:docs"),
}


@pytest.fixture
def study():
    study = study_make(slug="pilot")
    participant_finish(study, "P1")
    return study


def statuses(client) -> dict[str, int]:
    return {name: client.get(url).status_code for name, url in ENDPOINTS.items()}


def status_post(client):
    url = reverse("api:study-status", kwargs={"slug": "pilot"})
    return client.post(url, {"status": "closed"}, content_type="application/json")


def upload(client):
    content = "\n".join(explanation_lines()).encode()
    return client.post(
        reverse("api:study-list"),
        {"slug": "created", "explanations": SimpleUploadedFile("e.jsonl", content)},
    )


@pytest.mark.parametrize(
    ("make_client", "kind", "code"),
    [
        (client_for, "anonymous", 401),
        (client_for, "member", 403),
        (token_client_for, "member", 403),
    ],
    ids=["anonymous", "non-staff session", "non-staff token"],
)
def test_anonymous_and_non_staff_callers_are_refused_everywhere(study, make_client, kind, code):
    client = make_client(kind)
    assert statuses(client) == dict.fromkeys(ENDPOINTS, code)
    assert upload(client).status_code == code
    assert status_post(client).status_code == code
    assert not Study.objects.filter(slug="created").exists()
    study.refresh_from_db()
    assert study.status == "live"


@pytest.mark.parametrize("make_client", [client_for, token_client_for], ids=["session", "token"])
def test_staff_reach_every_endpoint(study, make_client):
    client = make_client("researcher")
    assert statuses(client) == dict.fromkeys(ENDPOINTS, 200)
    assert upload(client).status_code == 201
    assert status_post(client).status_code == 200


def test_a_wrong_token_is_refused(study):
    client = Client(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    assert statuses(client) == dict.fromkeys(ENDPOINTS, 401)


def test_calls_beyond_the_rate_are_throttled(study, monkeypatch):
    rates = {"user": "3/minute", "anon": "2/minute"}
    monkeypatch.setattr(ResearcherRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setattr(FailedAuthenticationThrottle, "THROTTLE_RATES", rates)
    cache.clear()
    url = ENDPOINTS["study list"]
    staff = token_client_for("researcher")
    assert [staff.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
    guesser = Client(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    assert [guesser.get(url).status_code for _ in range(3)] == [401, 401, 429]
    cache.clear()
