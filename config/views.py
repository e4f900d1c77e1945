from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

# What a caller is told when the database cannot be reached. The driver's message names
# roles, hosts and ports, so it goes to the log only: /healthz answers anyone.
UNREACHABLE_REASON = "the database cannot be reached; the server log has the details"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Report whether the app can reach its database; 503 with a generic reason when not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.error("health check failed: the database is unreachable: %s", str(exc).strip())
        return JsonResponse(
            {"status": "error", "database": "unreachable", "reason": UNREACHABLE_REASON},
            status=503,
        )
    return JsonResponse({"status": "ok", "database": connection.vendor})


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The site root: what the site is, for researchers, with links to the admin and API docs.

    Participants never need this page: they arrive through a study link, and everything they
    are told about a study comes from the study's own pages and from the recruiting platform.
    """
    return render(request, "home.html")


FAVICON = Path(settings.BASE_DIR) / "static" / "favicon.ico"


@cache
def _favicon_bytes() -> bytes:
    return FAVICON.read_bytes()


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``, which browsers ask for on their own on every new site."""
    return HttpResponse(_favicon_bytes(), content_type="image/x-icon")
