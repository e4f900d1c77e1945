"""A participant in real headless Chromium: Prolific link → consent → 12 items and checks → Prolific."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from studyapp.models import Participant, Rating
from tests.browser.conftest import policy_violations
from tests.browser.pages import instructed_label, rows_choose, step_token
from tests.studyapp.participant_pool import study_make

# serialized_rollback, as in every browser test: a live-server test's flush followed by
# Django's post-migrate signal would otherwise recreate the content types under new ids,
# and the next test that restores the serialized database would collide with them.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_participant_rates_all_items_by_clicking_and_returns_to_prolific(
    browser: Any, live_server: Any, settings: Any, screenshot_dir: Path
) -> None:
    # Prolific is out of reach from the test machine; the server's health page stands in
    # for it, so the test can see the completion redirect arrive with the code.
    settings.PROLIFIC_COMPLETION_URL = f"{live_server.url}/healthz?cc={{code}}"
    study = study_make(slug="browser")
    labels = {
        "Strongly disagree": 1,
        "Disagree": 2,
        "Neither agree nor disagree": 3,
        "Agree": 4,
        "Strongly agree": 5,
    }
    entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
    wait = WebDriverWait(browser, 15)

    browser.get(
        f"{live_server.url}{entry}?PROLIFIC_PID=5f0c0ffee0c0ffee0c0ffee0&STUDY_ID=st&SESSION_ID=se"
    )
    browser.find_element(By.CSS_SELECTOR, "button[value=agree]").click()
    browser.find_element(By.LINK_TEXT, "Start the first item").click()
    wait.until(lambda d: step_token(d) == "item-1")
    # Survives only if later items arrive as htmx swaps rather than full page loads.
    browser.execute_script("window.sameDocument = true;")

    browser.set_window_size(360, 800)
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
    )
    assert overflow <= 0, "the item page scrolls sideways at 360px"
    browser.save_screenshot(str(screenshot_dir / "participant_item_360px.png"))
    browser.execute_script("document.querySelector('fieldset.likert').scrollIntoView();")
    browser.save_screenshot(str(screenshot_dir / "participant_likert_360px.png"))
    browser.set_window_size(412, 915)

    seen_items: list[str] = []
    checks = 0
    for _ in range(20):
        token = step_token(browser)
        if token is None:
            break
        if token.startswith("check-"):
            checks += 1
            # A check is not an item: its progress counts the items done, not a next number.
            progress = browser.find_element(By.ID, "progress-label").text
            assert progress == f"Attention check: {len(seen_items)} of 12 items done"
            rows_choose(browser, labels[instructed_label(browser)])
        else:
            seen_items.append(browser.find_element(By.ID, "progress-label").text)
            rows_choose(browser, 1 + len(seen_items) % 5)
        browser.find_element(By.CSS_SELECTOR, "#step button[type=submit]").click()
        wait.until(lambda d, old=token: step_token(d) != old)
        if step_token(browser) is not None:
            assert browser.execute_script("return window.sameDocument === true;")
            # Keyboard and screen-reader users land on the new item's heading.
            wait.until(
                lambda d: d.execute_script("return document.activeElement.id;") == "step-heading"
            )

    assert seen_items == [f"Item {k} of 12" for k in range(1, 13)]
    assert checks == 2
    # The completion page waits for the participant: no timed redirect (WCAG 2.2.1).
    wait.until(lambda d: d.find_elements(By.ID, "completion-link"))
    code = browser.find_element(By.CSS_SELECTOR, ".completion-code").text
    assert code == study.completion_code
    browser.execute_script("window.stillHere = true;")
    time.sleep(6)  # longer than the 5 s the page used to wait before leaving on its own
    assert browser.execute_script("return window.stillHere === true;")
    # Every page and swap ran under the strict policy without a single blocked script or style.
    assert policy_violations(browser) == []
    browser.find_element(By.ID, "completion-link").click()
    wait.until(lambda d: f"cc={study.completion_code}" in d.current_url)
    participant = Participant.objects.get()
    assert participant.status == Participant.Status.COMPLETED
    assert Rating.objects.filter(assignment__participant=participant).count() == 60
    assert participant.attention_failures == 0
