"""Every participant and researcher page in headless Chromium: axe-core finds no violations,
nothing scrolls sideways on a 390 px phone, and each page is photographed on desktop and
phone (tests/browser/screenshots/)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from distillation.models import DistillationRun
from studyapp.models import ProlificAction, ProlificBonusBatch, ProlificSubmission, Study
from tests.browser.conftest import policy_violations
from tests.browser.pages import page_check, sideways_overflow
from tests.browser.test_admin_researcher_flow import log_in
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import PASSWORD, participant_finish

# serialized_rollback: the flush after each live-server test would drop the researcher
# group that a data migration created.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# The item (question, explanation and five rows of five options) on a 390 x 844 phone.
MAX_ITEM_SCREENS = 2.0
LABELS = {
    "Strongly disagree": 1,
    "Disagree": 2,
    "Neither agree nor disagree": 3,
    "Agree": 4,
    "Strongly agree": 5,
}


def _step_token(driver: Any) -> str | None:
    return driver.execute_script(
        "var f = document.querySelector('input[name=step]'); return f ? f.value : null;"
    )


def _answer(driver: Any) -> None:
    token = _step_token(driver)
    assert token is not None
    if token.startswith("check-"):
        text = driver.find_element(By.CSS_SELECTOR, ".instruction").text
        value = LABELS[text.split("choose “", 1)[1].split("”", 1)[0]]
    else:
        value = 4
    for fieldset in driver.find_elements(By.CSS_SELECTOR, "fieldset.likert"):
        radio = fieldset.find_element(By.CSS_SELECTOR, f"input[type=radio][value='{value}']")
        radio.find_element(By.XPATH, "./ancestor::label").click()
    driver.find_element(By.CSS_SELECTOR, "#step button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d, old=token: _step_token(d) != old)


PHONE_LAYOUT = """
var options = Array.from(document.querySelectorAll('.likert-option'));
var texts = Array.from(document.querySelectorAll('.likert-text'));
var step = document.getElementById('step').getBoundingClientRect();
return {
  smallest_text: Math.min.apply(null, texts.map(function (t) {
    return parseFloat(getComputedStyle(t).fontSize); })),
  smallest_target: Math.min.apply(null, options.map(function (o) {
    var r = o.getBoundingClientRect(); return Math.min(r.width, r.height); })),
  screens: step.height / window.innerHeight,
  legends_across_border: Array.from(document.querySelectorAll('fieldset.likert')).filter(
    function (f) {
      return f.querySelector('legend').getBoundingClientRect().top <
        f.getBoundingClientRect().top + parseFloat(getComputedStyle(f).borderTopWidth);
    }).length
};
"""


def _phone_layout_problems(driver: Any) -> list[str]:
    """At 390 px: Likert labels of 14 px or more, 44 px targets, an item under two screens."""
    driver.set_window_size(390, 844)
    layout = driver.execute_script(PHONE_LAYOUT)
    driver.set_window_size(1280, 900)
    problems = []
    if layout["smallest_text"] < 14:
        problems.append(f"a Likert label is {layout['smallest_text']} px")
    if layout["smallest_target"] < 44:
        problems.append(f"a Likert option is {layout['smallest_target']} px across")
    if layout["legends_across_border"]:
        problems.append(f"{layout['legends_across_border']} legends sit across their border")
    if layout["screens"] > MAX_ITEM_SCREENS:
        problems.append(f"an item is {layout['screens']:.2f} screens tall")
    return problems


def test_the_landing_page(browser: Any, live_server: Any, screenshot_dir: Path) -> None:
    browser.get(live_server.url + "/")

    assert browser.find_element(By.TAG_NAME, "h1").text == "Explanation study platform"
    links = {
        a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "main a")
    }
    assert links == {
        "Admin": live_server.url + "/admin/",
        "API documentation": live_server.url + "/api/docs/",
    }
    icon = browser.execute_script(
        "return fetch('/favicon.ico').then(function (r) { return r.status; });"
    )
    assert icon == 200
    assert page_check(browser, "landing", screenshot_dir) == {}
    assert policy_violations(browser) == []


def test_every_participant_page_passes_axe_and_fits_a_phone(
    browser: Any, live_server: Any, settings: Any, screenshot_dir: Path
) -> None:
    settings.PROLIFIC_COMPLETION_URL = f"{live_server.url}/healthz?cc={{code}}"
    study = study_make(slug="pages")
    entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
    problems: dict[str, Any] = {}

    browser.get(
        f"{live_server.url}{entry}?PROLIFIC_PID=5f0c0ffee0c0ffee0c0ffee1&STUDY_ID=st&SESSION_ID=se"
    )
    problems["consent"] = page_check(browser, "participant-consent", screenshot_dir)
    browser.find_element(By.CSS_SELECTOR, "button[value=agree]").click()
    problems["instructions"] = page_check(browser, "participant-instructions", screenshot_dir)
    browser.find_element(By.LINK_TEXT, "Start the first item").click()
    WebDriverWait(browser, 15).until(lambda d: _step_token(d) is not None)

    seen: set[str] = set()
    for _ in range(20):
        token = _step_token(browser)
        if token is None:
            break
        kind = "check" if token.startswith("check-") else "item"
        if kind not in seen:
            seen.add(kind)
            problems[kind] = page_check(browser, f"participant-{kind}", screenshot_dir)
        if kind == "item" and "phone layout" not in problems:
            problems["phone layout"] = _phone_layout_problems(browser)
        if kind == "item" and "refused" not in seen:
            seen.add("refused")
            # A server-side refusal: the browser's own check is switched off for this submit.
            browser.execute_script("document.querySelector('#step form').noValidate = true;")
            browser.find_element(By.CSS_SELECTOR, "#step button[type=submit]").click()
            WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "error-summary"))
            WebDriverWait(browser, 15).until(
                lambda d: d.execute_script("return document.activeElement.id;") == "error-summary"
            )
            problems["refused item"] = page_check(
                browser, "participant-item-refused", screenshot_dir
            )
        _answer(browser)
    assert seen == {"item", "check", "refused"}
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "completion-link"))
    problems["done"] = page_check(browser, "participant-done", screenshot_dir)

    found = {page: found for page, found in problems.items() if found}
    assert found == {}, pformat(found, width=100)
    assert policy_violations(browser) == []


def test_back_to_the_instructions_mid_study_says_continue(
    browser: Any, live_server: Any, screenshot_dir: Path
) -> None:
    study = study_make(slug="back")
    entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
    browser.get(
        f"{live_server.url}{entry}?PROLIFIC_PID=5f0c0ffee0c0ffee0c0ffee2&STUDY_ID=st&SESSION_ID=se"
    )
    browser.find_element(By.CSS_SELECTOR, "button[value=agree]").click()
    assert browser.find_element(By.CSS_SELECTOR, "main a.button").text == "Start the first item"
    browser.find_element(By.LINK_TEXT, "Start the first item").click()
    WebDriverWait(browser, 15).until(lambda d: _step_token(d) is not None)
    _answer(browser)  # htmx swaps the next step in place: no new history entry

    browser.back()

    WebDriverWait(browser, 15).until(lambda d: "/instructions/" in d.current_url)
    button = browser.find_element(By.CSS_SELECTOR, "main a.button")
    assert button.text == "Continue"
    browser.save_screenshot(str(screenshot_dir / "participant-instructions-back.png"))
    button.click()
    WebDriverWait(browser, 15).until(lambda d: _step_token(d) is not None)
    assert _step_token(browser) != "item-1"


def test_every_researcher_page_passes_axe_and_fits_a_phone(
    browser: Any, live_server: Any, screenshot_dir: Path
) -> None:
    owner = User.objects.create_superuser(username="owner", email="", password=PASSWORD)
    owner.groups.add(Group.objects.get(name="researcher"))
    study = study_make(slug="pages")
    participant = participant_finish(study, "P1")
    run = DistillationRun.objects.create(
        name="demo",
        config_path="configs/demo.toml",
        config={"run": {"name": "demo"}, "training": {"steps": 240}},
        stages=["data", "train"],
        output_dir="runs/demo",
        status=DistillationRun.Status.SUCCEEDED,
        metrics={
            "stages_run": ["train"],
            "stages_skipped": ["data"],
            "stage_seconds": {"train": 75.0},
            "accuracy": [],
            "notes": [],
        },
    )
    on_prolific = prolific_study_make()
    problems: dict[str, Any] = {}
    browser.get(live_server.url + reverse("admin:login"))
    problems["login"] = page_check(browser, "admin-login", screenshot_dir)
    log_in(browser, live_server.url, "owner")
    questionnaire_id = Study.objects.get(pk=study.pk).questionnaire_id  # plain-5, frozen by P1
    pages = {
        "admin-index": reverse("admin:index"),
        "admin-studies": reverse("admin:studyapp_study_changelist"),
        "admin-study-edit": reverse("admin:studyapp_study_change", args=[study.pk]),
        "admin-study-upload": reverse("admin:studyapp_study_upload"),
        "admin-dashboard": reverse("admin:studyapp_study_dashboard", args=[study.pk]),
        "admin-participants": reverse("admin:studyapp_participant_changelist"),
        "admin-participant": reverse("admin:studyapp_participant_change", args=[participant.pk]),
        "admin-runs": reverse("admin:distillation_distillationrun_changelist"),
        "admin-run": reverse("admin:distillation_distillationrun_change", args=[run.pk]),
        "admin-questionnaires": reverse("admin:studyapp_questionnaire_changelist"),
        "admin-questionnaire": reverse(
            "admin:studyapp_questionnaire_change", args=[questionnaire_id]
        ),
        "admin-questionnaire-preview": reverse(
            "admin:studyapp_questionnaire_preview", args=[questionnaire_id]
        ),
        "admin-prolific": reverse("admin:studyapp_study_prolific", args=[on_prolific.pk]),
        "admin-prolific-dashboard": reverse(
            "admin:studyapp_study_dashboard", args=[on_prolific.pk]
        ),
        "admin-prolific-create": reverse("admin:studyapp_study_prolific_create", args=[study.pk]),
    }
    for name, path in pages.items():
        browser.get(live_server.url + path)
        assert browser.find_elements(By.CSS_SELECTOR, "#content"), name
        problems[name] = page_check(browser, name, screenshot_dir)

    browser.get(live_server.url + reverse("api:docs"))
    assert browser.find_elements(By.CSS_SELECTOR, "main article.operation"), "api-docs"
    problems["api-docs"] = page_check(browser, "api-docs", screenshot_dir)

    found = {page: found for page, found in problems.items() if found}
    assert found == {}, pformat(found, width=100)
    assert Study.objects.get(pk=study.pk).slug == "pages"


def prolific_study_make() -> Study:
    """A study on Prolific with what its Prolific page shows: submissions to approve and to
    reject, one never seen here, a bonus batch to pay and the requests sent."""
    study = study_make(slug="on-prolific")
    finished = [
        participant_finish(study, "P-good"),
        participant_finish(study, "P-careless", fail_checks=2),
    ]
    Study.objects.filter(pk=study.pk).update(
        prolific_study_id="6123abc0de4f5a6b7c8d9e0f", prolific_status="ACTIVE"
    )
    for n, participant in enumerate(finished):
        ProlificSubmission.objects.create(
            study=study,
            submission_id=f"sub{n}",
            participant_pid=participant.prolific_pid,
            status="AWAITING REVIEW",
        )
    ProlificSubmission.objects.create(
        study=study, submission_id="sub9", participant_pid="P-ghost", status="ACTIVE"
    )
    ProlificBonusBatch.objects.create(
        study=study,
        bonus_id="bonus1",
        csv_bonuses="P-good,0.50\n",
        participants=1,
        amount=50,
        fees=17,
        vat=3,
        total_amount=70,
    )
    ProlificAction.objects.create(
        study=study, kind="publish", method="POST", path="/api/v1/studies/x/transition/", ok=True
    )
    study.refresh_from_db()
    return study


def test_the_dashboard_fits_a_phone_without_scrolling_sideways(
    browser: Any, live_server: Any
) -> None:
    User.objects.create_superuser(username="owner", email="", password=PASSWORD)
    study = study_make(slug="narrow")
    log_in(browser, live_server.url, "owner")
    browser.set_window_size(390, 844)
    browser.get(live_server.url + reverse("admin:studyapp_study_dashboard", args=[study.pk]))
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#content table"))

    # Measured once the layout has settled: on a loaded machine the first measure can come
    # before the narrow window's styles apply, so it is read until it holds or 5 s pass.
    with contextlib.suppress(TimeoutException):
        WebDriverWait(browser, 5, poll_frequency=0.25).until(lambda d: sideways_overflow(d) <= 0)
    assert sideways_overflow(browser) <= 0
