"""Random and hostile requests to every participant URL: never a 500, never a stray write.

Each example sends one request made of random parts (method, path, query string, form
body, content type, htmx headers, unicode and oversized values, ids and step tokens that
belong to another participant) from one of three browsers: a stranger with no session, a
participant who consented and is on their first item, and a visitor who opened the link
but has not consented. Every example starts from the same database (each one runs in its
own rolled-back transaction), and afterwards:

* the response is not a server error;
* a refused request (4xx, or a rating form that does not validate) wrote nothing;
* nothing belonging to a participant other than the sender changed.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlencode

from django.db.models import Count, Q, Sum
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from studyapp.forms import RatingForm
from studyapp.models import Dimension, Participant
from studyapp.views import PARTICIPANT_COOKIE
from tests.studyapp.participant_pool import (
    entry_url,
    page_instructed_value,
    page_step_token,
    rating_post,
    step_url,
    study_make,
)

SLUG = "pilot"
PAGES = ("", "consent/", "instructions/", "item/", "done/", "ended/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
FIELD_NAMES = (
    "step",
    "decision",
    *Dimension.values,
    "csrfmiddlewaretoken",
    "participant",
    "assignment",
    "explanation",
    "PROLIFIC_PID",
    "STUDY_ID",
    "SESSION_ID",
)
TRICKY = (
    "",
    " ",
    "0",
    "-1",
    "3",
    "6",
    "3.0",
    " 3",
    "1e3",
    "NaN",
    "99999999999999999999999999",
    "agree",
    "decline",
    "item-1",
    "item-0",
    "item-999",
    "check-2",
    "{{%PROLIFIC_PID%}}",
    "%00",
    "\x00",
    "\ufeff",
    "🙂",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
)
# Bounded so the whole file stays well under a minute, even on a busy machine.
EXAMPLES = 150


def participants_fingerprint() -> dict[str, tuple[Any, ...]]:
    """Everything a request could change about each participant, as comparable values."""
    rows = Participant.objects.annotate(
        answered=Count("assignments", filter=Q(assignments__answered_at__isnull=False)),
        ratings=Count("assignments__ratings"),
        rating_sum=Sum("assignments__ratings__value"),
    ).values_list(
        "prolific_pid", "status", "attention_failures", "answered", "ratings", "rating_sum"
    )
    checks = dict(
        Participant.objects.annotate(
            n=Count("attention_checks", filter=Q(attention_checks__answered_at__isnull=False))
        ).values_list("prolific_pid", "n")
    )
    return {pid: (*rest, checks[pid]) for pid, *rest in rows}


def _answer_current(client: Client) -> None:
    page = client.get(f"/s/{SLUG}/item/").content.decode()
    token = page_step_token(page)
    value = page_instructed_value(page) if token.startswith("check-") else 4
    client.post(f"/s/{SLUG}/item/", rating_post(token, value))


class BadInputTests(TestCase):
    """One shared study; each hypothesis example rolls back to it."""

    sessions: ClassVar[dict[str, str | None]]
    forged: ClassVar[list[str]]
    step_url: ClassVar[str]

    @classmethod
    def setUpTestData(cls) -> None:
        study = study_make(slug=SLUG, questions=16)
        # The victim: three steps answered, so they have ratings a forged request could touch.
        victim = Client()
        victim.get(entry_url(study, "victim"))
        victim.post(f"/s/{SLUG}/consent/", {"decision": "agree"})
        for _ in range(3):
            _answer_current(victim)
        sender = Client()
        sender.get(entry_url(study, "sender"))
        sender.post(f"/s/{SLUG}/consent/", {"decision": "agree"})
        visitor = Client()
        visitor.get(entry_url(study, "visitor"))
        cookie = PARTICIPANT_COOKIE
        cls.sessions = {
            "stranger": None,
            "sender": sender.cookies[cookie].value,
            "visitor": visitor.cookies[cookie].value,
        }
        target = Participant.objects.get(prolific_pid="victim")
        steps = [f"item-{n}" for n in range(1, 13)] + [
            f"check-{c.before_position}" for c in target.attention_checks.all()
        ]
        ids = [str(a.pk) for a in target.assignments.all()]
        ids += [str(a.explanation_id) for a in target.assignments.all()] + [str(target.pk)]
        cls.forged = [*steps, *ids, "victim"]
        cls.step_url = step_url(study)

    def _client(self, identity: str) -> Client:
        client = Client()
        session = self.sessions[identity]
        if session is not None:
            client.cookies[PARTICIPANT_COOKIE] = session
        return client

    def _values(self) -> st.SearchStrategy[str]:
        return st.one_of(
            st.sampled_from(TRICKY),
            st.sampled_from(self.forged),
            st.text(max_size=30),
            st.integers().map(str),
            # Oversized values: far beyond any field's length.
            st.builds(lambda c, n: c * n, st.sampled_from("a9é🙂-"), st.integers(300, 70_000)),
        )

    def _pairs(self, data: st.DataObject, label: str) -> list[tuple[str, str]]:
        names = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12))
        return data.draw(st.lists(st.tuples(names, self._values()), max_size=9), label=label)

    def _assert_safe(self, identity: str, send: Any, *, rejected_form: bool = False) -> None:
        before = participants_fingerprint()
        response = send(self._client(identity))
        after = participants_fingerprint()
        assert response.status_code < 500, response.content[:500]
        if response.status_code >= 400 or rejected_form:
            assert after == before, f"a refused request ({response.status_code}) wrote data"
        sender_pid = identity if identity in ("sender", "visitor") else None
        for pid, fingerprint in before.items():
            if pid != sender_pid:
                assert after.get(pid) == fingerprint, f"{identity} changed {pid}'s data"

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        data=st.data(),
        identity=st.sampled_from(("stranger", "sender", "visitor")),
        # GET and POST, which the pages answer, are drawn more often than the rest.
        method=st.one_of(st.sampled_from(("GET", "POST")), st.sampled_from(METHODS)),
        page=st.sampled_from(PAGES),
        slug=st.one_of(st.just(SLUG), st.just(SLUG), st.text(max_size=20), st.just("x" * 5000)),
        encoding=st.sampled_from(("form", "multipart", "raw")),
        htmx=st.sampled_from((None, "true", "false", "🙂")),
    )
    def test_any_request_to_a_participant_url_is_answered_without_a_server_error(
        self,
        data: st.DataObject,
        identity: str,
        method: str,
        page: str,
        slug: str,
        encoding: str,
        htmx: str | None,
    ) -> None:
        query = self._pairs(data, "query")
        body = self._pairs(data, "body")
        path = f"/s/{slug}/{page}"
        if data.draw(st.booleans(), label="raw query"):
            path += "?" + data.draw(
                st.text(st.characters(codec="ascii", exclude_categories=["Cc"]))
            )
        elif query:
            path += "?" + urlencode(query)
        if encoding == "form":
            payload, content_type = urlencode(body).encode(), "application/x-www-form-urlencoded"
        elif encoding == "multipart":
            payload = encode_multipart(BOUNDARY, dict(body))
            content_type = MULTIPART_CONTENT
        else:
            payload = data.draw(st.binary(max_size=2000), label="raw body")
            content_type = data.draw(
                st.sampled_from(
                    ("application/json", "multipart/form-data", "text/plain; charset=🙂", "")
                )
            )
        headers = {"HX-Request": htmx} if htmx is not None else {}
        rejected_form = (
            page == "item/" and method == "POST" and not RatingForm(dict(body)).is_valid()
        )

        self._assert_safe(
            identity,
            lambda client: client.generic(
                method, path, payload, content_type=content_type, headers=headers
            ),
            rejected_form=rejected_form and encoding != "raw",
        )

    @hypothesis_settings(max_examples=EXAMPLES // 2, deadline=None)
    @given(
        data=st.data(),
        values=st.lists(st.integers(1, 5), min_size=5, max_size=5),
        htmx=st.booleans(),
    )
    def test_a_valid_rating_carrying_another_participants_ids_touches_only_the_sender(
        self, data: st.DataObject, values: list[int], htmx: bool
    ) -> None:
        token = data.draw(st.sampled_from([*self.forged[:14], "item-1"]), label="step")
        extra = {
            name: data.draw(st.sampled_from(self.forged), label=name)
            for name in data.draw(
                st.lists(st.sampled_from(("participant", "assignment", "explanation")), unique=True)
            )
        }
        body = {
            "step": token,
            **dict(zip(Dimension.values, map(str, values), strict=True)),
            **extra,
        }
        headers = {"HX-Request": "true"} if htmx else {}

        self._assert_safe(
            "sender", lambda client: client.post(self.step_url, body, headers=headers)
        )
