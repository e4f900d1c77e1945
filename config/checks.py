"""System checks of the deployment, run by ``manage.py check --deploy``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

SQLITE_IN_PRODUCTION = "config.E001"


@register(Tags.database, deploy=True)
def sqlite_in_production_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Refuse SQLite with ``DJANGO_DEBUG=false``.

    SQLite lets one writer in at a time: under gunicorn's several workers, participants
    arriving together wait on its lock until they get "database is locked" errors.
    """
    if settings.DEBUG:
        return []
    return [
        Error(
            f"the database '{alias}' is SQLite, which serves one writer at a time and fails "
            "with 'database is locked' under several gunicorn workers.",
            hint="Set DATABASE_URL to a PostgreSQL database, e.g. "
            "postgres://USER:PASSWORD@HOST:5432/NAME.",
            id=SQLITE_IN_PRODUCTION,
        )
        for alias, database in settings.DATABASES.items()
        if database.get("ENGINE") == "django.db.backends.sqlite3"
    ]
