"""Start-up behaviour of the settings module under production environments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": PROD_SECRET,
    "DJANGO_ALLOWED_HOSTS": "study.example.org",
    # check --deploy reads the settings only; it never connects to this database.
    "DATABASE_URL": "postgres://study:secret@127.0.0.1:5432/study",
}


def test_check_deploy_is_clean_with_a_production_environment() -> None:
    result = _run(["check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_refuses_sqlite_in_production(tmp_path: Path) -> None:
    result = _run(
        ["check", "--deploy"],
        {**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )
    assert result.returncode != 0
    assert "config.E001" in result.stderr
    assert "Set DATABASE_URL to a PostgreSQL database" in result.stderr


def test_check_deploy_refuses_the_default_sqlite_file_in_production() -> None:
    result = _run(["check", "--deploy"], {**PRODUCTION, "DATABASE_URL": ""})
    assert result.returncode != 0
    assert "the database 'default' is SQLite" in result.stderr


def test_sqlite_stays_fine_in_development(tmp_path: Path) -> None:
    result = _run(["check", "--deploy"], {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert "config.E001" not in result.stdout + result.stderr


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
