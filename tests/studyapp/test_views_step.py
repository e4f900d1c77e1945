"""The item pages: rendering, validation, idempotent submits, htmx partial swaps, checks."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from django.urls import reverse

from studyapp.models import Assignment, Participant, Rating, Study
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import (
    entry_url,
    page_instructed_value,
    page_step_token,
    rating_post,
    step_url,
    study_make,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def study() -> Study:
    return study_make()


@pytest.fixture
def browser(client: Client, study: Study) -> Client:
    client.get(entry_url(study, "p1"))
    client.post(reverse("studyapp:consent", kwargs={"slug": study.slug}), {"decision": "agree"})
    return client


def _participant() -> Participant:
    return Participant.objects.get(prolific_pid="p1")


def _answer_current(browser: Client, study: Study, value: int = 4, **extra: Any) -> Any:
    page = browser.get(step_url(study)).content.decode()
    token = page_step_token(page)
    if token.startswith("check-"):
        value = page_instructed_value(page)
    return browser.post(step_url(study), rating_post(token, value), **extra)


def _advance_to(browser: Client, study: Study, prefix: str) -> str:
    for _ in range(20):
        page = browser.get(step_url(study)).content.decode()
        if page_step_token(page).startswith(prefix):
            return page
        _answer_current(browser, study)
    raise AssertionError(f"no {prefix} step")


def test_the_item_page_shows_the_question_the_answer_and_the_explanation(
    browser: Client, study: Study
) -> None:
    response = browser.get(step_url(study))

    assignment = _participant().assignments.select_related("explanation__question").get(position=1)
    explanation = assignment.explanation
    soup = BeautifulSoup(response.content, "html.parser")
    text = soup.get_text(" ")
    assert "Item 1 of 12" in text
    assert explanation.question.text in text
    for choice in explanation.question.choices:
        assert choice in text
    assert explanation.predicted_answer in soup.select_one(".predicted").get_text()
    assert explanation.text in soup.select_one(".explanation").get_text()
    assert explanation.condition.name not in text
    form = soup.find("form", attrs={"method": "post"})
    assert form["action"] == step_url(study)
    assert form["hx-post"] == step_url(study)


def test_each_dimension_is_a_labelled_fieldset_of_five_required_radios(
    browser: Client, study: Study
) -> None:
    soup = BeautifulSoup(browser.get(step_url(study)).content, "html.parser")

    fieldsets = soup.select("fieldset.likert")
    assert len(fieldsets) == 5
    for fieldset, key in zip(fieldsets, PLAIN_5.keys, strict=True):
        assert fieldset.legend.get_text(strip=True)
        radios = fieldset.select("input[type=radio]")
        assert [r["value"] for r in radios] == ["1", "2", "3", "4", "5"]
        assert all(r["name"] == key and r.has_attr("required") for r in radios)
        labels = [r.find_parent("label").get_text(" ", strip=True) for r in radios]
        assert labels[0] == "1 Strongly disagree"
        assert labels[-1] == "5 Strongly agree"


def test_showing_an_item_starts_its_clock_once(browser: Client, study: Study) -> None:
    browser.get(step_url(study))
    first = Assignment.objects.get(participant=_participant(), position=1).shown_at

    browser.get(step_url(study))

    assert first is not None
    assert Assignment.objects.get(participant=_participant(), position=1).shown_at == first


def test_a_valid_rating_is_saved_and_leads_to_the_next_item(browser: Client, study: Study) -> None:
    response = _answer_current(browser, study, value=2)

    assert response.status_code == 302
    assert response["Location"] == step_url(study)
    assignment = Assignment.objects.get(participant=_participant(), position=1)
    assert sorted(assignment.ratings.values_list("value", flat=True)) == [2] * 5
    assert assignment.answered_at is not None
    following = browser.get(step_url(study)).content.decode()
    # The next page is item 2, or the attention check placed before it (which shows the
    # items done rather than repeating the next item's number).
    assert "Item 2 of 12" in following or "Attention check: 1 of 12 items done" in following


# Messages name the statement the participant sees, not the dimension's internal name.
_STATEMENTS = {d.key: d.statement for d in PLAIN_5.dimensions}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"plausibility": None}, f"Please choose an answer for “{_STATEMENTS['plausibility']}”"),
        (
            {"contrastiveness": "6"},
            f"Please choose one of the 5 answers for “{_STATEMENTS['contrastiveness']}”",
        ),
        (
            {"completeness": "0"},
            f"Please choose one of the 5 answers for “{_STATEMENTS['completeness']}”",
        ),
        (
            {"satisfaction": "very"},
            f"Please choose one of the 5 answers for “{_STATEMENTS['satisfaction']}”",
        ),
    ],
)
def test_a_missing_or_out_of_range_value_shows_the_same_item_with_a_message(
    browser: Client, study: Study, change: dict[str, str | None], message: str
) -> None:
    browser.get(step_url(study))
    data = {k: v for k, v in {**rating_post("item-1", 3), **change}.items() if v is not None}

    response = browser.post(step_url(study), data)

    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert "Item 1 of 12" in body
    assert 'value="3" required checked' in body
    assert not Rating.objects.exists()


def test_a_submit_without_any_values_saves_nothing(browser: Client, study: Study) -> None:
    response = browser.post(step_url(study), {})

    assert response.status_code == 400
    body = response.content.decode()
    assert "Item 1 of 12" in body
    assert "This page could not be matched to your item" in body
    assert f"Please choose an answer for “{_STATEMENTS['plausibility']}”" in body
    assert not Rating.objects.exists()


def test_a_refused_submit_puts_focus_on_the_error_summary(browser: Client, study: Study) -> None:
    browser.get(step_url(study))

    for extra in ({}, HTMX):
        response = browser.post(step_url(study), {"step": "item-1", "plausibility": "3"}, **extra)

        page = BeautifulSoup(response.content, "html.parser")
        summary = page.select_one("#error-summary")
        assert summary is not None
        # Without JavaScript the browser focuses it on load; after an htmx swap the script does.
        assert summary.has_attr("autofocus")
        assert summary["tabindex"] == "-1"
        assert summary["role"] == "alert"
        links = [a["href"] for a in summary.select("a")]
        assert links == [f"#row-{key}" for key in PLAIN_5.keys if key != "plausibility"]
        assert len(page.select("[autofocus]")) == 1


def test_a_shown_item_has_no_error_summary_to_focus(browser: Client, study: Study) -> None:
    page = BeautifulSoup(browser.get(step_url(study)).content, "html.parser")

    assert page.select_one("#error-summary") is None
    assert page.select("[autofocus]") == []


def test_a_double_submit_is_written_once(browser: Client, study: Study) -> None:
    browser.get(step_url(study))
    browser.post(step_url(study), rating_post("item-1", 4))

    again = browser.post(step_url(study), rating_post("item-1", 1), follow=True)

    assert Rating.objects.count() == 5
    assert set(Rating.objects.values_list("value", flat=True)) == {4}
    assert "That page had already been answered" in again.content.decode()


def test_submitting_an_old_page_after_going_back_changes_nothing(
    browser: Client, study: Study
) -> None:
    for _ in range(3):
        _answer_current(browser, study, value=5)
    stored = sorted(Rating.objects.values_list("assignment_id", "dimension", "value"))

    response = browser.post(step_url(study), rating_post("item-2", 1), follow=True)

    assert sorted(Rating.objects.values_list("assignment_id", "dimension", "value")) == stored
    assert response.status_code == 200


def test_a_crafted_submit_for_a_later_item_is_not_saved(browser: Client, study: Study) -> None:
    browser.post(step_url(study), rating_post("item-7", 3))

    assert not Rating.objects.exists()


def test_htmx_swaps_in_the_next_item_without_a_full_page(browser: Client, study: Study) -> None:
    browser.get(step_url(study))

    response = browser.post(step_url(study), rating_post("item-1", 4), **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert body.lstrip().startswith('<section id="step"')
    assert "Item 2 of 12" in body or "Please read carefully" in body
    assert Rating.objects.count() == 5


def test_htmx_shows_validation_messages_in_the_partial(browser: Client, study: Study) -> None:
    response = browser.post(step_url(study), {"step": "item-1", "plausibility": "3"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert f"Please choose an answer for “{_STATEMENTS['understandability']}”" in body
    assert not Rating.objects.exists()


def test_an_attention_check_asks_for_one_value_and_is_not_an_item(
    browser: Client, study: Study
) -> None:
    page = _advance_to(browser, study, "check-")
    instructed = page_instructed_value(page)
    ratings_before = Rating.objects.count()

    browser.post(step_url(study), rating_post(page_step_token(page), instructed))

    check = _participant().attention_checks.exclude(answered_at=None).get()
    assert check.passed is True
    assert check.instructed_value == instructed
    assert Rating.objects.count() == ratings_before
    assert "This page checks that you are reading carefully" in page


def test_an_attention_check_shows_no_item_number_and_no_statement_about_an_explanation(
    browser: Client, study: Study
) -> None:
    page = BeautifulSoup(_advance_to(browser, study, "check-"), "html.parser")
    done = _participant().assignments.exclude(answered_at=None).count()

    progress = page.select_one("#progress-label").get_text(" ", strip=True)
    assert progress == f"Attention check: {done} of 12 items done"
    assert page.select_one("progress")["value"] == str(done)
    assert page.select_one("title").get_text().startswith("Attention check ·")
    legends = [f.legend.get_text(strip=True) for f in page.select("fieldset.likert")]
    assert legends == [d.label for d in PLAIN_5.dimensions]
    assert "explanation" not in page.select_one("form").get_text(" ").lower()


def test_a_refused_check_names_its_rows_by_the_labels_shown(browser: Client, study: Study) -> None:
    page = _advance_to(browser, study, "check-")
    token = page_step_token(page)

    response = browser.post(step_url(study), {"step": token, "plausibility": "3"})

    assert response.status_code == 400
    soup = BeautifulSoup(response.content, "html.parser")
    assert [a.get_text() for a in soup.select("#error-summary a")] == [
        f"Please choose an answer for “{d.label}”" for d in PLAIN_5.dimensions[1:]
    ]
    assert [f.legend.get_text(strip=True) for f in soup.select("fieldset.likert")] == [
        d.label for d in PLAIN_5.dimensions
    ]
    assert soup.select_one("#progress-label").get_text(strip=True).startswith("Attention check")


def test_an_item_after_a_check_still_shows_its_statements(browser: Client, study: Study) -> None:
    check = _advance_to(browser, study, "check-")
    browser.post(step_url(study), rating_post(page_step_token(check), page_instructed_value(check)))

    page = BeautifulSoup(browser.get(step_url(study)).content, "html.parser")

    assert page_step_token(str(page)).startswith("item-")
    assert [f.legend.get_text(strip=True) for f in page.select("fieldset.likert")] == [
        d.statement for d in PLAIN_5.dimensions
    ]


def test_finishing_the_last_item_redirects_to_the_completion_page(
    browser: Client, study: Study
) -> None:
    response = None
    for _ in range(14):
        response = _answer_current(browser, study)
    assert response is not None

    assert response["Location"] == reverse("studyapp:done", kwargs={"slug": study.slug})
    assert _participant().status == Participant.Status.COMPLETED
    assert browser.get(step_url(study))["Location"] == reverse(
        "studyapp:done", kwargs={"slug": study.slug}
    )


def test_finishing_with_htmx_redirects_the_whole_page(browser: Client, study: Study) -> None:
    response = None
    for _ in range(14):
        response = _answer_current(browser, study, **HTMX)
    assert response is not None

    assert response["HX-Redirect"] == reverse("studyapp:done", kwargs={"slug": study.slug})


def test_the_completion_page_shows_the_code_and_leaves_the_return_to_the_participant(
    browser: Client, study: Study
) -> None:
    for _ in range(14):
        _answer_current(browser, study)

    response = browser.get(reverse("studyapp:done", kwargs={"slug": study.slug}))

    body = response.content.decode()
    url = f"https://app.prolific.com/submissions/complete?cc={study.completion_code}"
    assert study.completion_code in body
    link = BeautifulSoup(body, "html.parser").find("a", id="completion-link")
    assert link is not None
    assert link["href"] == url
    assert "Return to Prolific" in link.get_text()
    # No timed redirect (WCAG 2.2.1): the page waits for the participant's press.
    assert "http-equiv" not in body.lower()
    assert "Refresh" not in response
    assert "setTimeout" not in body


def test_the_completion_page_is_not_reachable_before_finishing(
    browser: Client, study: Study
) -> None:
    response = browser.get(reverse("studyapp:done", kwargs={"slug": study.slug}))

    assert response.status_code == 302
    assert study.completion_code not in response.content.decode()


def test_item_pages_need_a_bound_participant(client: Client, study: Study) -> None:
    assert client.get(step_url(study)).status_code == 400
    assert client.post(step_url(study), rating_post("item-1", 3)).status_code == 400
    assert client.get(reverse("studyapp:done", kwargs={"slug": study.slug})).status_code == 400
    assert client.get(reverse("studyapp:ended", kwargs={"slug": study.slug})).status_code == 400


def test_an_htmx_submit_without_a_session_reloads_the_page_to_explain(
    client: Client, study: Study
) -> None:
    response = client.post(step_url(study), rating_post("item-1", 3), **HTMX)

    assert response["HX-Refresh"] == "true"
    assert not Rating.objects.exists()


def test_item_pages_are_never_cached_so_back_shows_the_current_item(
    browser: Client, study: Study
) -> None:
    _answer_current(browser, study)

    response = browser.get(step_url(study))

    assert "no-store" in response["Cache-Control"]
    assert page_step_token(response.content.decode()) != "item-1"
