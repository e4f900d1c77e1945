"""Checks run on every page in the browser tests: axe-core, sideways overflow, screenshots.

axe-core is vendored for tests only (``tests/browser/vendor/axe.min.js``, from the npm
package ``axe-core``; see ``tests/browser/vendor/README.md``). It is injected through
WebDriver, which the page's Content-Security-Policy does not govern, so the policy stays as
strict in the tests as in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import policy_violations

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
DESKTOP = (1280, 900)
PHONE = (390, 844)

RUN_AXE = """
var done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]}).then(function (result) {
  done(result.violations.map(function (v) {
    return v.id + " (" + v.impact + "): " + v.help + " at " +
      v.nodes.map(function (n) { return n.target.join(" "); }).join(", ");
  }));
}, function (error) { done(["axe-core failed: " + error]); });
"""


def axe_violations(driver: Any) -> list[str]:
    """axe-core's violations on the current page, one line each (rule, impact, where)."""
    if not AXE.is_file():
        pytest.skip(f"axe-core is not vendored at {AXE} (see tests/browser/vendor/README.md)")
    driver.set_script_timeout(60)
    if not driver.execute_script("return typeof window.axe === 'object';"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    return list(driver.execute_async_script(RUN_AXE))


def sideways_overflow(driver: Any) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it fits the window)."""
    return int(
        driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
        )
    )


def page_check(driver: Any, name: str, screenshot_dir: Path) -> dict[str, list[str] | int]:
    """Screenshots on desktop and phone, axe at both sizes and the overflow at 390 px.

    Returns the problems found, keyed by what was checked, so that one assertion can show
    every page's problems at once. The window is left at desktop size.
    """
    problems: dict[str, list[str] | int] = {}
    blocked = policy_violations(driver)
    if blocked:
        problems["blocked by the policy"] = blocked
    driver.set_window_size(*DESKTOP)
    driver.save_screenshot(str(screenshot_dir / f"{name}-desktop.png"))
    desktop = axe_violations(driver)
    if desktop:
        problems["axe desktop"] = desktop
    wide = sideways_overflow(driver)
    if wide > 0:
        problems["overflow at 1280 px"] = wide
    driver.set_window_size(*PHONE)
    driver.save_screenshot(str(screenshot_dir / f"{name}-phone.png"))
    overflow = sideways_overflow(driver)
    if overflow > 0:
        problems["overflow at 390 px"] = overflow
    phone = axe_violations(driver)
    if phone:
        problems["axe phone"] = phone
    driver.set_window_size(*DESKTOP)
    # On some pages axe sets a style attribute while it measures; the policy refuses that, as
    # it should. Those refusals are axe's, not the page's, so they are read and set aside
    # here; the page's own ones were read above, before axe ran.
    policy_violations(driver)
    return problems


def step_token(driver: Any) -> str | None:
    """The token of the step on the page, or None once the items are over. Read in one
    script call: the form may be swapped out between two WebDriver calls."""
    return driver.execute_script(
        "var f = document.querySelector('input[name=step]'); return f ? f.value : null;"
    )


def instructed_label(driver: Any) -> str:
    """The scale label an attention-check page asks for."""
    text = driver.find_element(By.CSS_SELECTOR, ".instruction").text
    return text.split("choose “", 1)[1].split("”", 1)[0]


def rows_choose(driver: Any, value: int) -> None:
    """Click ``value`` in every rating row, by its label, as a participant does."""
    for fieldset in driver.find_elements(By.CSS_SELECTOR, "fieldset.likert"):
        radio = fieldset.find_element(By.CSS_SELECTOR, f"input[type=radio][value='{value}']")
        radio.find_element(By.XPATH, "./ancestor::label").click()
        assert radio.is_selected()
