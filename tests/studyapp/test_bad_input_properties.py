"""Random and hostile requests to every participant URL: never a 500, never a stray write.

Each example sends one request made of random parts (method, path, query string, form
body, content type, htmx headers, unicode and oversized values, ids and step tokens that
belong to another participant) from one of three browsers: a stranger with no session, a
participant who consented and is on their first item, and a visitor who opened the link
but has not consented. Every example starts from the same database (each one runs in its
own rolled-back transaction), and afterwards:

* the response is not a server error;
* a refused request (4xx, or a rating form that does not validate) wrote nothing;
* nothing belonging to a participant other than the sender changed;
* every stored Prolific ID is one the link pattern accepts whole.

A third property feeds the explanations importer hostile lines (deep nesting, NUL, lone
surrogates, final newlines): each is reported by line number, or the file imports whole.

A second property follows one browser from the link through consent with a Prolific ID
that may end in whitespace: it is refused or stored exactly, never as a second participant.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.db.models import Count, Q, Sum
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from studyapp.forms import PROLIFIC_ID_PATTERN, RatingForm
from studyapp.importing import ExplanationsFileError, explanations_read
from studyapp.models import Explanation, Participant, Study
from studyapp.participation.binding import PARTICIPANT_COOKIE
from studyapp.studies.services import study_create_from_explanations
from studyformats.explanations import RECORD_FIELDS
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import (
    entry_url,
    explanation_lines,
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
    *PLAIN_5.keys,
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
    # A final newline: "$" in a pattern matches before it, "\Z" does not.
    "victim\n",
    "sender\n",
    "item-1\n",
    "check-2\n",
    "\u2028",
    '{"a": ' * 50 + "1" + "}" * 50,
)
# Whole query strings for the raw-query draw: percent-escapes that decode to a newline, a NUL,
# a lone surrogate (not valid UTF-8) or a deeply nested value.
TRICKY_QUERIES = (
    "PROLIFIC_PID=victim%0A&STUDY_ID=s&SESSION_ID=t",
    "PROLIFIC_PID=victim&STUDY_ID=s%0A",
    "PROLIFIC_PID=a%00b",
    "PROLIFIC_PID=%ED%A0%80",
    "PROLIFIC_PID=%F0%9F%99%82",
    "step=item-1%0A&" + "&".join(f"{d}=3" for d in PLAIN_5.keys),
    "PROLIFIC_PID=" + "%5B" * 5000,
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
        stored = list(Participant.objects.values_list("prolific_pid", flat=True))
        assert all(re.fullmatch(PROLIFIC_ID_PATTERN, pid) for pid in stored), stored
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
                st.one_of(
                    st.sampled_from(TRICKY_QUERIES),
                    st.text(st.characters(codec="ascii", exclude_categories=["Cc"])),
                )
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
            **dict(zip(PLAIN_5.keys, map(str, values), strict=True)),
            **extra,
        }
        headers = {"HX-Request": "true"} if htmx else {}

        self._assert_safe(
            "sender", lambda client: client.post(self.step_url, body, headers=headers)
        )


class ProlificIdTests(TestCase):
    """The link and consent with a drawn Prolific ID, from a fresh browser each example."""

    @classmethod
    def setUpTestData(cls) -> None:
        study = study_make(slug=SLUG, questions=16)
        Client().get(entry_url(study, "abc"))
        first = Client()
        first.get(entry_url(study, "abc"))
        first.post(f"/s/{SLUG}/consent/", {"decision": "agree"})

    @hypothesis_settings(max_examples=EXAMPLES // 3, deadline=None)
    @given(
        pid=st.one_of(
            st.just("abc"),
            st.text(st.characters(codec="ascii"), min_size=1, max_size=8),
        ),
        suffix=st.sampled_from(("", "\n", "\r\n", " ", "\t", "\x00", "\u2028", "\n\n")),
    )
    def test_a_prolific_id_is_stored_whole_or_refused(self, pid: str, suffix: str) -> None:
        browser = Client()
        link = f"/s/{SLUG}/?" + urlencode({"PROLIFIC_PID": pid + suffix, "STUDY_ID": "s"})

        entered = browser.get(link)
        consented = browser.post(f"/s/{SLUG}/consent/", {"decision": "agree"})

        assert entered.status_code < 500
        assert consented.status_code < 500
        stored = list(Participant.objects.values_list("prolific_pid", flat=True))
        assert all(re.fullmatch(PROLIFIC_ID_PATTERN, value) for value in stored), stored
        assert len({value.strip() for value in stored}) == len(stored)
        if not re.fullmatch(PROLIFIC_ID_PATTERN, pid + suffix):
            assert entered.status_code == 400
            assert stored == ["abc"]


# Values a hostile explanations file puts in a field: JSON nesting far past the decoder's
# recursion limit, NUL (refused by PostgreSQL), a lone surrogate (not text), a final newline.
HOSTILE_VALUES = (
    "[" * 5000 + "]" * 5000,
    '{"a": ' * 3000 + "1" + "}" * 3000,
    '"fine\\u0000text"',
    '"\\ud800"',
    '"\\udfff tail"',
    '"MT:original\\n"',
    '"q001\\n"',
    '["bank", "lib\\u0000rary"]',
    '["\\ud83d", "library"]',
    "true",
    "null",
    "1e999",
)


class ExplanationsFileTests(TestCase):
    """A valid file with some fields of some lines replaced by hostile raw JSON."""

    @hypothesis_settings(
        max_examples=EXAMPLES // 3,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def test_a_hostile_line_is_reported_by_number_or_imported_whole(
        self, data: st.DataObject
    ) -> None:
        lines = explanation_lines(questions=12)
        replaced: dict[int, dict[str, str]] = {}
        for _ in range(data.draw(st.integers(1, 3), label="changes")):
            index = data.draw(st.integers(0, len(lines) - 1), label="line")
            field = data.draw(st.sampled_from(RECORD_FIELDS), label="field")
            replaced.setdefault(index, {})[field] = data.draw(
                st.sampled_from(HOSTILE_VALUES), label="value"
            )
        for index, fields in replaced.items():
            # Raw JSON text in place of each value, so escapes reach the decoder as sent.
            record = json.loads(lines[index])
            for field in fields:
                record[field] = f"@{field}@"
            line = json.dumps(record)
            for field, value in fields.items():
                line = line.replace(f'"@{field}@"', value)
            lines[index] = line

        errors: list[str] = []
        try:
            records = explanations_read(lines)
        except ExplanationsFileError as exc:
            errors = exc.errors
        if errors:
            for error in errors:
                error.encode("utf-8")  # every message can be shown on a page
                assert len(error) < 400, error
                number = re.match(r"line ([0-9]+): ", error)
                assert number is not None, error
                assert 1 <= int(number.group(1)) <= len(lines), error
            assert not Study.objects.exists()
            return
        study = study_create_from_explanations(slug="hostile", records=records)
        assert Explanation.objects.filter(condition__study=study).count() == len(records)
