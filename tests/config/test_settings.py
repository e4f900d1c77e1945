"""Start-up behaviour of the settings module under production environments."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PROD_SECRET = "k3J9-vQ2xZ8rT5nL1wE7yU4iO0pA6sD3fG9hJ2kL5zX8cV1bN4mQ7wE0rT3yU6iO9p"


def _run(args: list[str], env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.pop("DATABASE_URL", None)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_a_production_environment() -> None:
    result = _run(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": PROD_SECRET,
            "DJANGO_ALLOWED_HOSTS": "study.example.org",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_secret_stops_with_a_clear_message() -> None:
    result = _run(["check"], {"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "x.org"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required when DJANGO_DEBUG=false" in result.stderr


def test_production_without_allowed_hosts_stops_with_a_clear_message() -> None:
    result = _run(["check"], {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": PROD_SECRET})
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is required" in result.stderr


def test_bad_boolean_names_the_variable() -> None:
    result = _run(["check"], {"DJANGO_DEBUG": "sometimes"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG='sometimes' is not a boolean" in result.stderr


def test_bad_database_url_names_the_variable() -> None:
    result = _run(["check"], {"DATABASE_URL": "mysql://root@localhost/db"})
    assert result.returncode != 0
    assert (
        "DATABASE_URL='mysql://root@localhost/db' is not a supported database URL" in result.stderr
    )


def test_bad_log_level_and_throttle_rate_name_the_variable() -> None:
    result = _run(["check"], {"LOG_LEVEL": "LOUD"})
    assert result.returncode != 0
    assert "LOG_LEVEL='LOUD' is not accepted; use one of: DEBUG" in result.stderr
    result = _run(["check"], {"API_THROTTLE_RATE": "lots"})
    assert result.returncode != 0
    assert "API_THROTTLE_RATE='lots' is not a request rate" in result.stderr
