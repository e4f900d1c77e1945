"""Consent and instructions pages."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import reverse

from studyapp.models import Participant, Study
from studyapp.participation.binding import PARTICIPANT_COOKIE
from studyapp.studies.services import participant_exclusion_set
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import entry_url, study_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Study:
    return study_make()


@pytest.fixture
def entered(client: Client, study: Study) -> Client:
    client.get(entry_url(study, "p1", study_id="st1", session_id="se1"))
    return client


def _url(study: Study, name: str = "consent") -> str:
    return reverse(f"studyapp:{name}", kwargs={"slug": study.slug})


def test_the_consent_page_shows_the_study_information(entered: Client, study: Study) -> None:
    response = entered.get(_url(study))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Taking part is voluntary" in body
    assert 'name="decision" value="agree"' in body
    assert f'action="{_url(study)}"' in body


def test_agreeing_assigns_the_items_and_shows_the_instructions(
    entered: Client, study: Study
) -> None:
    response = entered.post(_url(study), {"decision": "agree"})

    assert response["Location"] == _url(study, "instructions")
    participant = Participant.objects.get()
    assert (
        participant.prolific_pid,
        participant.prolific_study_id,
        participant.prolific_session_id,
    ) == (
        "p1",
        "st1",
        "se1",
    )
    assert participant.assignments.count() == 12


def test_agreeing_twice_keeps_one_set_of_items(entered: Client, study: Study) -> None:
    entered.post(_url(study), {"decision": "agree"})
    items = list(Participant.objects.get().assignments.values_list("explanation_id", flat=True))

    response = entered.post(_url(study), {"decision": "agree"})

    assert response.status_code == 302
    assert (
        list(Participant.objects.get().assignments.values_list("explanation_id", flat=True))
        == items
    )


def test_declining_ends_politely_and_records_only_the_decline(
    entered: Client, study: Study
) -> None:
    response = entered.post(_url(study), {"decision": "decline"}, follow=True)

    body = response.content.decode()
    assert "You chose not to take part" in body
    assert "return the study on Prolific" in body
    participant = Participant.objects.get()
    assert participant.status == Participant.Status.NO_CONSENT
    assert not participant.assignments.exists()


@pytest.mark.parametrize("data", [{}, {"decision": "maybe"}])
def test_a_missing_or_unknown_decision_asks_again(
    entered: Client, study: Study, data: dict[str, str]
) -> None:
    response = entered.post(_url(study), data)

    assert response.status_code == 400
    assert "Please choose whether you agree to take part." in response.content.decode()
    assert not Participant.objects.exists()


def test_consent_without_the_study_link_asks_to_start_from_the_link(
    client: Client, study: Study
) -> None:
    response = client.post(_url(study), {"decision": "agree"})

    assert response.status_code == 400
    assert "Please start from your study link" in response.content.decode()
    assert not Participant.objects.exists()


def test_a_study_that_filled_up_meanwhile_says_so_at_consent(client: Client) -> None:
    study = study_make(max_participants=1)
    client.get(entry_url(study, "p1"))
    other = Client()
    other.get(entry_url(study, "p2"))
    other.post(_url(study), {"decision": "agree"})

    response = client.post(_url(study), {"decision": "agree"})

    assert "The study is full" in response.content.decode()
    assert Participant.objects.count() == 1


def test_a_study_closed_meanwhile_says_so_at_consent(entered: Client, study: Study) -> None:
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)

    response = entered.get(_url(study))

    assert "The study has closed" in response.content.decode()


def test_the_instructions_show_the_five_statements_with_their_definitions(
    entered: Client, study: Study
) -> None:
    entered.post(_url(study), {"decision": "agree"})

    response = entered.get(_url(study, "instructions"))

    page = BeautifulSoup(response.content, "html.parser")
    terms = page.select("dl.statements dt")
    definitions = page.select("dl.statements dd")
    assert [t.select_one(".statement-label").get_text(strip=True) for t in terms] == [
        d.label for d in PLAIN_5.dimensions
    ]
    assert [t.select_one(".statement-text").get_text(strip=True) for t in terms] == [
        f"“{d.statement}”" for d in PLAIN_5.dimensions
    ]
    assert [d.get_text(strip=True) for d in definitions] == [
        d.definition for d in PLAIN_5.dimensions
    ]
    body = response.content.decode()
    assert "You will rate 12 explanations" in body
    assert f'href="{_url(study, "step")}"' in body
    text = page.get_text(" ", strip=True)
    assert (
        "For each explanation you will rate these 5 statements on a scale of 5 points, from "
        "“Strongly disagree” (1) to “Strongly agree” (5)."
    ) in text


def test_the_default_texts_name_no_number_of_statements_nor_scale_labels(
    entered: Client, study: Study
) -> None:
    # The texts are the study's and stay as they are whatever its questionnaire; the
    # instructions page draws the statements and the scale from the questionnaire itself.
    consent = BeautifulSoup(entered.get(_url(study)).content, "html.parser")
    entered.post(_url(study), {"decision": "agree"})
    instructions = BeautifulSoup(entered.get(_url(study, "instructions")).content, "html.parser")

    for text in (
        consent.select_one(".prose").get_text(" "),
        instructions.select_one(".prose").get_text(" "),
    ):
        assert "five" not in text.lower()
        assert "strongly" not in text.lower()


def _instructions_button(client: Client, study: Study) -> str:
    page = BeautifulSoup(client.get(_url(study, "instructions")).content, "html.parser")
    button = page.select_one(f'main a.button[href="{_url(study, "step")}"]')
    assert button is not None
    return button.get_text(strip=True)


def test_the_instructions_button_starts_the_first_item_before_any_is_shown(
    entered: Client, study: Study
) -> None:
    entered.post(_url(study), {"decision": "agree"})

    assert _instructions_button(entered, study) == "Start the first item"


def test_the_instructions_button_says_continue_once_items_have_started(
    entered: Client, study: Study
) -> None:
    entered.post(_url(study), {"decision": "agree"})
    entered.get(_url(study, "step"))  # the first step is shown: an item or an attention check

    assert _instructions_button(entered, study) == "Continue"


def test_the_instructions_need_a_consented_participant(entered: Client, study: Study) -> None:
    response = entered.get(_url(study, "instructions"))

    assert response.status_code == 400


# ---- made-up Prolific IDs: the study's Prolific id and a limit per address -------------


def _agree(client: Client, study: Study, pid: str, **link: str) -> Any:
    client.get(entry_url(study, pid, **link))
    return client.post(_url(study), {"decision": "agree"})


def test_a_link_with_another_study_id_is_refused_before_consent(client: Client) -> None:
    study = study_make(prolific_study_id="64f0c0ffee")

    response = client.get(entry_url(study, "made-up", study_id="someone-else"))

    assert response.status_code == 403
    assert "This link is for another study" in response.content.decode()
    assert PARTICIPANT_COOKIE not in client.cookies
    assert _agree(Client(), study, "p1", study_id="64f0c0ffee").status_code == 302
    assert list(Participant.objects.values_list("prolific_pid", flat=True)) == ["p1"]


def test_a_binding_made_before_the_study_id_was_set_cannot_start(client: Client) -> None:
    study = study_make()
    client.get(entry_url(study, "p1", study_id="old-link"))
    Study.objects.filter(pk=study.pk).update(prolific_study_id="64f0c0ffee")

    response = client.post(_url(study), {"decision": "agree"})

    assert response.status_code == 403
    assert not Participant.objects.exists()


@pytest.fixture
def three_an_hour(settings: Any) -> Any:
    settings.PARTICIPANT_START_RATE = "3/hour"
    cache.clear()
    yield settings
    cache.clear()


def test_new_participants_from_one_address_are_limited(three_an_hour: Any, study: Study) -> None:
    answers = [_agree(Client(REMOTE_ADDR="198.51.100.7"), study, f"p{n}") for n in range(4)]

    assert [r.status_code for r in answers] == [302, 302, 302, 429]
    assert "try the link again later" in answers[-1].content.decode()
    assert int(answers[-1]["Retry-After"]) > 0
    assert Participant.objects.count() == 3
    # Another address is not held back, and a Prolific ID that already started never is.
    assert _agree(Client(REMOTE_ADDR="203.0.113.9"), study, "p9").status_code == 302
    assert _agree(Client(REMOTE_ADDR="198.51.100.7"), study, "p0").status_code == 302
    # Declining creates no items, so it is not limited either.
    declined = Client(REMOTE_ADDR="198.51.100.7")
    declined.get(entry_url(study, "p5"))
    assert declined.post(_url(study), {"decision": "decline"}).status_code == 302


def test_behind_a_trusted_proxy_a_forged_forwarded_for_does_not_reset_the_limit(
    three_an_hour: Any, study: Study
) -> None:
    three_an_hour.TRUSTED_PROXY_COUNT = 1
    statuses = []
    for n in range(4):
        # The proxy appends the address it saw; what the client sent before it is noise.
        forwarded = f"10.{n}.{n}.{n}, 198.51.100.7"
        browser = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
        statuses.append(_agree(browser, study, f"p{n}").status_code)

    assert statuses == [302, 302, 302, 429]
    other = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.8")
    assert _agree(other, study, "p9").status_code == 302


def test_the_address_is_kept_only_as_a_keyed_hash(three_an_hour: Any, study: Study) -> None:
    _agree(Client(REMOTE_ADDR="198.51.100.77"), study, "p1")

    with connection.cursor() as cursor:  # the database cache's table (settings.CACHES)
        cursor.execute("SELECT cache_key FROM django_cache")
        keys = [row[0] for row in cursor.fetchall()]
    assert any("participant-start" in key for key in keys)
    assert not any("198.51.100.77" in key for key in keys)
    stored = " ".join(str(v) for row in Participant.objects.values() for v in row.values())
    assert "198.51.100.77" not in stored


def test_a_stopped_participant_is_told_their_participation_ended(
    entered: Client, study: Study
) -> None:
    entered.post(_url(study), {"decision": "agree"})
    participant = Participant.objects.get()
    participant_exclusion_set(participant=participant, excluded=True, reason="bot")

    page = entered.get(_url(study, "step"), follow=True)

    assert "Your participation has ended" in page.content.decode()
