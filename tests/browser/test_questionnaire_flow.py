"""A researcher's own questionnaire in real headless Chromium: a 7-point, 3-dimension study
from the Prolific link to completion with htmx, by mouse and keyboard, accessible and
without sideways scrolling on a 390 px phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from studyapp.models import Participant, Rating
from studyformats.questionnaire import questionnaire_parse
from tests.browser.conftest import policy_violations
from tests.browser.pages import (
    PHONE,
    axe_violations,
    instructed_label,
    page_check,
    rows_choose,
    sideways_overflow,
    step_token,
)
from tests.browser.test_pages_accessible import PHONE_LAYOUT
from tests.studyapp.participant_pool import SEVEN_THREE, questionnaire_study_make

# serialized_rollback, as in every browser test: a live-server test's flush followed by
# Django's post-migrate signal would otherwise recreate the content types under new ids,
# and the next test that restores the serialized database would collide with them.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _instructed_value(driver: Any) -> int:
    value = SEVEN_THREE.scale.value_of(instructed_label(driver))
    assert value is not None
    return value


def _type(driver: Any, value: int) -> None:
    """Answer every row from the keyboard: Tab into the row, arrows to the point, Enter."""
    first = driver.find_element(By.CSS_SELECTOR, "fieldset.likert input[type=radio]")
    driver.execute_script("arguments[0].focus();", first)
    for row in range(len(SEVEN_THREE.keys)):
        focused = driver.switch_to.active_element
        if row:
            focused.send_keys(Keys.TAB)
            focused = driver.switch_to.active_element
        focused.send_keys(Keys.SPACE)
        for _ in range(value - 1):
            driver.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    chosen = driver.execute_script(
        "return Array.from(document.querySelectorAll('fieldset.likert input:checked'))"
        ".map(function (r) { return r.name + '=' + r.value; });"
    )
    assert chosen == [f"{key}={value}" for key in SEVEN_THREE.keys]
    driver.switch_to.active_element.send_keys(Keys.ENTER)


def _phone_layout(driver: Any) -> dict[str, Any]:
    driver.set_window_size(*PHONE)
    try:
        return {"overflow": sideways_overflow(driver), **driver.execute_script(PHONE_LAYOUT)}
    finally:
        driver.set_window_size(1280, 900)


def test_a_seven_point_three_dimension_study_in_chromium(
    browser: Any, live_server: Any, settings: Any, screenshot_dir: Path
) -> None:
    settings.PROLIFIC_COMPLETION_URL = f"{live_server.url}/healthz?cc={{code}}"
    study = questionnaire_study_make(SEVEN_THREE, slug="faith")
    entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
    wait = WebDriverWait(browser, 15)
    problems: dict[str, Any] = {}

    browser.get(
        f"{live_server.url}{entry}?PROLIFIC_PID=5f0c0ffee0c0ffee0c0ffee7&STUDY_ID=st&SESSION_ID=se"
    )
    browser.find_element(By.CSS_SELECTOR, "button[value=agree]").click()
    statements = browser.find_elements(By.CSS_SELECTOR, "dl.statements .statement-text")
    assert [s.text for s in statements] == [f"“{d.statement}”" for d in SEVEN_THREE.dimensions]
    browser.find_element(By.LINK_TEXT, "Start the first item").click()
    wait.until(lambda d: step_token(d) == "item-1")
    # Survives only if later steps arrive as htmx swaps rather than full page loads.
    browser.execute_script("window.sameDocument = true;")

    legends = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "fieldset.likert legend")]
    assert legends == [d.statement for d in SEVEN_THREE.dimensions]
    problems["item"] = page_check(browser, "questionnaire-item", screenshot_dir)
    layout = _phone_layout(browser)
    assert layout["overflow"] <= 0, "the 7-point item page scrolls sideways at 390 px"
    assert layout["smallest_target"] >= 44, layout
    assert layout["smallest_text"] >= 14, layout
    assert layout["legends_across_border"] == 0, layout

    # A refusal from the server (the browser's own check switched off): the summary names
    # the statements and takes the focus, after an htmx swap as after a page load.
    browser.execute_script("document.querySelector('#step form').noValidate = true;")
    browser.find_element(By.CSS_SELECTOR, "#step button[type=submit]").click()
    wait.until(lambda d: d.execute_script("return document.activeElement.id;") == "error-summary")
    summary = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#error-summary a")]
    assert summary == [
        f"Please choose an answer for “{d.statement}”" for d in SEVEN_THREE.dimensions
    ]
    assert axe_violations(browser) == []

    progress: list[str] = []
    checks = 0
    for _ in range(20):
        token = step_token(browser)
        if token is None:
            break
        progress.append(browser.find_element(By.ID, "progress-label").text)
        if token.startswith("check-"):
            legends = [
                e.text for e in browser.find_elements(By.CSS_SELECTOR, "fieldset.likert legend")
            ]
            assert legends == [d.label for d in SEVEN_THREE.dimensions]
            if not checks:
                problems["check"] = page_check(browser, "questionnaire-check", screenshot_dir)
            checks += 1
            rows_choose(browser, _instructed_value(browser))
            browser.find_element(By.CSS_SELECTOR, "#step button[type=submit]").click()
        elif token == "item-2":
            _type(browser, 6)
        else:
            # Item k gets 1 + k % 7: every point of the scale over the twelve items.
            rows_choose(browser, 1 + int(token.removeprefix("item-")) % 7)
            browser.find_element(By.CSS_SELECTOR, "#step button[type=submit]").click()
        wait.until(lambda d, old=token: step_token(d) != old)
        if step_token(browser) is not None:
            assert browser.execute_script("return window.sameDocument === true;")
            wait.until(
                lambda d: d.execute_script("return document.activeElement.id;") == "step-heading"
            )

    items = [p for p in progress if p.startswith("Item ")]
    assert items == [f"Item {k} of 12" for k in range(1, 13)]
    checks_seen = [p for p in progress if not p.startswith("Item ")]
    assert len(checks_seen) == checks == 2
    assert all(p.startswith("Attention check: ") for p in checks_seen), checks_seen
    wait.until(lambda d: d.find_elements(By.ID, "completion-link"))
    assert browser.find_element(By.CSS_SELECTOR, ".completion-code").text == study.completion_code
    assert {page: found for page, found in problems.items() if found} == {}
    assert policy_violations(browser) == []

    participant = Participant.objects.get()
    assert participant.status == Participant.Status.COMPLETED
    assert participant.attention_failures == 0
    ratings = Rating.objects.filter(assignment__participant=participant)
    assert ratings.count() == 12 * 3
    assert set(ratings.values_list("dimension", flat=True)) == set(SEVEN_THREE.keys)
    by_position = dict(
        ratings.filter(dimension="clarity").values_list("assignment__position", "value")
    )
    assert by_position[2] == 6  # the item answered from the keyboard
    assert by_position == {k: 6 if k == 2 else 1 + k % 7 for k in range(1, 13)}


ELEVEN = questionnaire_parse(
    """
