from __future__ import annotations

import logging
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client

from config.views import UNREACHABLE_REASON


@pytest.mark.django_db
def test_healthz_reports_ok_and_the_database_vendor(client: Client) -> None:
    from django.db import connection

    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": connection.vendor}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


DRIVER_MESSAGE = (
    'connection to server at "db.internal" (10.0.0.7), port 5432 failed: '
    'FATAL:  password authentication failed for user "study_owner"'
)


@pytest.mark.django_db
def test_healthz_returns_503_with_a_generic_reason_and_logs_the_details(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="config.views"),
        mock.patch(
            "django.db.backends.utils.CursorWrapper.execute",
            side_effect=OperationalError(DRIVER_MESSAGE),
        ),
    ):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "database": "unreachable",
        "reason": UNREACHABLE_REASON,
    }
    body = response.content.decode()
    for detail in ("db.internal", "10.0.0.7", "5432", "study_owner", "password"):
        assert detail not in body
    assert DRIVER_MESSAGE in caplog.text


@pytest.mark.django_db
def test_healthz_refuses_post(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_admin_login_page_is_served(client: Client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"Django administration" in response.content or b"Log in" in response.content


@pytest.mark.django_db
def test_admin_index_redirects_anonymous_users_to_login(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
