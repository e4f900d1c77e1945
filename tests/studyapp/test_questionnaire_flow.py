"""A study under its own questionnaire, page by page over plain HTTP: a 7-point, 3-dimension
study, and the paper's instrument through to the export and the analysis."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from analysis.load import ratings_dimensions, ratings_load
from analysis.report import report_write
from studyapp.models import Participant, Rating, Study
from studyformats.questionnaire import Questionnaire, questionnaire_read
from tests.studyapp.participant_pool import (
    SEVEN_THREE,
    entry_url,
    page_step_token,
    questionnaire_study_make,
    rating_post,
    step_url,
)

pytestmark = pytest.mark.django_db

PAPER_INSTRUMENT = "questionnaires/hendriks2025-cqa.json"
INSTRUCTED = re.compile(r"choose “([^”]+)”")


def _soup(response: Any) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def _instructed_value(page: BeautifulSoup, questionnaire: Questionnaire) -> int:
    """The point a check page asks for, read from its instruction as a participant would."""
    match = INSTRUCTED.search(page.select_one(".instruction").get_text(" "))
    assert match is not None, "the check page names no label to choose"
    value = questionnaire.scale.value_of(match.group(1))
    assert value is not None, f"the check asks for “{match.group(1)}”, which the scale lacks"
    return value


def _consented(client: Client, study: Study, pid: str) -> Any:
    """Open the link and agree; return the instructions page."""
    response = client.get(entry_url(study, pid))
    assert response["Location"] == reverse("studyapp:consent", kwargs={"slug": study.slug})
    consent = client.get(response["Location"])
    assert "I agree, start the study" in consent.content.decode()
    agreed = client.post(response["Location"], {"decision": "agree"})
    assert agreed["Location"] == reverse("studyapp:instructions", kwargs={"slug": study.slug})
    return client.get(agreed["Location"])


def _item_page_checks(page: BeautifulSoup, questionnaire: Questionnaire, number: int) -> None:
    points = questionnaire.scale.points
    assert page.select_one("#progress-label").get_text(strip=True) == f"Item {number} of 12"
    assert page.select_one(".explanation") is not None
    fieldsets = page.select("fieldset.likert")
    assert [f.legend.get_text(strip=True) for f in fieldsets] == [
        d.statement for d in questionnaire.dimensions
    ]
    for fieldset, key in zip(fieldsets, questionnaire.keys, strict=True):
        radios = fieldset.select("input[type=radio]")
        assert [r["value"] for r in radios] == [str(n) for n in range(1, points + 1)]
        assert all(r["name"] == key and r.has_attr("required") for r in radios)
        # What a screen reader announces: the label, or "n of 7" for an unlabelled point;
        # the number shown beside each radio is hidden from it.
        names = [
            " ".join(
                s.get_text(strip=True)
                for s in r.find_parent("label").select("span")
                if not s.has_attr("aria-hidden")
            )
            for r in radios
        ]
        assert names == [
            questionnaire.scale.label_of(n) or f"{n} of {points}" for n in range(1, points + 1)
        ]
        shown = [r.find_parent("label").select_one(".likert-number").get_text() for r in radios]
        assert shown == [str(n) for n in range(1, points + 1)]


def _check_page_checks(page: BeautifulSoup, questionnaire: Questionnaire, done: int) -> None:
    progress = page.select_one("#progress-label").get_text(" ", strip=True)
    assert progress == f"Attention check: {done} of 12 items done"
    assert page.select_one("progress")["value"] == str(done)
    assert "Item" not in page.select_one("title").get_text()
    assert page.select_one(".explanation") is None
    legends = [f.legend.get_text(strip=True) for f in page.select("fieldset.likert")]
    # No statement about an explanation the page does not show: the rows go by label.
    assert legends == [d.label for d in questionnaire.dimensions]
    assert "explanation" not in page.select_one("form").get_text(" ").lower()


def _participant_run(
    client: Client, study: Study, questionnaire: Questionnaire, pid: str, rng: random.Random
) -> tuple[int, int]:
    """Answer every step of ``pid`` from the first item to completion, checking each page;
    return how many items and attention checks there were."""
    items = checks = 0
    for _ in range(30):
        response = client.get(step_url(study))
        if response.status_code == 302:
            assert response["Location"] == reverse("studyapp:done", kwargs={"slug": study.slug})
            return items, checks
        page = _soup(response)
        token = page_step_token(response.content.decode())
        if token.startswith("check-"):
            _check_page_checks(page, questionnaire, done=items)
            checks += 1
            values = dict.fromkeys(questionnaire.keys, _instructed_value(page, questionnaire))
        else:
            items += 1
            _item_page_checks(page, questionnaire, number=items)
            values = {key: rng.randint(1, questionnaire.scale.points) for key in questionnaire.keys}
        posted = client.post(step_url(study), rating_post(token, values))
        assert posted.status_code == 302, _soup(posted).get_text(" ", strip=True)[:500]
    raise AssertionError("the participant never reached the end of the study")


def test_a_seven_point_three_dimension_study_runs_from_the_link_to_completion(
    client: Client,
) -> None:
    study = questionnaire_study_make(SEVEN_THREE)

    instructions = _consented(client, study, "p1")

    page = _soup(instructions)
    terms = page.select("dl.statements dt")
    assert [t.select_one(".statement-label").get_text(strip=True) for t in terms] == [
        "Faithfulness",
        "Helpfulness",
        "Clarity",
    ]
    assert [t.select_one(".statement-text").get_text(strip=True) for t in terms] == [
        f"“{d.statement}”" for d in SEVEN_THREE.dimensions
    ]
    # Clarity has no definition, and gets no empty one.
    assert [d.get_text(strip=True) for d in page.select("dl.statements dd")] == [
        d.definition for d in SEVEN_THREE.dimensions[:2]
    ]
    text = page.get_text(" ", strip=True)
    assert "rate these 3 statements on a scale of 7 points" in text
    assert "from “Not at all” (1) to “Completely” (7)" in text
    assert "five" not in text.lower()
    assert "strongly" not in text.lower()

    assert _participant_run(client, study, SEVEN_THREE, "p1", random.Random(1)) == (12, 2)

    done = client.get(reverse("studyapp:done", kwargs={"slug": study.slug}))
    assert study.completion_code in done.content.decode()
    participant = Participant.objects.get(prolific_pid="p1")
    assert participant.status == Participant.Status.COMPLETED
    assert participant.attention_failures == 0
    assert all(check.passed for check in participant.attention_checks.all())
    ratings = Rating.objects.filter(assignment__participant=participant)
    assert ratings.count() == 12 * 3
    assert set(ratings.values_list("dimension", flat=True)) == set(SEVEN_THREE.keys)
    assert set(ratings.values_list("value", flat=True)) <= set(range(1, 8))
    # Values above 5 were chosen and kept: the 7-point scale is not cut down to 5.
    assert ratings.filter(value__gt=5).exists()


def _on_first_item(client: Client, study: Study) -> None:
    _consented(client, study, "p1")
    assert page_step_token(client.get(step_url(study)).content.decode()) == "item-1"


@pytest.mark.parametrize("value", ["8", "0"])
@pytest.mark.parametrize("htmx", [False, True])
def test_a_value_outside_the_seven_points_is_refused_and_nothing_is_stored(
    client: Client, value: str, htmx: bool
) -> None:
    study = questionnaire_study_make(SEVEN_THREE)
    _on_first_item(client, study)
    data = {**rating_post("item-1", 7, SEVEN_THREE), "helpfulness": value}

    response = client.post(step_url(study), data, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))

    assert response.status_code == (200 if htmx else 400)
    page = _soup(response)
    statement = SEVEN_THREE.dimensions[1].statement
    summary = page.select_one("#error-summary")
    assert [a.get_text() for a in summary.select("a")] == [
        f"Please choose one of the 7 answers for “{statement}”"
    ]
    assert [a["href"] for a in summary.select("a")] == ["#row-helpfulness"]
    assert page.select_one("#row-helpfulness-error").get_text() == summary.a.get_text()
    assert page.select_one("#progress-label").get_text(strip=True) == "Item 1 of 12"
    # The other answers stay chosen, so only the refused row needs another look.
    assert page.select_one("input[name=faithfulness][value='7']").has_attr("checked")
    assert not Rating.objects.exists()
    assert not Participant.objects.get().assignments.exclude(answered_at=None).exists()


def _on_first_check(client: Client, study: Study) -> BeautifulSoup:
    _consented(client, study, "p1")
    for _ in range(20):
        response = client.get(step_url(study))
        token = page_step_token(response.content.decode())
        if token.startswith("check-"):
            return _soup(response)
        client.post(step_url(study), rating_post(token, 5, SEVEN_THREE))
    raise AssertionError("no attention check")


def test_a_check_page_asks_in_the_questionnaires_words_and_names_its_rows_in_messages(
    client: Client,
) -> None:
    study = questionnaire_study_make(SEVEN_THREE)
    page = _on_first_check(client, study)
    token = page.find("input", attrs={"name": "step"})["value"]
    instructed = _instructed_value(page, SEVEN_THREE)

    assert instructed in (1, 4, 7)
    assert "To show that you read this page, choose" in page.select_one(".instruction").get_text()
    assert page.select_one("title").get_text().startswith("Attention check")

    response = client.post(step_url(study), {"step": token, "faithfulness": str(instructed)})

    assert response.status_code == 400
    summary = _soup(response).select_one("#error-summary")
    assert [a.get_text() for a in summary.select("a")] == [
        "Please choose an answer for “Helpfulness”",
        "Please choose an answer for “Clarity”",
    ]
    assert "Please answer every row" in summary.get_text()
    assert not Participant.objects.get().attention_checks.exclude(answered_at=None).exists()


def test_an_unlabelled_point_shows_its_number_and_is_named_for_screen_readers(
    client: Client,
) -> None:
    study = questionnaire_study_make(SEVEN_THREE)
    _on_first_item(client, study)

    page = _soup(client.get(step_url(study)))

    option = page.select_one("input[name=clarity][value='2']").find_parent("label")
    assert option.select_one(".likert-number").get_text() == "2"
    assert option.select_one(".likert-number")["aria-hidden"] == "true"
    assert option.select_one(".visually-hidden").get_text() == "2 of 7"
    assert option.select_one(".likert-text") is None
    labelled = page.select_one("input[name=clarity][value='4']").find_parent("label")
    assert labelled.select_one(".likert-text").get_text() == "Somewhat"
    assert "likert-points-7" in page.select_one(".likert-options")["class"]


def test_the_papers_instrument_runs_end_to_end_through_the_export_and_the_analysis(
    shared_data: Path, tmp_path: Path
) -> None:
    path = shared_data / PAPER_INSTRUMENT
    if not path.is_file():
        pytest.skip(f"the paper's instrument {path} is absent")
    paper = questionnaire_read(path)
    study = questionnaire_study_make(paper, slug="paper")
    rng = random.Random(2025)

    for number in range(8):
        client = Client()
        instructions = _soup(_consented(client, study, f"paper{number}"))
        terms = instructions.select("dl.statements dt .statement-text")
        assert [t.get_text(strip=True) for t in terms] == [
            f"“{d.statement}”" for d in paper.dimensions
        ]
        # The paper's file cites a source for each statement but defines none: no empty lines.
        assert instructions.select("dl.statements dd") == []
        assert _participant_run(client, study, paper, f"paper{number}", rng) == (12, 2)

    assert Participant.objects.filter(status=Participant.Status.COMPLETED).count() == 8
    assert set(Rating.objects.values_list("dimension", flat=True)) == set(paper.keys)
    export = tmp_path / "paper.csv"
    call_command("export_ratings", study.slug, "--out", str(export))
    header = export.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert [c for c in header if c in paper.keys] == list(paper.keys)
    ratings = ratings_load(export)
    assert ratings_dimensions(ratings) == paper.keys
    assert len(ratings) == 8 * 12

    summary = report_write(ratings, tmp_path / "report")

    assert (tmp_path / "report" / "report.html").is_file()
    assert summary["input"] == {"n_participants": 8, "n_ratings": 8 * 12, "scale_points": 5}
    assert summary["dimensions"] == [*paper.keys, "quality"]
    assert set(summary["anova"]) == {*paper.keys, "quality"}
