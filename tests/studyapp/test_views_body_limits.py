"""Participant pages refuse file uploads and large bodies before anything parses them."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from studyapp.middleware import PARTICIPANT_BODY_MAX_BYTES
from studyapp.models import Participant, Rating, Study
from tests.studyapp.participant_pool import entry_url, page_step_token, rating_post, study_make

pytestmark = pytest.mark.django_db

PAGES = ("entry", "consent", "instructions", "step", "done", "ended")


@pytest.fixture
def study() -> Study:
    return study_make()


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test if anything tries to read it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    def readline(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body was read")


def _started(study: Study) -> Client:
    browser = Client()
    browser.get(entry_url(study, "p1"))
    browser.post(reverse("studyapp:consent", kwargs={"slug": study.slug}), {"decision": "agree"})
    return browser


def _url(study: Study, name: str) -> str:
    return reverse(f"studyapp:{name}", kwargs={"slug": study.slug})


def test_every_participant_page_is_limited() -> None:
    patterns = get_resolver("studyapp.urls").url_patterns
    assert {p.name for p in patterns if isinstance(p, URLPattern)} == set(PAGES)
    for pattern in patterns:
        assert isinstance(pattern, URLPattern)
        limit = getattr(pattern.callback, "participant_body_max_bytes", None)
        assert limit == PARTICIPANT_BODY_MAX_BYTES, pattern.name


@pytest.mark.parametrize("name", PAGES)
def test_a_file_upload_is_refused_with_415(study: Study, name: str) -> None:
    browser = _started(study)
    upload = SimpleUploadedFile("big.bin", b"x" * 1024)

    response = browser.post(_url(study, name), {"decision": "agree", "file": upload})

    assert response.status_code == 415
    assert "no file uploads" in response.content.decode()


@pytest.mark.parametrize("name", PAGES)
def test_a_body_announced_over_the_limit_is_refused_unread(study: Study, name: str) -> None:
    browser = _started(study)

    response = browser.generic(
        "POST",
        _url(study, name),
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(200 * 1024 * 1024),
        **{"wsgi.input": UnreadableBody()},
    )

    assert response.status_code == 413


def test_a_real_body_just_over_the_limit_is_refused_and_writes_nothing(study: Study) -> None:
    browser = _started(study)
    token = page_step_token(browser.get(_url(study, "step")).content.decode())
    form = rating_post(token, 3)
    form["padding"] = "x" * PARTICIPANT_BODY_MAX_BYTES

    response = browser.post(_url(study, "step"), form)

    assert response.status_code == 413
    assert not Rating.objects.exists()
    del form["padding"]
    assert browser.post(_url(study, "step"), form).status_code == 302
    assert Rating.objects.count() == 5


def test_a_multipart_consent_creates_no_participant(study: Study) -> None:
    browser = Client()
    browser.get(entry_url(study, "p2"))

    response = browser.post(
        _url(study, "consent"), {"decision": "agree", "f": SimpleUploadedFile("a.txt", b"a")}
    )

    assert response.status_code == 415
    assert not Participant.objects.exists()
