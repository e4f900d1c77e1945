"""The admin login locks a user name out from an address after repeated wrong passwords."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.studyapp.researcher_data import PASSWORD, user_make

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")


def _log_in(client: Client, password: str, username: str = "researcher") -> Any:
    return client.post(
        LOGIN, {"username": username, "password": password, "next": reverse("admin:index")}
    )


def _logged_in(client: Client) -> bool:
    return client.get(reverse("admin:index")).status_code == 200


@pytest.fixture
def researcher() -> None:
    user_make("researcher")


def test_after_the_limit_even_the_right_password_is_refused(researcher: None) -> None:
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    answers = [
        _log_in(attacker, f"guess-{n}").status_code for n in range(settings.AXES_FAILURE_LIMIT)
    ]

    locked = _log_in(attacker, PASSWORD)

    assert answers[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again
    assert locked.status_code == 429
    assert not _logged_in(attacker)


def test_the_limit_defaults_to_ten_failures_for_thirty_minutes() -> None:
    assert settings.AXES_FAILURE_LIMIT == 10
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 30 * 60
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_a_lockout_from_one_address_does_not_lock_the_researcher_out_elsewhere(
    researcher: None,
) -> None:
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for n in range(settings.AXES_FAILURE_LIMIT):
        _log_in(attacker, f"guess-{n}")

    researcher_browser = Client(REMOTE_ADDR="203.0.113.9")
    response = _log_in(researcher_browser, PASSWORD)

    assert response.status_code == 302
    assert _logged_in(researcher_browser)


def test_a_successful_login_resets_the_count(researcher: None) -> None:
    browser = Client(REMOTE_ADDR="198.51.100.7")
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(browser, f"typo-{n}")
    assert _log_in(browser, PASSWORD).status_code == 302
    browser.logout()

    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(browser, f"typo-again-{n}")

    assert _log_in(browser, PASSWORD).status_code == 302


def test_failures_are_counted_in_the_shared_cache_not_a_table(researcher: None) -> None:
    _log_in(Client(REMOTE_ADDR="198.51.100.7"), "wrong")

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_cache")
        (entries,) = cursor.fetchone()
    assert entries >= 1
    assert not AccessAttempt.objects.exists()  # no table keeps the address


def test_behind_a_trusted_proxy_a_forged_forwarded_for_does_not_reset_the_count(
    researcher: None, settings: Any
) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(settings.AXES_FAILURE_LIMIT):
        forged = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 198.51.100.7")
        _log_in(forged, f"guess-{n}")

    again = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9, 198.51.100.7")
    assert _log_in(again, PASSWORD).status_code == 429
