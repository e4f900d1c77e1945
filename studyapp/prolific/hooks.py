"""Prolific's webhooks: submission and study status changes, verified and applied once.

Prolific signs each delivery: ``X-Prolific-Request-Signature`` is the base64 HMAC-SHA256,
keyed with the workspace's hook secret, of ``X-Prolific-Request-Timestamp`` followed by the
body. A delivery is refused (403, nothing changed) when the signature does not match or the
timestamp is further from now than ``PROLIFIC_HOOK_TOLERANCE_SECONDS``. Prolific delivers at
least once and retries for a day, each retry with the same ``X-Event-ID``: an event already
applied is answered 200 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from studyapp.middleware import participant_body_limited
from studyapp.models import ProlificHookDelivery, Study
from studyapp.prolific.services import (
    study_status_follow_prolific,
    submission_status_apply,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Prolific-Request-Signature"
TIMESTAMP_HEADER = "X-Prolific-Request-Timestamp"
EVENT_ID_HEADER = "X-Event-ID"
EVENT_TIME_HEADER = "X-Timestamp"

SUBMISSION_EVENT = "submission.status.change"
STUDY_EVENT = "study.status.change"


def signature_for(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_valid(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` signs this body, as sent or as Prolific's own example re-serialises it.

    Prolific's documented check signs ``json.dumps`` of the parsed body; the raw body is
    tried first, then that form, so either way of sending verifies.
    """
    if hmac.compare_digest(signature_for(secret, timestamp, body), signature):
        return True
    try:
        redumped = json.dumps(json.loads(body)).encode()
    except ValueError:
        return False
    return redumped != body and hmac.compare_digest(
        signature_for(secret, timestamp, redumped), signature
    )


def _refuse(message: str, status: int = 403) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


def _event_time(request: HttpRequest, fallback: float) -> datetime:
    raw = request.headers.get(EVENT_TIME_HEADER, "")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = fallback
    return datetime.fromtimestamp(seconds, tz=UTC)


@csrf_exempt
@require_POST
@participant_body_limited
def prolific_hook(request: HttpRequest) -> HttpResponse:
    secret = str(settings.PROLIFIC_HOOK_SECRET)
    if not secret:
        # Prolific retries for a day: set the secret, restart, and the events still arrive.
        return _refuse("PROLIFIC_HOOK_SECRET is not set on this server", status=503)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    body = request.body
    if not signature or not timestamp:
        return _refuse(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    try:
        sent = float(timestamp)
    except ValueError:
        return _refuse(f"{TIMESTAMP_HEADER} is not a UNIX time")
    if abs(time.time() - sent) > settings.PROLIFIC_HOOK_TOLERANCE_SECONDS:
        return _refuse("the request is too old (or from the future); refused as a replay")
    if not signature_valid(secret, timestamp, body, signature):
        return _refuse("the signature does not match this server's hook secret")
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return _refuse("the body is not JSON", status=400)
    if not isinstance(payload, dict):
        return _refuse("the body is not a JSON object", status=400)
    event_type = str(payload.get("event_type", ""))
    resource_id = str(payload.get("resource_id", ""))
    status = str(payload.get("status", ""))
    if not event_type or not resource_id:
        return _refuse("event_type and resource_id are required", status=400)
    event_id = request.headers.get(EVENT_ID_HEADER, "") or signature
    at = _event_time(request, sent)
    try:
        with transaction.atomic():
            ProlificHookDelivery.objects.create(
                event_id=event_id[:128],
                event_type=event_type[:100],
                resource_id=resource_id[:64],
                status=status[:32],
            )
            outcome = _apply(event_type, resource_id, status, payload, at)
    except IntegrityError:
        return JsonResponse({"detail": "already applied"})
    return JsonResponse({"detail": outcome})


def _apply(
    event_type: str, resource_id: str, status: str, payload: dict[str, Any], at: datetime
) -> str:
    if event_type == SUBMISSION_EVENT and status:
        applied = submission_status_apply(
            submission_id=resource_id,
            participant_id=str(payload.get("participant_id") or ""),
            status=status,
            source="hook",
            at=at,
        )
        if applied.submission is None:
            logger.info("Prolific hook for submission %s of no study here", resource_id)
            return "no study here has this submission"
        return "released" if applied.released else "recorded"
    if event_type == STUDY_EVENT and status:
        study = Study.objects.filter(prolific_study_id=resource_id).first()
        if study is None:
            return "no study here has this Prolific id"
        Study.objects.filter(pk=study.pk).update(prolific_status=status)
        followed = study_status_follow_prolific(study=study, prolific_status=status)
        return f"study now {followed}" if followed else "recorded"
    return "ignored"
