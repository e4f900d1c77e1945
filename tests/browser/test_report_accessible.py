"""The analysis report in headless Chromium, opened as a file and as the admin serves it:
axe-core finds no violations and nothing scrolls sideways on a 390 px phone
(screenshots in tests/browser/screenshots/)."""

from __future__ import annotations

from pathlib import Path
from pprint import pformat
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from selenium.webdriver.common.by import By

from analysis.report import report_write
from analysis.simulate import ratings_simulate
from studyapp.models import StudyReport
from tests.browser.conftest import policy_violations
from tests.browser.pages import PHONE, page_check, sideways_overflow
from tests.browser.test_admin_researcher_flow import log_in
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import PASSWORD

pytestmark = pytest.mark.browser

SECTIONS = [
    "Analysis plan",
    "Exclusions",
    "Descriptives",
    "Tests of differences between conditions",
    "Post-hoc comparisons",
    "Regression",
    "Reliability of the five-dimension scale",
    "Accuracy of the distillation runs",
]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every section: a known effect, covariates, reliability and the accuracy of 18 runs."""
    rng = np.random.default_rng(0)
    runs = pd.DataFrame(
        [
            {"method": m, "size": s, "accuracy": 0.4 + 0.05 * i + 0.1 * j + rng.normal(0, 0.01)}
            for i, m in enumerate(["mt", "cf", "mt+cf"])
            for j, s in enumerate([60, 220, 770])
            for _ in range(2)
        ]
    )
    ratings = ratings_simulate(
        60, effects={"CF:original": {"completeness": 0.8}}, seed=4, covariates=True
    )
    out = tmp_path_factory.mktemp("report")
    report_write(ratings, out, covariates=("age", "gender"), accuracy=runs)
    return out / "report.html"


def test_the_report_file_passes_axe_and_fits_a_phone(
    browser: Any, full_report: Path, screenshot_dir: Path
) -> None:
    browser.get(full_report.as_uri())

    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "main h2")]
    assert headings == SECTIONS
    assert len(browser.find_elements(By.CSS_SELECTOR, "main img[alt]")) == 4
    problems = page_check(browser, "analysis-report", screenshot_dir)
    assert problems == {}, pformat(problems, width=100)
    # A wide table scrolls inside its own region at 390 px, and the region takes the focus.
    browser.set_window_size(*PHONE)
    widest = browser.execute_script(
        "return Math.max.apply(null, Array.from(document.querySelectorAll('.table'))"
        ".map(function (r) { return r.scrollWidth - r.clientWidth; }));"
    )
    assert widest > 0
    assert sideways_overflow(browser) <= 0
    assert policy_violations(browser) == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_report_the_admin_serves_passes_axe_and_fits_a_phone(
    browser: Any, live_server: Any, tmp_path: Path, screenshot_dir: Path
) -> None:
    # Few participants and one dimension that never varies: "not computable" cells, the
    # section listing them, and the note that HC3 replaced the clustered standard errors.
    report_write(ratings_simulate(16, seed=5).assign(contrastiveness=3), tmp_path)
    User.objects.create_superuser(username="owner", email="", password=PASSWORD)
    study = study_make(slug="report")
    report = StudyReport.objects.create(study=study, out_dir=str(tmp_path))
    log_in(browser, live_server.url, "owner")

    browser.get(
        live_server.url + reverse("admin:studyapp_study_report", args=[study.pk, report.pk])
    )

    back = browser.find_element(By.CSS_SELECTOR, "body > nav:first-child a")
    assert back.get_attribute("href") == live_server.url + reverse(
        "admin:studyapp_study_dashboard", args=[study.pk]
    )
    assert browser.find_elements(By.CSS_SELECTOR, "main td.na")
    assert "Not computable" in [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2")]
    assert "fewer than the plan's minimum of 30" in browser.find_element(By.TAG_NAME, "main").text
    problems = page_check(browser, "analysis-report-admin", screenshot_dir)
    assert problems == {}, pformat(problems, width=100)
