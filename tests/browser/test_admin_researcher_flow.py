"""A researcher in real headless Chromium: upload explanations → live study → dashboard → API docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from studyapp.models import Study
from tests.browser.conftest import policy_violations
from tests.studyapp.participant_pool import explanation_lines
from tests.studyapp.researcher_data import PASSWORD, participant_finish, user_make

# serialized_rollback: the flush after each live-server test would drop the researcher
# group that a data migration created.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def log_in(browser: Any, base: str, username: str = "researcher") -> None:
    browser.get(base + reverse("admin:login"))
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The click returns before the login POST has finished; the next page load would race it.
    WebDriverWait(browser, 15).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#user-tools, .errornote")
    )
    assert not browser.find_elements(By.CSS_SELECTOR, ".errornote"), "login was refused"


def _text_of(driver: Any, element_id: str) -> str | None:
    # One script call: a page that is being replaced would leave a fetched element stale.
    return driver.execute_script(
        "var e = document.getElementById(arguments[0]); return e ? e.textContent.trim() : null;",
        element_id,
    )


def test_a_researcher_uploads_a_file_opens_the_study_and_reads_the_dashboard(
    browser: Any, live_server: Any, tmp_path: Path, screenshot_dir: Path
) -> None:
    user_make("researcher")
    path = tmp_path / "explanations.jsonl"
    path.write_text("\n".join(explanation_lines()) + "\n", encoding="utf-8")
    browser.set_window_size(1280, 1400)
    log_in(browser, live_server.url)

    browser.get(live_server.url + reverse("admin:studyapp_study_add"))
    browser.find_element(By.NAME, "slug").send_keys("browser-study")
    browser.find_element(By.NAME, "explanations").send_keys(str(path))
    browser.find_element(By.NAME, "live").click()
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda d: _text_of(d, "study-status") == "Live")

    study = Study.objects.get(slug="browser-study")
    participant_finish(study, "P1")
    browser.refresh()
    assert browser.find_element(By.ID, "count-completed").text == "1"
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.study-chart rect")
    assert len(bars) == 4 + 2  # four conditions; explanations rated 0 and 1 times
    assert all(bar.size["height"] > 0 for bar in bars)
    browser.save_screenshot(str(screenshot_dir / "admin-dashboard.png"))

    browser.find_element(By.CSS_SELECTOR, "input[value=Pause]").click()
    WebDriverWait(browser, 10).until(lambda d: _text_of(d, "study-status") == "Paused")
    assert policy_violations(browser) == []


def test_the_api_docs_render_from_local_files(
    browser: Any, live_server: Any, screenshot_dir: Path
) -> None:
    user_make("researcher")
    log_in(browser, live_server.url)
    browser.get(live_server.url + reverse("api:docs"))
    # The reference is rendered on the server: every operation is in the page as served, and
    # its styles come from this site (the test machine has no internet access to a CDN).
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "article.operation .path")}
    assert "/api/studies/{slug}/ratings.csv" in paths
    badge = browser.find_element(By.CSS_SELECTOR, ".method-get")
    assert badge.value_of_css_property("background-color") == "rgba(10, 88, 202, 1)"
    assert policy_violations(browser) == []
    browser.save_screenshot(str(screenshot_dir / "api-docs.png"))
