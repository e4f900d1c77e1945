from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
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
