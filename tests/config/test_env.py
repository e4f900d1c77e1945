from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_rate,
    env_str,
)


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("False", False), ("1", True), ("off", False), ("", True)]
)
def test_env_bool_reads_accepted_spellings(raw: str, expected: bool) -> None:
    assert env_bool("FLAG", True, {"FLAG": raw}) is expected


def test_env_bool_rejects_other_words_naming_the_variable_and_values() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_DEBUG='maybe'.*true, false"):
        env_bool("DJANGO_DEBUG", True, {"DJANGO_DEBUG": "maybe"})


def test_env_int_rejects_non_numbers_and_values_below_minimum() -> None:
    assert env_int("N", 3, {}) == 3
    assert env_int("N", 3, {"N": "7"}) == 7
    with pytest.raises(ImproperlyConfigured, match="N='seven' is not a whole number"):
        env_int("N", 3, {"N": "seven"})
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env_int("N", 3, {"N": "-1"}, minimum=0)


def test_env_list_splits_on_commas_and_rejects_empty_entries() -> None:
    assert env_list("HOSTS", ["a"], {}) == ["a"]
    assert env_list("HOSTS", [], {"HOSTS": "a.org, b.org"}) == ["a.org", "b.org"]
    with pytest.raises(ImproperlyConfigured, match="empty entry"):
        env_list("HOSTS", [], {"HOSTS": "a.org,,b.org"})


def test_env_str_treats_blank_as_unset() -> None:
    assert env_str("S", "d", {"S": "  "}) == "d"
    assert env_str("S", None, {"S": " x "}) == "x"


def test_env_database_defaults_to_sqlite_file() -> None:
    config = env_database("DATABASE_URL", "/tmp/x.sqlite3", {})
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/tmp/x.sqlite3"


def test_env_database_reads_postgres_url() -> None:
    config = env_database(
        "DATABASE_URL", "/tmp/x", {"DATABASE_URL": "postgres://u:p@db:5433/study"}
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == (
        "db",
        5433,
        "study",
        "u",
    )


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "postgres://u@h:5432/"])
def test_env_database_rejects_unsupported_or_incomplete_urls(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env_database("DATABASE_URL", "/tmp/x", {"DATABASE_URL": url})


def test_env_choice_accepts_any_case_and_rejects_other_values_naming_them() -> None:
    levels = ("DEBUG", "INFO", "WARNING")
    assert env_choice("LOG_LEVEL", "INFO", levels, {}) == "INFO"
    assert env_choice("LOG_LEVEL", "INFO", levels, {"LOG_LEVEL": " debug "}) == "DEBUG"
    with pytest.raises(ImproperlyConfigured, match=r"LOG_LEVEL='LOUD'.*DEBUG, INFO, WARNING"):
        env_choice("LOG_LEVEL", "INFO", levels, {"LOG_LEVEL": "LOUD"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", "600/minute"), ("10/second", "10/second"), ("5/Hour", "5/hour"), ("30/min", "30/min")],
)
def test_env_rate_reads_rest_framework_rates(raw: str, expected: str) -> None:
    assert env_rate("API_THROTTLE_RATE", "600/minute", {"API_THROTTLE_RATE": raw}) == expected


@pytest.mark.parametrize("raw", ["lots", "10", "0/minute", "-5/minute", "10/", "10/week", "1/m/x"])
def test_env_rate_rejects_what_rest_framework_cannot_parse(raw: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"API_THROTTLE_RATE=.*COUNT/PERIOD"):
        env_rate("API_THROTTLE_RATE", "600/minute", {"API_THROTTLE_RATE": raw})
