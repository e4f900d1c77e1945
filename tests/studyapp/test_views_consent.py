"""Consent and instructions pages."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from studyapp.models import Participant, Study
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


def test_the_instructions_define_the_five_dimensions(entered: Client, study: Study) -> None:
    entered.post(_url(study), {"decision": "agree"})

    response = entered.get(_url(study, "instructions"))

    body = response.content.decode()
    for dimension in (
        "Plausibility",
        "Understandability",
        "Completeness",
        "Satisfaction",
        "Contrastiveness",
    ):
        assert f"<dt>{dimension}</dt>" in body
    assert "You will rate 12 explanations" in body
    assert f'href="{_url(study, "step")}"' in body


def test_the_instructions_need_a_consented_participant(entered: Client, study: Study) -> None:
    response = entered.get(_url(study, "instructions"))

    assert response.status_code == 400
