"""Typed readers for settings that come from the environment.

Each helper fails with ``ImproperlyConfigured`` naming the variable and the
values it accepts, so a wrong deployment value stops start-up with a message
instead of a half-working server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean; use one of: true, false (also 1/0, yes/no, on/off)."
    )


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
) -> int:
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    items = [part.strip() for part in raw.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(
            f"{name}={raw!r} has an empty entry; give comma-separated values such as "
            "'example.org,www.example.org'."
        )
    return items


def env_str(name: str, default: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip()


def env_choice(
    name: str, default: str, choices: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str:
    """One of ``choices`` (compared case-insensitively, returned as spelled there)."""
    value = env_str(name, default, environ) or default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(
        f"{name}={value!r} is not accepted; use one of: {', '.join(choices)}."
    )


_RATE_PERIODS = ("second", "minute", "hour", "day")


def env_rate(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """A request rate such as ``600/minute`` (REST framework's throttle format)."""
    value = env_str(name, default, environ) or default
    count, _, period = value.partition("/")
    # REST framework reads only the period's first letter, so "10/min" and "10/m" work too.
    valid_period = period.isalpha() and period[0].lower() in "smhd"
    if not (count.isdigit() and int(count) > 0 and valid_period):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a request rate; use COUNT/PERIOD with PERIOD one of: "
            f"{', '.join(_RATE_PERIODS)} (e.g. '600/minute')."
        )
    return f"{int(count)}/{period.lower()}"


_DB_SCHEMES = ("postgres", "postgresql", "pgsql", "sqlite")


def env_database(
    name: str, default_sqlite_path: str, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": default_sqlite_path,
            # Participants arrive in bursts; wait for the write lock instead of failing.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    url = raw.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _DB_SCHEMES:
        raise ImproperlyConfigured(
            f"{name}={url!r} is not a supported database URL; use "
            "postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:////absolute/path.sqlite3."
        )
    try:
        config = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    except Exception as exc:  # dj-database-url raises several exception types
        raise ImproperlyConfigured(f"{name}={url!r} could not be parsed: {exc}") from exc
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name}={url!r} names no database; add '/DBNAME' at the end.")
    return config