name = "trust-11"

[scale]
points = 11
labels = ["Not at all", "Hardly", "Barely", "Slightly", "Somewhat", "Moderately", "Fairly",
          "Considerably", "Very much", "Almost entirely", "Unquestionably"]

[[dimensions]]
key = "trust"
label = "Trust"
statement = "I would trust this answer because of its explanation."
""",
    source="trust-11.toml",
)


def test_an_eleven_point_scale_fits_a_phone_and_a_desktop(
    browser: Any, live_server: Any, screenshot_dir: Path
) -> None:
    study = questionnaire_study_make(ELEVEN, slug="trust")
    entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
    browser.get(
        f"{live_server.url}{entry}?PROLIFIC_PID=5f0c0ffee0c0ffee0c0ffee8&STUDY_ID=st&SESSION_ID=se"
    )
    browser.find_element(By.CSS_SELECTOR, "button[value=agree]").click()
    browser.find_element(By.LINK_TEXT, "Start the first item").click()
    WebDriverWait(browser, 15).until(lambda d: step_token(d) == "item-1")

    texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".likert-text")]
    assert texts == list(ELEVEN.scale.named.values())
    layout = _phone_layout(browser)
    assert layout["overflow"] <= 0, "the 11-point item page scrolls sideways at 390 px"
    assert layout["smallest_target"] >= 44, layout
    assert layout["smallest_text"] >= 14, layout
    # Too many for one row even on a desktop: one option a line, in order, none spilling over.
    spilled = browser.execute_script(
        "return Array.from(document.querySelectorAll('.likert-option')).filter(function (o) {"
        " return o.scrollWidth > o.clientWidth; }).length;"
    )
    assert spilled == 0
    tops = browser.execute_script(
        "return Array.from(document.querySelectorAll('.likert-option')).map(function (o) {"
        " return Math.round(o.getBoundingClientRect().top); });"
    )
    assert tops == sorted(set(tops)), tops
    browser.save_screenshot(str(screenshot_dir / "questionnaire-eleven-desktop.png"))
    assert sideways_overflow(browser) <= 0
