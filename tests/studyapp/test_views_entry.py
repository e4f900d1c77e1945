"""The entry page /s/<slug>/?PROLIFIC_PID=…: bad links, closed studies, returning participants."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studyapp.models import Assignment, AttentionCheckResponse, Participant, Rating, Study
from studyapp.participation.binding import PARTICIPANT_COOKIE
from studyapp.participation.services import participant_decline, participant_start
from tests.studyapp.participant_pool import entry_url, participant_run, rating_post, study_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Study:
    return study_make()


def _bare(study: Study) -> str:
    return reverse("studyapp:entry", kwargs={"slug": study.slug})


def _consent(client: Client, study: Study) -> None:
    client.post(reverse("studyapp:consent", kwargs={"slug": study.slug}), {"decision": "agree"})


def test_a_valid_link_leads_to_consent_and_stores_nothing_yet(client: Client, study: Study) -> None:
    response = client.get(entry_url(study, "5f9a1c2b3d4e5f6a7b8c9d0e"))

    assert response.status_code == 302
    assert response["Location"] == reverse("studyapp:consent", kwargs={"slug": study.slug})
    assert not Participant.objects.exists()


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("", "PROLIFIC_PID is missing"),
        ("?STUDY_ID=abc&SESSION_ID=def", "PROLIFIC_PID is missing"),
        ("?PROLIFIC_PID=", "PROLIFIC_PID is missing"),
        ("?PROLIFIC_PID={{%PROLIFIC_PID%}}", "PROLIFIC_PID must be"),
        ("?PROLIFIC_PID=has%20space", "PROLIFIC_PID must be"),
        ("?PROLIFIC_PID=" + "a" * 65, "PROLIFIC_PID must be"),
        ("?PROLIFIC_PID=<script>", "PROLIFIC_PID must be"),
        ("?PROLIFIC_PID=abc&STUDY_ID={{%STUDY_ID%}}", "STUDY_ID must be"),
        ("?PROLIFIC_PID=abc&SESSION_ID=a/b", "SESSION_ID must be"),
        # "$" matches before a final newline; the whole value must match.
        ("?PROLIFIC_PID=abc%0A", "PROLIFIC_PID must be"),
        ("?PROLIFIC_PID=abc&STUDY_ID=def%0A", "STUDY_ID must be"),
        ("?PROLIFIC_PID=abc&SESSION_ID=def%0A", "SESSION_ID must be"),
    ],
)
def test_an_incomplete_or_malformed_link_gets_a_clear_400_page(
    client: Client, study: Study, query: str, problem: str
) -> None:
    response = client.get(_bare(study) + query)

    assert response.status_code == 400
    body = response.content.decode()
    assert "This link is incomplete" in body
    assert problem in body
    assert "open the study from" in body
    assert not Participant.objects.exists()
    assert PARTICIPANT_COOKIE not in client.cookies


def test_a_prolific_id_with_a_trailing_newline_is_not_a_second_participant(
    study: Study,
) -> None:
    participant_run(Client(), study, "abc")

    response = Client().get(_bare(study) + "?PROLIFIC_PID=abc%0A&STUDY_ID=s&SESSION_ID=t")

    assert response.status_code == 400
    assert list(Participant.objects.values_list("prolific_pid", flat=True)) == ["abc"]


def test_an_unknown_study_gets_a_404_page(client: Client) -> None:
    response = client.get("/s/no-such-study/?PROLIFIC_PID=abc")

    assert response.status_code == 404
    assert "There is no study at this address" in response.content.decode()


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (Study.Status.DRAFT, "The study has not opened yet"),
        (Study.Status.PAUSED, "The study is paused"),
        (Study.Status.CLOSED, "The study has closed"),
    ],
)
def test_a_study_that_is_not_live_gets_its_own_page(client: Client, status: str, text: str) -> None:
    study = study_make(status=status)

    response = client.get(entry_url(study, "abc"))

    assert response.status_code == 200
    assert text in response.content.decode()
    assert not Participant.objects.exists()


def test_a_full_study_says_so(client: Client) -> None:
    study = study_make(max_participants=1)
    participant_start(study=study, prolific_pid="first")

    response = client.get(entry_url(study, "second"))

    assert "The study is full" in response.content.decode()
    assert "return the study on Prolific" in response.content.decode()


def test_a_returning_participant_continues_where_they_left_off(study: Study) -> None:
    first_browser = Client()
    first_browser.get(entry_url(study, "p1"))
    _consent(first_browser, study)
    first_page = first_browser.get(reverse("studyapp:step", kwargs={"slug": study.slug}))
    first_browser.post(
        reverse("studyapp:step", kwargs={"slug": study.slug}),
        rating_post("item-1", 4),
    )
    participant = Participant.objects.get()
    items = list(participant.assignments.values_list("position", "explanation_id"))

    other_browser = Client()
    response = other_browser.get(entry_url(study, "p1"), follow=True)

    assert response.redirect_chain[-1][0] == reverse("studyapp:step", kwargs={"slug": study.slug})
    assert Participant.objects.count() == 1
    assert list(participant.assignments.values_list("position", "explanation_id")) == items
    page = response.content.decode()
    assert "Item 2 of 12" in page or "Please read carefully" in page
    assert first_page.status_code == 200


def test_a_returning_participant_who_has_not_started_sees_the_instructions(
    client: Client, study: Study
) -> None:
    participant_start(study=study, prolific_pid="p1")

    response = client.get(entry_url(study, "p1"))

    assert response["Location"] == reverse("studyapp:instructions", kwargs={"slug": study.slug})


def test_a_participant_who_finished_sees_the_completion_page_again(study: Study) -> None:
    participant_run(Client(), study, "p1")

    response = Client().get(entry_url(study, "p1"), follow=True)

    assert study.completion_code in response.content.decode()
    assert Participant.objects.get().assignments.count() == 12


def test_a_participant_who_declined_is_reminded_to_return_the_study(
    client: Client, study: Study
) -> None:
    participant_decline(study=study, prolific_pid="p1")

    response = client.get(entry_url(study, "p1"), follow=True)

    assert "You chose not to take part" in response.content.decode()
    assert not Participant.objects.get().assignments.exists()


def test_a_participant_past_the_time_limit_is_told_the_time_ran_out(
    client: Client, study: Study
) -> None:
    participant = participant_start(study=study, prolific_pid="p1")
    Participant.objects.filter(pk=participant.pk).update(
        started_at=timezone.now() - timedelta(hours=2)
    )

    response = client.get(entry_url(study, "p1"), follow=True)

    assert "The time for this study has run out" in response.content.decode()
    participant.refresh_from_db()
    assert participant.status == Participant.Status.TIMED_OUT


def test_a_started_participant_continues_when_the_study_is_paused(
    client: Client, study: Study
) -> None:
    participant_start(study=study, prolific_pid="p1")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.PAUSED)

    response = client.get(entry_url(study, "p1"))

    assert response["Location"] == reverse("studyapp:instructions", kwargs={"slug": study.slug})


def test_a_started_participant_may_finish_after_the_study_closed(
    client: Client, study: Study
) -> None:
    participant_start(study=study, prolific_pid="p1")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)

    response = client.get(entry_url(study, "p1"), follow=True)

    assert "How this works" in response.content.decode()
    assert "The study has closed" in client.get(entry_url(study, "p2")).content.decode()


def test_the_bare_study_address_continues_for_a_bound_browser(client: Client, study: Study) -> None:
    client.get(entry_url(study, "p1"))
    _consent(client, study)

    response = client.get(_bare(study))

    assert response["Location"] == reverse("studyapp:instructions", kwargs={"slug": study.slug})


def test_another_prolific_id_in_the_same_browser_cannot_reach_the_first_ones_items(
    client: Client, study: Study
) -> None:
    client.get(entry_url(study, "p1"))
    _consent(client, study)
    first = Participant.objects.get(prolific_pid="p1")

    client.get(entry_url(study, "p2"))
    response = client.get(reverse("studyapp:step", kwargs={"slug": study.slug}))

    assert response.status_code == 400
    assert "Please start from your study link" in response.content.decode()
    posted = client.post(
        reverse("studyapp:step", kwargs={"slug": study.slug}),
        rating_post("item-1", 1),
    )
    assert posted.status_code == 400
    assert not first.assignments.filter(answered_at__isnull=False).exists()


def test_nothing_identifying_beyond_the_prolific_ids_is_stored(study: Study) -> None:
    browser = Client(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Mozilla/5.0 (TestPhone) Agent/99")

    participant_run(browser, study, "p1")

    stored = []
    for model in (Participant, Assignment, Rating, AttentionCheckResponse):
        for row in model.objects.values():
            stored.extend(str(value) for value in row.values())
    text = " ".join(stored)
    assert "203.0.113.9" not in text
    assert "Mozilla" not in text
    field_names = {f.name for f in Participant._meta.get_fields()}
    assert not field_names & {"ip", "ip_address", "user_agent", "email", "name"}


def test_a_study_whose_explanations_are_all_rated_is_full_at_the_link(client: Client) -> None:
    study = study_make(questions=12, max_ratings_per_explanation=1)
    for n in range(4):
        participant_start(study=study, prolific_pid=f"p{n}")

    response = client.get(entry_url(study, "late-comer"))

    assert "The study is full" in response.content.decode()
    assert PARTICIPANT_COOKIE not in client.cookies
