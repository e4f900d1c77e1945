"""A fake Prolific API (v1) server for tests: a plain WSGI app with in-memory state.

It follows the distilled OpenAPI facts (/tmp/prolific/api_facts.md at the time of writing):
field names, required fields, enums, status transitions and status codes. Requests are
validated strictly (unknown fields, missing required fields, wrong types and enum values
answer 400) so that a client bug shows up here rather than on the real platform. Errors use
Prolific's body ``{"error": {"status", "error_code", "title", "detail"}}`` where ``detail``
maps a field (dotted for nested ones, e.g. ``completion_codes[0].code_type``) to messages.

Choices made where the facts say UNCONFIRMED (each repeated where it applies):
- error_code numbers are made up: ``status * 100`` (e.g. 40000 for a 400).
- a transition not allowed from the study's (or submission's) status answers 400.
- the study fields a PUBLISH needs are the ones the facts suggest; nothing is required at create.
- a listing page beyond the last (page > 1) answers 404 "Invalid page.", as Django REST
  framework's page-number pagination does.
- the demographic export answers 200 text/csv at once (not asynchronously), with the header
  names in ``EXPORT_COLUMNS`` (spellings the project's importer reads).
- a subscription's response body is a SubscriptionDetail object.
- the bonus-pay answer string and the cost/fee rates are made up (see the constants).
- a study status change sends no webhook (only submission status changes do).

The fake is also Prolific's side of a study run: ``participant_arrive`` and its siblings
change submissions as people taking the study would, and every submission status change is
delivered, signed, to ``hook_sink`` when one is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard
from urllib.parse import parse_qs, urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

API = "/api/v1/"

# ---- the enums and field lists, from the facts ------------------------------------------

STUDY_STATUSES = (
    "UNPUBLISHED",
    "SCHEDULED",
    "PUBLISHING",
    "ACTIVE",
    "AWAITING REVIEW",
    "PAUSED",
    "COMPLETED",
)
# (current status, action) -> new status
STUDY_TRANSITIONS: dict[tuple[str, str], str] = {
    ("UNPUBLISHED", "PUBLISH"): "ACTIVE",
    ("UNPUBLISHED", "SCHEDULE_PUBLISH"): "SCHEDULED",
    ("SCHEDULED", "CANCEL_PUBLISH"): "UNPUBLISHED",
    ("ACTIVE", "PAUSE"): "PAUSED",
    ("ACTIVE", "STOP"): "COMPLETED",
    ("PAUSED", "START"): "ACTIVE",
    ("PAUSED", "STOP"): "COMPLETED",
}
STUDY_ACTIONS = ("PUBLISH", "SCHEDULE_PUBLISH", "CANCEL_PUBLISH", "PAUSE", "START", "STOP")
# What a PUBLISH needs (a suggestion of the facts, not a documented rule).
PUBLISH_NEEDS = (
    "name",
    "description",
    "external_study_url",
    "completion_codes",
    "total_available_places",
    "estimated_completion_time",
    "reward",
)

CODE_TYPES = (
    "COMPLETED",
    "FAILED_ATTENTION_CHECK",
    "FOLLOW_UP_STUDY",
    "GIVE_BONUS",
    "INCOMPATIBLE_DEVICE",
    "NO_CONSENT",
    "OTHER",
    "FIXED_SCREENOUT",
)
# action -> (required extra keys, optional extra keys)
CODE_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "AUTOMATICALLY_APPROVE": ((), ()),
    "MANUALLY_REVIEW": ((), ()),
    "ADD_TO_PARTICIPANT_GROUP": (("participant_group",), ()),
    "REMOVE_FROM_PARTICIPANT_GROUP": (("participant_group",), ()),
    "REQUEST_RETURN": ((), ("return_reason",)),
    "DYNAMIC_PAYMENT": ((), ()),
    "FIXED_SCREEN_OUT_PAYMENT": (("fixed_screen_out_reward", "slots"), ()),
}
ACTORS = ("participant", "researcher")
PROLIFIC_ID_OPTIONS = ("question", "url_parameters", "not_required")
DEVICES = ("desktop", "tablet", "mobile")
PERIPHERALS = ("audio", "camera", "download", "microphone")
STUDY_LABELS = (
    "survey",
    "writing_task",
    "annotation",
    "decision_making_task",
    "interview",
    "other",
    "ai_annotation",
    "ai_evaluation",
    "ai_reasoning",
    "ai_fact_checking",
    "ai_safety",
    "ai_data_creation_text",
    "ai_data_creation_audio",
    "ai_data_creation_video",
    "ai_data_creation_images",
    "ai_other",
)
CONTENT_WARNINGS = ("sensitive", "explicit")
DATA_COLLECTION_METHODS = ("AI_TASK_BUILDER_BATCH", "AI_TASK_BUILDER_COLLECTION")
AUTO_REJECTION_CATEGORIES = ("EXCEPTIONALLY_FAST",)

SUBMISSION_STATUSES = (
    "RESERVED",
    "ACTIVE",
    "TIMED-OUT",
    "AWAITING REVIEW",
    "APPROVED",
    "RETURNED",
    "REJECTED",
    "SCREENED OUT",
    "PARTIALLY APPROVED",
)
# Statuses that free the place again.
PLACE_FREED = ("RETURNED", "TIMED-OUT", "REJECTED")
SUBMISSION_ACTIONS = (
    "APPROVE",
    "COMPLETE",
    "REJECT",
    "RETURN",
    "START",
    "SCREEN_OUT",
    "UNREJECT",
    "UNRETURN",
)
REJECTION_CATEGORIES = (
    "TOO_QUICKLY",
    "TOO_SLOWLY",
    "FAILED_INSTRUCTIONS",
    "INCOMP_LONGITUDINAL",
    "FAILED_CHECK",
    "LOW_EFFORT",
    "MALINGERING",
    "NO_CODE",
    "BAD_CODE",
    "NO_DATA",
    "UNSUPP_DEVICE",
    "OTHER",
)
REJECT_MESSAGE_MIN = 100
HOOK_EVENT_TYPES = (
    "submission.status.change",
    "study.status.change",
    "study.progress.change",
    "study.has_high_return_rate",
)

# Made-up money rates (the real ones depend on the account): the cost calculator charges
# 40 % on top of the rewards (fees and VAT together); a bonus batch 33 % fees plus 20 % VAT
# on the fees.
COST_RATE = Decimal("1.4")
BONUS_FEE_RATE = Decimal("0.33")
VAT_RATE = Decimal("0.2")
BULK_APPROVE_ANSWER = "Bulk approve in progress"
BONUS_PAY_ANSWER = "Bonus payments are being processed"  # the real string is UNCONFIRMED

# The demographic export's header: the SPEC's columns 1 to 15, named as the project's
# importer (studyapp/demographics.py) reads them; the real header strings are UNCONFIRMED.
EXPORT_COLUMNS = (
    "Submission id",
    "Participant id",
    "Status",
    "Started at",
    "Completed at",
    "Time taken",
    "Age",
    "Sex",
    "Ethnicity simplified",
    "Language",
    "Country of residence",
    "Nationality",
    "Country of birth",
    "Student status",
    "Employment status",
)
# fake.demographics[pid] keys (either these or the column names above) per column.
DEMOGRAPHIC_KEYS = {
    "Age": "age",
    "Sex": "sex",
    "Ethnicity simplified": "ethnicity",
    "Language": "language",
    "Country of residence": "country",
    "Nationality": "nationality",
    "Country of birth": "country_of_birth",
    "Student status": "student_status",
    "Employment status": "employment_status",
}
UNANSWERED = "DATA_EXPIRED"

TITLES = {
    400: "Invalid request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    429: "Too many requests",
}
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Json = Any
Detail = str | list[str] | dict[str, list[str]]
HookSink = Callable[[bytes, dict[str, str]], int]


class FakeProlificError(ValueError):
    """A simulated participant did something Prolific would not let them do."""


class ApiError(Exception):
    """An error answer in Prolific's shape."""

    def __init__(self, status: int, detail: Detail, title: str | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.title = title or TITLES.get(status, REASONS.get(status, "Error"))


def error_body(status: int, detail: Detail, title: str | None = None) -> dict[str, Any]:
    """Prolific's error body; ``error_code`` is made up (``status * 100``, UNCONFIRMED)."""
    return {
        "error": {
            "status": status,
            "error_code": status * 100,
            "title": title or TITLES.get(status, REASONS.get(status, "Error")),
            "detail": detail,
            "additional_information": None,
            "traceback": None,
            "interactive": None,
        }
    }


def new_id() -> str:
    """A Prolific-looking id: 24 hex characters."""
    return secrets.token_hex(12)


def iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def signed_delivery(
    payload: dict[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
    event_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A webhook delivery as Prolific sends it: the body and its headers.

    The signature is base64(HMAC-SHA256(secret, timestamp + body)), the body serialised
    with ``json.dumps`` defaults so a receiver that re-dumps the parsed body gets the same
    bytes as one that signs the raw body.
    """
    body_text = json.dumps(payload)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), (stamp + body_text).encode(), hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Prolific-Request-Timestamp": stamp,
        "X-Prolific-Request-Signature": base64.b64encode(digest).decode(),
        "X-Event-ID": event_id or uuid.uuid4().hex,
        "X-Timestamp": stamp,
    }
    return body_text.encode(), headers


# ---- validation -----------------------------------------------------------------------

Errors = dict[str, list[str]]
Checker = Callable[[Any, str, Errors], None]


def _add(errors: Errors, where: str, message: str) -> None:
    errors.setdefault(where, []).append(message)


def _is_int(value: Any) -> TypeGuard[int | float]:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _keys(
    obj: dict[str, Any],
    where: str,
    errors: Errors,
    *,
    allowed: tuple[str, ...],
    required: tuple[str, ...] = (),
) -> None:
    prefix = f"{where}." if where else ""
    for key in obj:
        if key not in allowed:
            _add(errors, f"{prefix}{key}", "Unknown field.")
    for key in required:
        if key not in obj:
            _add(errors, f"{prefix}{key}", "This field is required.")
        elif obj[key] is None:
            _add(errors, f"{prefix}{key}", "This field may not be null.")


def _string(nonempty: bool = False) -> Checker:
    def check(value: Any, where: str, errors: Errors) -> None:
        if not isinstance(value, str):
            _add(errors, where, "Not a valid string.")
        elif nonempty and not value.strip():
            _add(errors, where, "This field may not be blank.")

    return check


def _positive_int(value: Any, where: str, errors: Errors) -> None:
    if not _is_int(value):
        _add(errors, where, "A valid integer is required.")
    elif value <= 0:
        _add(errors, where, "Ensure this value is greater than 0.")


def _integer(value: Any, where: str, errors: Errors) -> None:
    if not _is_int(value):
        _add(errors, where, "A valid integer is required.")


def _number(value: Any, where: str, errors: Errors) -> None:
    if not _is_number(value):
        _add(errors, where, "A valid number is required.")


def _boolean(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, bool):
        _add(errors, where, "Must be a valid boolean.")


def _object(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, dict):
        _add(errors, where, "Expected an object.")


def _choice(choices: tuple[str, ...]) -> Checker:
    def check(value: Any, where: str, errors: Errors) -> None:
        if not isinstance(value, str) or value not in choices:
            _add(errors, where, f'"{value}" is not a valid choice ({", ".join(choices)}).')

    return check


def _choices(choices: tuple[str, ...]) -> Checker:
    one = _choice(choices)

    def check(value: Any, where: str, errors: Errors) -> None:
        if not isinstance(value, list):
            _add(errors, where, "Expected a list of items.")
            return
        for index, item in enumerate(value):
            one(item, f"{where}[{index}]", errors)

    return check


def _datetime_text(value: Any, where: str, errors: Errors) -> None:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        _add(errors, where, "Datetime has wrong format; use ISO 8601.")
    if not isinstance(value, str):
        _add(errors, where, "Not a valid string.")


def _http_url(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, str):
        _add(errors, where, "Not a valid string.")
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        _add(errors, where, "Enter a valid URL (http or https).")


def _completion_codes(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, list):
        _add(errors, where, "Expected a list of items.")
        return
    seen: set[str] = set()
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            _add(errors, at, "Expected an object.")
            continue
        _keys(
            item,
            at,
            errors,
            allowed=("code", "code_type", "actor", "actions"),
            required=("code_type", "actions"),
        )
        if "code" not in item:
            _add(errors, f"{at}.code", "This field is required.")
        code = item.get("code")
        actions = item.get("actions")
        if code is None:
            if "code" in item and (item.get("actor") != "participant" or actions):
                _add(
                    errors,
                    f"{at}.code",
                    "May be null only for a participant code with no actions.",
                )
        elif not isinstance(code, str) or not code:
            _add(errors, f"{at}.code", "Not a valid string.")
        elif code in seen:
            _add(errors, f"{at}.code", f'The code "{code}" is used twice in this study.')
        else:
            seen.add(code)
        # The SPEC also says "any other free text" may be a code_type; the fake accepts only
        # the documented enum so that a typo in our code shows up in tests.
        if item.get("code_type") is not None:
            _choice(CODE_TYPES)(item["code_type"], f"{at}.code_type", errors)
        if item.get("actor") is not None:
            _choice(ACTORS)(item["actor"], f"{at}.actor", errors)
        if actions is not None:
            _code_actions(actions, f"{at}.actions", errors)


def _code_actions(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, list):
        _add(errors, where, "Expected a list of items.")
        return
    names: list[str] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            _add(errors, at, "Expected an object.")
            continue
        action = item.get("action")
        if action not in CODE_ACTIONS:
            _keys(item, at, errors, allowed=("action",), required=("action",))
            if action is not None:
                _choice(tuple(CODE_ACTIONS))(action, f"{at}.action", errors)
            continue
        names.append(action)
        required, optional = CODE_ACTIONS[action]
        _keys(item, at, errors, allowed=("action", *required, *optional), required=required)
        for key in ("fixed_screen_out_reward", "slots"):
            if item.get(key) is not None:
                _positive_int(item[key], f"{at}.{key}", errors)
        for key in ("participant_group", "return_reason"):
            if item.get(key) is not None:
                _string(nonempty=True)(item[key], f"{at}.{key}", errors)
    if "AUTOMATICALLY_APPROVE" in names and "MANUALLY_REVIEW" in names:
        _add(errors, where, "AUTOMATICALLY_APPROVE and MANUALLY_REVIEW cannot be combined.")


def _bound(value: Any) -> bool:
    if _is_number(value):
        return True
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _filters(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, list):
        _add(errors, where, "Expected a list of items.")
        return
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            _add(errors, at, "Expected an object.")
            continue
        if "selected_range" in item and "selected_values" not in item:
            _keys(
                item,
                at,
                errors,
                allowed=("filter_id", "selected_range", "weightings"),
                required=("filter_id", "selected_range"),
            )
            rng = item.get("selected_range")
            if isinstance(rng, dict):
                _keys(rng, f"{at}.selected_range", errors, allowed=("lower", "upper"))
                bounds = [rng.get("lower"), rng.get("upper")]
                if all(bound is None for bound in bounds):
                    _add(errors, f"{at}.selected_range", "Give a lower or an upper bound.")
                for name, bound in zip(("lower", "upper"), bounds, strict=True):
                    if bound is not None and not _bound(bound):
                        _add(errors, f"{at}.selected_range.{name}", "Not a number or a date.")
            elif rng is not None:
                _add(errors, f"{at}.selected_range", "Expected an object.")
        else:
            _keys(
                item,
                at,
                errors,
                allowed=("filter_id", "selected_values", "weightings"),
                required=("filter_id", "selected_values"),
            )
            chosen = item.get("selected_values")
            if chosen is not None and not (
                isinstance(chosen, list) and all(isinstance(v, str) for v in chosen)
            ):
                _add(errors, f"{at}.selected_values", "Expected a list of strings.")
        if item.get("filter_id") is not None:
            _string(nonempty=True)(item["filter_id"], f"{at}.filter_id", errors)
        weightings = item.get("weightings")
        if weightings is not None and not (
            isinstance(weightings, dict) and all(_is_number(w) for w in weightings.values())
        ):
            _add(errors, f"{at}.weightings", "Expected an object of numbers.")


def _submissions_config(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, dict):
        _add(errors, where, "Expected an object.")
        return
    _keys(
        value,
        where,
        errors,
        allowed=(
            "max_submissions_per_participant",
            "max_concurrent_submissions",
            "auto_rejection_categories",
        ),
    )
    for key in ("max_submissions_per_participant", "max_concurrent_submissions"):
        number = value.get(key)
        if number is not None and not (_is_int(number) and (number >= 1 or number == -1)):
            _add(errors, f"{where}.{key}", "Must be a positive integer or -1 (unlimited).")
    if value.get("auto_rejection_categories") is not None:
        _choices(AUTO_REJECTION_CATEGORIES)(
            value["auto_rejection_categories"], f"{where}.auto_rejection_categories", errors
        )


def _access_details(value: Any, where: str, errors: Errors) -> None:
    if not isinstance(value, list):
        _add(errors, where, "Expected a list of items.")
        return
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            _add(errors, at, "Expected an object.")
            continue
        _keys(
            item,
            at,
            errors,
            allowed=("external_url", "total_allocation"),
            required=("external_url", "total_allocation"),
        )
        if item.get("external_url") is not None:
            _http_url(item["external_url"], f"{at}.external_url", errors)
        if item.get("total_allocation") is not None:
            _positive_int(item["total_allocation"], f"{at}.total_allocation", errors)


# BaseStudy (all nullable: a checker runs only on a value that is not null), plus the legacy
# completion_code / completion_option, which are accepted and ignored.
STUDY_FIELDS: dict[str, Checker] = {
    "name": _string(),
    "internal_name": _string(),
    "description": _string(),
    "external_study_url": _http_url,
    "prolific_id_option": _choice(PROLIFIC_ID_OPTIONS),
    "completion_codes": _completion_codes,
    "total_available_places": _positive_int,
    "estimated_completion_time": _positive_int,
    "maximum_allowed_time": _positive_int,
    "reward": _positive_int,
    "device_compatibility": _choices(DEVICES),
    "peripheral_requirements": _choices(PERIPHERALS),
    "filters": _filters,
    "filter_set_id": _string(nonempty=True),
    "filter_set_version": _integer,
    "naivety_distribution_rate": _number,
    "project": _string(nonempty=True),
    "submissions_config": _submissions_config,
    "study_labels": _choices(STUDY_LABELS),
    "content_warnings": _choices(CONTENT_WARNINGS),
    "content_warning_details": _string(),
    "metadata": _string(),
    "credential_pool_id": _string(),
    "has_credentials": _boolean,
    "data_collection_method": _choice(DATA_COLLECTION_METHODS),
    "data_collection_id": _string(),
    "data_collection_metadata": _object,
    "access_details": _access_details,
    "is_external_study_url_secure": _boolean,
    "publish_at": _datetime_text,
    "completion_code": _string(),
    "completion_option": _choice(("url", "code")),
}


def study_errors(body: dict[str, Any]) -> Errors:
    errors: Errors = {}
    _keys(body, "", errors, allowed=tuple(STUDY_FIELDS))
    for name, check in STUDY_FIELDS.items():
        if body.get(name) is not None:
            check(body[name], name, errors)
    if body.get("filters") and body.get("filter_set_id") is not None:
        # `filters: []` means "everyone" and is taken as no filters.
        _add(errors, "filter_set_id", "filters and filter_set_id cannot be combined.")
    est, longest = body.get("estimated_completion_time"), body.get("maximum_allowed_time")
    if _is_int(est) and _is_int(longest) and est > 0 and longest > 0:
        least = 2 + 2 * est + 2 * math.sqrt(est)
        if longest < least:
            _add(errors, "maximum_allowed_time", f"Must be at least {math.ceil(least)} minutes.")
    return errors


def _raise_if(errors: Errors) -> None:
    if errors:
        raise ApiError(400, errors)


# ---- fault injection ------------------------------------------------------------------


@dataclass
class Fault:
    method: str
    path_prefix: str
    status: int
    times: int
    retry_after: str | None = None
    body: Any = None

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and path.startswith(self.path_prefix)


@dataclass
class Delay:
    method: str
    path_prefix: str
    seconds: float

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and path.startswith(self.path_prefix)


def _prefix(path_prefix: str) -> str:
    return path_prefix if path_prefix.startswith("/") else f"/{path_prefix}"


@dataclass
class Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


def json_answer(status: int, data: Any, headers: dict[str, str] | None = None) -> Answer:
    extra = list((headers or {}).items())
    return Answer(status, json.dumps(data).encode(), [("Content-Type", "application/json"), *extra])


# ---- the fake -------------------------------------------------------------------------


class FakeProlific:
    """Prolific's API and its participants, in memory; a WSGI app (``serve`` runs it)."""

    def __init__(self) -> None:
        self.tokens: set[str] = {"test-token"}
        self.base_url = ""  # set by serve()
        self.studies: dict[str, dict[str, Any]] = {}
        self.submissions: dict[str, dict[str, Any]] = {}
        self.bonuses: dict[str, dict[str, Any]] = {}
        self.payments: list[dict[str, Any]] = []
        self.demographics: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.next_links = True
        # scheme://host for next links instead of the request's own (to test a foreign host)
        self.link_base: str | None = None
        self.user: dict[str, Any] = {
            "id": new_id(),
            "email": "researcher@example.org",
            "first_name": "Test",
            "last_name": "Researcher",
            "name": "Test Researcher",
            "username": "researcher@example.org",
            "user_type": "researcher",
            "currency_code": "GBP",
            "balance": 100_000,
            "available_balance": 100_000,
        }
        # webhooks: the workspace's signing secret, the receiver, what was delivered
        self.hook_secret = secrets.token_urlsafe(32)
        self.hook_sink: HookSink | None = None
        self.deliveries: list[tuple[bytes, dict[str, str], int]] = []
        # True: changes made by API requests queue their deliveries in pending_hooks until
        # deliver_hooks() (so a Django sink runs on the test's thread, not the server's).
        self.defer_api_hooks = False
        self.pending_hooks: list[dict[str, Any]] = []
        self.hook_secrets: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._last_tick: datetime | None = None
        self._faults: list[Fault] = []
        self._delays: list[Delay] = []
        self._lock = threading.RLock()
        self._local = threading.local()

    # ---- test controls ------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int,
        times: int = 1,
        retry_after: str | int | float | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (``method`` may be
        "*"); ``body`` replaces the Prolific error body; ``retry_after`` adds that header."""
        with self._lock:
            self._faults.append(
                Fault(
                    method.upper(),
                    _prefix(path_prefix),
                    status,
                    times,
                    None if retry_after is None else str(retry_after),
                    body,
                )
            )

    def delay_next(self, method: str, path_prefix: str, seconds: float) -> None:
        """Sleep ``seconds`` before answering the next matching request (then act as usual)."""
        with self._lock:
            self._delays.append(Delay(method.upper(), _prefix(path_prefix), seconds))

    def now(self) -> datetime:
        """The clock, strictly increasing so that submissions sort in creation order."""
        with self._lock:
            now = self.clock()
            if self._last_tick is not None and now <= self._last_tick:
                now = self._last_tick + timedelta(microseconds=1)
            self._last_tick = now
            return now

    def add_study(self, **fields: Any) -> str:
        """A study straight into the store (no validation), e.g. ``status="ACTIVE"``."""
        with self._lock:
            study_id = new_id()
            self.studies[study_id] = {
                **fields,
                "id": study_id,
                "status": fields.get("status", "UNPUBLISHED"),
                "date_created": self.now(),
                "published_at": None,
            }
            return study_id

    def submissions_of(self, study_id: str) -> list[dict[str, Any]]:
        """A study's submissions in started_at order (the stored dicts)."""
        with self._lock:
            return sorted(
                (s for s in self.submissions.values() if s["study_id"] == study_id),
                key=lambda s: (s["started_at"], s["id"]),
            )

    def paid_total(self) -> Decimal:
        """Everything paid as bonuses so far, in major units."""
        return sum(
            (amount for payment in self.payments for _, amount in payment["lines"]), Decimal(0)
        )

    # ---- simulated participants ---------------------------------------------------------

    def participant_arrive(
        self, study_id: str, participant_id: str | None = None
    ) -> tuple[str, str]:
        """A participant starts the study: an ACTIVE submission and the URL they are sent to."""
        with self._lock:
            study = self.studies.get(study_id)
            if study is None:
                raise FakeProlificError(f"no study {study_id}")
            if study["status"] != "ACTIVE":
                raise FakeProlificError(f"study {study_id} is {study['status']}, not ACTIVE")
            if self._places_taken(study_id) >= int(study.get("total_available_places") or 0):
                raise FakeProlificError(f"study {study_id} has no place left")
            pid = participant_id or new_id()
            config = study.get("submissions_config") or {}
            most = config.get("max_submissions_per_participant") or 1
            earlier = [
                s
                for s in self.submissions.values()
                if s["study_id"] == study_id and s["participant_id"] == pid
            ]
            if most != -1 and len(earlier) >= most:
                raise FakeProlificError(f"participant {pid} has already taken study {study_id}")
            submission_id = new_id()
            self.submissions[submission_id] = {
                "id": submission_id,
                "study_id": study_id,
                "participant_id": pid,
                "status": "RESERVED",
                "started_at": self.now(),
                "completed_at": None,
                "study_code": None,
                "return_requested": None,
            }
            self._set_status(submission_id, "ACTIVE")
            url = str(study.get("external_study_url") or "")
            for name, value in (
                ("PROLIFIC_PID", pid),
                ("STUDY_ID", study_id),
                ("SESSION_ID", submission_id),
            ):
                url = url.replace("{{%" + name + "%}}", value)
        self._send_hooks()
        return submission_id, url

    def participant_complete(self, submission_id: str, code: str) -> str:
        """The participant enters ``code``: AWAITING REVIEW, or APPROVED when the code's
        actions approve automatically (a code the study lacks: AWAITING REVIEW, for the
        researcher to judge). Returns the new status."""
        with self._lock:
            submission = self._submission_for_participant(submission_id, ("ACTIVE",))
            study = self.studies[submission["study_id"]]
            actions: list[str] = []
            for item in study.get("completion_codes") or []:
                if item.get("code") == code:
                    actions = [a.get("action") for a in item.get("actions") or []]
            submission["completed_at"] = self.now()
            submission["study_code"] = code
            status = "APPROVED" if "AUTOMATICALLY_APPROVE" in actions else "AWAITING REVIEW"
            self._set_status(submission_id, status)
        self._send_hooks()
        return status

    def participant_return(self, submission_id: str) -> None:
        with self._lock:
            self._submission_for_participant(submission_id, ("ACTIVE", "AWAITING REVIEW"))
            self._set_status(submission_id, "RETURNED")
        self._send_hooks()

    def participant_time_out(self, submission_id: str) -> None:
        with self._lock:
            self._submission_for_participant(submission_id, ("ACTIVE",))
            self._set_status(submission_id, "TIMED-OUT")
        self._send_hooks()

    def _submission_for_participant(
        self, submission_id: str, allowed: tuple[str, ...]
    ) -> dict[str, Any]:
        submission = self.submissions.get(submission_id)
        if submission is None:
            raise FakeProlificError(f"no submission {submission_id}")
        if submission["status"] not in allowed:
            raise FakeProlificError(
                f"submission {submission_id} is {submission['status']}, not {' or '.join(allowed)}"
            )
        return submission

    def _places_taken(self, study_id: str) -> int:
        return sum(
            1
            for s in self.submissions.values()
            if s["study_id"] == study_id and s["status"] not in PLACE_FREED
        )

    # ---- webhooks out -------------------------------------------------------------------

    def _set_status(self, submission_id: str, status: str) -> None:
        submission = self.submissions[submission_id]
        submission["status"] = status
        payload = {
            "resource_id": submission_id,
            "event_type": "submission.status.change",
            "participant_id": submission["participant_id"],
            "status": status,
        }
        if getattr(self._local, "in_request", False) and self.defer_api_hooks:
            self.pending_hooks.append(payload)
        else:
            self._outbox().append(payload)

    def _outbox(self) -> list[dict[str, Any]]:
        box: list[dict[str, Any]] | None = getattr(self._local, "outbox", None)
        if box is None:
            box = []
            self._local.outbox = box
        return box

    def _send_hooks(self) -> None:
        """Deliver this thread's queued events (outside the lock)."""
        box = self._outbox()
        payloads, box[:] = list(box), []
        for payload in payloads:
            self._deliver(payload)

    def deliver_hooks(self) -> int:
        """Deliver the deliveries ``defer_api_hooks`` held back; how many were sent."""
        with self._lock:
            payloads, self.pending_hooks = self.pending_hooks, []
        for payload in payloads:
            self._deliver(payload)
        return len(payloads)

    def _deliver(self, payload: dict[str, Any]) -> None:
        sink = self.hook_sink
        if sink is None:
            return
        body, headers = signed_delivery(payload, self.hook_secret)
        status = sink(body, headers)
        with self._lock:
            self.deliveries.append((body, headers, status))

    # ---- WSGI ---------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        answer = self._answer(environ)
        reason = REASONS.get(answer.status, "Unknown")
        headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
        start_response(f"{answer.status} {reason}", headers)
        return [answer.body]

    def _answer(self, environ: WSGIEnvironment) -> Answer:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "/"))
        query = {k: v[-1] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
        raw = _read_body(environ)
        body: Any = None
        body_error = ""
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                body_error = f"JSON parse error - {exc}"
        with self._lock:
            self.requests.append((method, path, query, body))
            delay = next((d for d in self._delays if d.matches(method, path)), None)
            if delay:
                self._delays.remove(delay)
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
        if delay:
            time.sleep(delay.seconds)
        if fault:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            data = (
                error_body(fault.status, "Injected failure.") if fault.body is None else fault.body
            )
            return json_answer(fault.status, data, headers)
        self._local.in_request = True
        try:
            self._authenticate(environ)
            if body_error:
                raise ApiError(400, body_error, "Invalid JSON")
            with self._lock:
                answer = self._route(method, path, query, body, environ)
        except ApiError as exc:
            answer = json_answer(exc.status, error_body(exc.status, exc.detail, exc.title))
        finally:
            self._local.in_request = False
        self._send_hooks()
        return answer

    def _authenticate(self, environ: WSGIEnvironment) -> None:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "Authentication credentials were not provided.")
        if scheme != "Token" or token.strip() not in self.tokens:
            raise ApiError(401, "Invalid token.")

    ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", r"users/me/", "_me"),
        ("POST", r"studies/", "_study_create"),
        ("GET", r"studies/(?P<id>[0-9a-f]{24})/", "_study_get"),
        ("POST", r"studies/(?P<id>[0-9a-f]{24})/transition/", "_study_transition"),
        ("POST", r"studies/(?P<id>[0-9a-f]{24})/demographic-export/", "_demographic_export"),
        ("POST", r"study-cost-calculator/", "_study_cost"),
        ("GET", r"submissions/", "_submissions"),
        ("POST", r"submissions/bulk-approve/", "_bulk_approve"),
        ("POST", r"submissions/bonus-payments/", "_bonus_setup"),
        ("POST", r"submissions/(?P<id>[0-9a-f]{24})/transition/", "_submission_transition"),
        ("POST", r"submissions/(?P<id>[0-9a-f]{24})/request-return/", "_request_return"),
        ("POST", r"bulk-bonus-payments/(?P<id>[0-9a-f]{24})/pay/", "_bonus_pay"),
        ("POST", r"hooks/secrets/", "_hook_secret"),
        ("GET", r"hooks/secrets/", "_hook_secrets"),
        ("POST", r"hooks/subscriptions/", "_subscription_create"),
        ("POST", r"hooks/subscriptions/(?P<id>[0-9a-f]{24})/", "_subscription_confirm"),
    )

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        environ: WSGIEnvironment,
    ) -> Answer:
        allowed: list[str] = []
        if path.startswith(API):
            rest = path[len(API) :]
            for route_method, pattern, handler in self.ROUTES:
                found = re.fullmatch(pattern, rest)
                if not found:
                    continue
                if route_method != method:
                    allowed.append(route_method)
                    continue
                request = Request(method, path, query, body, environ, found.groupdict())
                answer: Answer = getattr(self, handler)(request)
                return answer
        if allowed:
            raise ApiError(405, f'Method "{method}" not allowed.')
        raise ApiError(404, "Not found.")

    # ---- endpoints ----------------------------------------------------------------------

    def _me(self, request: Request) -> Answer:
        return json_answer(200, self.user)

    def _study(self, study_id: str) -> dict[str, Any]:
        study = self.studies.get(study_id)
        if study is None:
            raise ApiError(404, "No Study matches the given query.")
        return study

    def _study_json(self, study: dict[str, Any]) -> dict[str, Any]:
        data = {name: study.get(name) for name in STUDY_FIELDS}
        reward, places = study.get("reward"), study.get("total_available_places")
        cost = (
            float(Decimal(reward) * Decimal(places) * COST_RATE)
            if _is_int(reward) and _is_int(places)
            else None
        )
        data.update(
            id=study["id"],
            status=study["status"],
            is_ready_to_publish=not _publish_missing(study),
            date_created=iso(study.get("date_created")),
            published_at=iso(study.get("published_at")),
            places_taken=self._places_taken(study["id"]),
            number_of_submissions=sum(
                1 for s in self.submissions.values() if s["study_id"] == study["id"]
            ),
            total_cost=cost,
            currency_code="GBP",
            presentment_currency_code="GBP",
            study_type="SINGLE",
            is_pilot=False,
            researcher={"id": self.user["id"], "name": self.user["name"]},
        )
        return data

    def _study_create(self, request: Request) -> Answer:
        body = request.object()
        _raise_if(study_errors(body))
        study_id = new_id()
        self.studies[study_id] = {
            **body,
            "id": study_id,
            "status": "UNPUBLISHED",
            "date_created": self.now(),
            "published_at": None,
        }
        return json_answer(201, self._study_json(self.studies[study_id]))

    def _study_get(self, request: Request) -> Answer:
        return json_answer(200, self._study_json(self._study(request.args["id"])))

    def _study_transition(self, request: Request) -> Answer:
        study = self._study(request.args["id"])
        body = request.object()
        errors: Errors = {}
        _keys(body, "", errors, allowed=("action", "publish_at"), required=("action",))
        if body.get("action") is not None:
            _choice(STUDY_ACTIONS)(body["action"], "action", errors)
        if body.get("publish_at") is not None:
            _datetime_text(body["publish_at"], "publish_at", errors)
        _raise_if(errors)
        action = body["action"]
        target = STUDY_TRANSITIONS.get((study["status"], action))
        if target is None:
            # The code for a disallowed transition is UNCONFIRMED; 400 is the likely one.
            raise ApiError(
                400,
                {"action": [f"Cannot {action} a study that is {study['status']}."]},
                "Invalid transition",
            )
        if action in ("PUBLISH", "SCHEDULE_PUBLISH"):
            missing = _publish_missing(study)
            _raise_if({name: ["This field is required to publish."] for name in missing})
        if action == "SCHEDULE_PUBLISH":
            when = body.get("publish_at") or study.get("publish_at")
            if not when:
                _raise_if({"publish_at": ["Give publish_at to schedule a publish."]})
            study["publish_at"] = when
        study["status"] = target
        if action == "PUBLISH":
            study["published_at"] = self.now()
        return json_answer(200, self._study_json(study))

    def _study_cost(self, request: Request) -> Answer:
        body = request.object()
        errors: Errors = {}
        required = ("reward", "total_available_places")
        _keys(body, "", errors, allowed=required, required=required)
        for name in required:
            if body.get(name) is not None:
                _positive_int(body[name], name, errors)
        _raise_if(errors)
        total = Decimal(int(body["reward"])) * Decimal(int(body["total_available_places"]))
        return json_answer(200, {"total_cost": float(total * COST_RATE)})

    def _submission_short(self, submission: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": submission["id"],
            "participant_id": submission["participant_id"],
            "status": submission["status"],
            "started_at": iso(submission["started_at"]),
            "completed_at": iso(submission["completed_at"]),
            "has_siblings": False,
            "study_code": submission["study_code"],
            "return_requested": iso(submission["return_requested"]),
        }

    def _submission_full(self, submission: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": submission["id"],
            "completed_at": iso(submission["completed_at"]),
            "entered_code": submission["study_code"],
            "participant": submission["participant_id"],
            "started_at": iso(submission["started_at"]),
            "status": submission["status"],
            "study_id": submission["study_id"],
        }

    def _submissions(self, request: Request) -> Answer:
        query = request.query
        errors: Errors = {}
        if not query.get("study"):
            _add(errors, "study", "This field is required.")
        page = _query_int(query, "page", 1, errors)
        size = _query_int(query, "page_size", 20, errors)
        if size is not None and size > 1000:
            _add(errors, "page_size", "Ensure this value is at most 1000.")
        _raise_if(errors)
        assert page is not None
        assert size is not None
        self._study(query["study"])
        rows = sorted(
            (s for s in self.submissions.values() if s["study_id"] == query["study"]),
            key=lambda s: (s["started_at"], s["id"]),
        )
        wanted = query.get("status", "").upper().replace("_", " ")
        if wanted:
            rows = [s for s in rows if s["status"] == wanted]
        last = max(1, math.ceil(len(rows) / size))
        if page > last:
            # Django REST framework's page-number pagination (UNCONFIRMED for Prolific).
            raise ApiError(404, "Invalid page.")
        chunk = rows[(page - 1) * size : page * size]
        base = self.link_base or request.host_url()

        def href(number: int) -> str:
            return f"{base}{request.path}?{urlencode({**query, 'page': number})}"

        links = {
            "self": {"href": href(page), "title": "Current page"},
            "next": {
                "href": href(page + 1) if self.next_links and page < last else None,
                "title": "Next page",
            },
            "previous": {"href": href(page - 1) if page > 1 else None, "title": "Previous page"},
            "last": {"href": href(last), "title": "Last page"},
        }
        return json_answer(
            200,
            {
                "results": [self._submission_short(s) for s in chunk],
                "_links": links,
                "meta": {"count": len(rows)},
            },
        )

    def _submission(self, submission_id: str) -> dict[str, Any]:
        submission = self.submissions.get(submission_id)
        if submission is None:
            raise ApiError(404, "No Submission matches the given query.")
        return submission

    def _submission_transition(self, request: Request) -> Answer:
        submission = self._submission(request.args["id"])
        body = request.object()
        errors: Errors = {}
        _keys(
            body,
            "",
            errors,
            allowed=(
                "action",
                "message",
                "rejection_category",
                "completion_code",
                "completion_code_data",
            ),
            required=("action",),
        )
        action = body.get("action")
        if action is not None:
            _choice(SUBMISSION_ACTIONS)(action, "action", errors)
        message = body.get("message")
        if message is not None:
            _string()(message, "message", errors)
        if action == "REJECT":
            if not isinstance(message, str) or len(message) < REJECT_MESSAGE_MIN:
                _add(errors, "message", "It must be at least 100 chars long.")
            if body.get("rejection_category") is None:
                _add(errors, "rejection_category", "This field is required.")
        if body.get("rejection_category") is not None:
            _choice(REJECTION_CATEGORIES)(body["rejection_category"], "rejection_category", errors)
        if action == "COMPLETE" and not body.get("completion_code"):
            _add(errors, "completion_code", "This field is required.")
        _raise_if(errors)
        status = submission["status"]
        if action in ("APPROVE", "REJECT"):
            done = "APPROVED" if action == "APPROVE" else "REJECTED"
            if status != done:  # the same action again is ignored (idempotent)
                if status != "AWAITING REVIEW":
                    raise ApiError(
                        400,
                        {"action": [f"Cannot {action} a submission that is {status}."]},
                        "Invalid transition",
                    )
                self._set_status(submission["id"], done)
        elif action == "COMPLETE":
            self._complete_by_researcher(submission, str(body["completion_code"]))
        else:
            raise ApiError(400, {"action": [f"The fake does not model {action}."]})
        return json_answer(200, self._submission_full(submission))

    def _complete_by_researcher(self, submission: dict[str, Any], code: str) -> None:
        study = self.studies[submission["study_id"]]
        item = next(
            (
                c
                for c in study.get("completion_codes") or []
                if c.get("code") == code and c.get("actor") == "researcher"
            ),
            None,
        )
        if item is None:
            _raise_if({"completion_code": ["Not a researcher completion code of this study."]})
            return
        if submission["status"] not in ("ACTIVE", "AWAITING REVIEW"):
            raise ApiError(400, {"action": [f"Cannot COMPLETE a {submission['status']} one."]})
        actions = [a.get("action") for a in item.get("actions") or []]
        submission["study_code"] = code
        submission["completed_at"] = submission["completed_at"] or self.now()
        status = "APPROVED" if "AUTOMATICALLY_APPROVE" in actions else "AWAITING REVIEW"
        if status != submission["status"]:
            self._set_status(submission["id"], status)

    def _bulk_approve(self, request: Request) -> Answer:
        body = request.object()
        errors: Errors = {}
        if "submission_ids" in body:
            _keys(body, "", errors, allowed=("submission_ids",), required=("submission_ids",))
            ids_field = "submission_ids"
        else:
            both = ("study_id", "participant_ids")
            _keys(body, "", errors, allowed=both, required=both)
            ids_field = "participant_ids"
            if body.get("study_id") is not None:
                _string(nonempty=True)(body["study_id"], "study_id", errors)
        ids = body.get(ids_field)
        if ids is not None and not (
            isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)
        ):
            _add(errors, ids_field, "Expected a non-empty list of strings.")
        _raise_if(errors)
        assert isinstance(ids, list)
        chosen: list[str] = []
        wrong: list[str] = []
        for given in ids:
            if ids_field == "submission_ids":
                found = self.submissions.get(given)
            else:
                found = next(
                    (
                        s
                        for s in self.submissions.values()
                        if s["study_id"] == body["study_id"]
                        and s["participant_id"] == given
                        and s["status"] == "AWAITING REVIEW"
                    ),
                    None,
                )
            if found is None or found["status"] != "AWAITING REVIEW":
                wrong.append(given)
            else:
                chosen.append(found["id"])
        if wrong:
            _raise_if({ids_field: [f"Not awaiting review: {', '.join(wrong)}."]})
        # Prolific approves in the background; the fake approves before answering.
        for submission_id in chosen:
            self._set_status(submission_id, "APPROVED")
        return json_answer(200, BULK_APPROVE_ANSWER)

    def _request_return(self, request: Request) -> Answer:
        submission = self._submission(request.args["id"])
        body = request.object()
        errors: Errors = {}
        name = "request_return_reasons"
        _keys(body, "", errors, allowed=(name,), required=(name,))
        reasons = body.get(name)
        if reasons is not None and not (
            isinstance(reasons, list)
            and reasons
            and all(isinstance(r, str) and r.strip() for r in reasons)
        ):
            _add(errors, name, "Expected a non-empty list of reasons (strings).")
        _raise_if(errors)
        if submission["status"] not in ("ACTIVE", "AWAITING REVIEW"):
            raise ApiError(
                400,
                {"submission": [f"Cannot request a return of a {submission['status']} one."]},
            )
        submission["return_requested"] = self.now()
        submission.setdefault("return_reasons", []).extend(reasons)
        return json_answer(
            200,
            {
                "id": submission["id"],
                "status": submission["status"],
                "participant": submission["participant_id"],
                "return_requested": iso(submission["return_requested"]),
            },
        )

    def _bonus_setup(self, request: Request) -> Answer:
        body = request.object()
        errors: Errors = {}
        both = ("study_id", "csv_bonuses")
        _keys(body, "", errors, allowed=both, required=both)
        for name in both:
            if body.get(name) is not None:
                _string(nonempty=True)(body[name], name, errors)
        _raise_if(errors)
        study_id = body["study_id"]
        if study_id not in self.studies:
            _raise_if({"study_id": [f"No study {study_id}."]})
        in_study = [s for s in self.submissions.values() if s["study_id"] == study_id]
        known = {s["id"] for s in in_study} | {s["participant_id"] for s in in_study}
        lines: list[tuple[str, Decimal]] = []
        unknown: list[str] = []
        for number, line in enumerate(str(body["csv_bonuses"]).splitlines(), start=1):
            if not line.strip():
                continue
            given, comma, amount_text = line.partition(",")
            given = given.strip()
            try:
                amount = Decimal(amount_text.strip())
            except InvalidOperation:
                amount = Decimal(-1)
            if not comma or not amount.is_finite() or amount <= 0 or amount != round(amount, 2):
                _add(errors, "csv_bonuses", f"line {number}: expected '<id>,<amount>': {line!r}")
            elif given not in known:
                unknown.append(given)
            else:
                lines.append((given, amount))
        if unknown:
            _add(
                errors,
                "csv_bonuses",
                f"These ids have not taken part in study {study_id}: {', '.join(unknown)}.",
            )
        if not lines and not errors:
            _add(errors, "csv_bonuses", "No bonuses given.")
        _raise_if(errors)
        cents = sum((amount for _, amount in lines), Decimal(0)) * 100
        fees = (cents * BONUS_FEE_RATE).quantize(Decimal("0.01"))
        vat = (fees * VAT_RATE).quantize(Decimal("0.01"))
        bonus_id = new_id()
        self.bonuses[bonus_id] = {
            "id": bonus_id,
            "study": study_id,
            "lines": lines,
            "amount": cents,
            "fees": fees,
            "vat": vat,
            "total_amount": cents + fees + vat,
        }
        money = {k: float(self.bonuses[bonus_id][k]) for k in ("amount", "fees", "vat")}
        total = float(self.bonuses[bonus_id]["total_amount"])
        return json_answer(201, {"id": bonus_id, "study": study_id, **money, "total_amount": total})

    def _bonus_pay(self, request: Request) -> Answer:
        bonus = self.bonuses.get(request.args["id"])
        if bonus is None:
            raise ApiError(404, "No bulk bonus payment matches the given query.")
        if request.body not in (None, {}):
            raise ApiError(400, {"body": ["This endpoint takes no body."]})
        # Not idempotent, as the real API: a repeat pays again.
        self.payments.append(
            {
                "bonus_id": bonus["id"],
                "study_id": bonus["study"],
                "lines": list(bonus["lines"]),
                "total_amount": bonus["total_amount"],
                "at": self.now(),
            }
        )
        return json_answer(202, BONUS_PAY_ANSWER)

    def _demographic_export(self, request: Request) -> Answer:
        study = self._study(request.args["id"])
        body = request.object()
        errors: Errors = {}
        _keys(body, "", errors, allowed=("filters",))
        filters = body.get("filters")
        if filters is not None:
            _filters(filters, "filters", errors)
            if isinstance(filters, list) and len(filters) > 15:
                _add(errors, "filters", "At most 15 filters per export.")
        _raise_if(errors)
        rows = sorted(
            (s for s in self.submissions.values() if s["study_id"] == study["id"]),
            key=lambda s: (s["started_at"], s["id"]),
        )
        out = [_csv_row(list(EXPORT_COLUMNS))]
        for submission in rows:
            taken = ""
            if submission["completed_at"]:
                seconds = submission["completed_at"] - submission["started_at"]
                taken = str(int(seconds.total_seconds()))
            person = self.demographics.get(submission["participant_id"], {})
            cells = [
                submission["id"],
                submission["participant_id"],
                submission["status"],
                iso(submission["started_at"]) or "",
                iso(submission["completed_at"]) or "",
                taken,
            ]
            for column in EXPORT_COLUMNS[6:]:
                value = person.get(DEMOGRAPHIC_KEYS[column], person.get(column, UNANSWERED))
                cells.append("" if value is None else str(value))
            out.append(_csv_row(cells))
        text = "".join(out)
        return Answer(200, text.encode(), [("Content-Type", "text/csv; charset=utf-8")])

    def _hook_secret(self, request: Request) -> Answer:
        body = request.object()
        errors: Errors = {}
        _keys(body, "", errors, allowed=("workspace_id",), required=("workspace_id",))
        if body.get("workspace_id") is not None:
            _string(nonempty=True)(body["workspace_id"], "workspace_id", errors)
        _raise_if(errors)
        secret = {
            "id": new_id(),
            "value": secrets.token_urlsafe(32),
            "workspace_id": body["workspace_id"],
        }
        # One active secret per workspace: a new one replaces it, and signs from now on.
        self.hook_secrets[body["workspace_id"]] = secret
        self.hook_secret = secret["value"]
        return json_answer(201, secret)

    def _hook_secrets(self, request: Request) -> Answer:
        """The workspace's secrets (``workspace_id`` is required): at most the one active."""
        workspace = request.query.get("workspace_id")
        if not workspace:
            raise ApiError(400, {"workspace_id": ["This field is required."]})
        secret = self.hook_secrets.get(workspace)
        return json_answer(200, {"results": [secret] if secret else []})

    def _subscription_create(self, request: Request) -> Answer:
        body = request.object()
        errors: Errors = {}
        required = ("workspace_id", "event_type", "target_url")
        _keys(body, "", errors, allowed=(*required, "is_enabled"), required=required)
        if body.get("workspace_id") is not None:
            _string(nonempty=True)(body["workspace_id"], "workspace_id", errors)
        if body.get("event_type") is not None:
            _choice(HOOK_EVENT_TYPES)(body["event_type"], "event_type", errors)
        target = body.get("target_url")
        if target is not None:
            parts = urlsplit(str(target))
            host = parts.hostname or ""
            if not isinstance(target, str) or parts.scheme != "https" or not host:
                _add(errors, "target_url", "Must be an https:// URL.")
            elif host == "localhost" or host.startswith("127.") or host == "::1":
                _add(errors, "target_url", "Must be publicly reachable (not localhost).")
        if body.get("is_enabled") is not None:
            _boolean(body["is_enabled"], "is_enabled", errors)
        _raise_if(errors)
        if body["workspace_id"] not in self.hook_secrets:
            _raise_if({"workspace_id": ["Create a secret for this workspace first."]})
        subscription = {
            "id": new_id(),
            "event_type": body["event_type"],
            "target_url": body["target_url"],
            "is_enabled": body.get("is_enabled", True),
            "workspace_id": body["workspace_id"],
            "confirm_secret": secrets.token_urlsafe(24),
            "confirmed": False,
        }
        self.subscriptions[subscription["id"]] = subscription
        return json_answer(
            201,
            _subscription_json(subscription),
            {"X-Hook-Secret": subscription["confirm_secret"]},
        )

    def _subscription_confirm(self, request: Request) -> Answer:
        subscription = self.subscriptions.get(request.args["id"])
        if subscription is None:
            raise ApiError(404, "No Subscription matches the given query.")
        body = request.object()
        errors: Errors = {}
        _keys(body, "", errors, allowed=("secret",), required=("secret",))
        _raise_if(errors)
        if not hmac.compare_digest(str(body["secret"]), subscription["confirm_secret"]):
            _raise_if({"secret": ["The secret does not match this subscription's."]})
        subscription["confirmed"] = True
        return json_answer(200, _subscription_json(subscription))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    environ: WSGIEnvironment
    args: dict[str, str]

    def object(self) -> dict[str, Any]:
        """The JSON body, which must be an object."""
        if self.body is None:
            raise ApiError(400, {"body": ["A JSON object is required."]})
        if not isinstance(self.body, dict):
            raise ApiError(400, {"body": ["Expected a JSON object."]})
        return self.body

    def host_url(self) -> str:
        scheme = str(self.environ.get("wsgi.url_scheme", "http"))
        host = self.environ.get("HTTP_HOST") or (
            f"{self.environ.get('SERVER_NAME')}:{self.environ.get('SERVER_PORT')}"
        )
        return f"{scheme}://{host}"


def _publish_missing(study: dict[str, Any]) -> list[str]:
    return [name for name in PUBLISH_NEEDS if not study.get(name)]


def _subscription_json(subscription: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "event_type", "target_url", "is_enabled", "workspace_id")
    return {key: subscription[key] for key in keys}


def _query_int(query: dict[str, str], name: str, default: int, errors: Errors) -> int | None:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        _add(errors, name, "A positive integer is required.")
        return None
    return int(text)


def _csv_row(cells: list[str]) -> str:
    def quote(cell: str) -> str:
        if any(c in cell for c in ',"\n\r'):
            return '"' + cell.replace('"', '""') + '"'
        return cell

    return ",".join(quote(cell) for cell in cells) + "\r\n"


def _read_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


# ---- serving on loopback --------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a delayed answer never holds up shutdown

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up (socket.getfqdn), which is slow
        # where name lookups time out; loopback needs no name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is expected


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(fake: FakeProlific) -> Iterator[str]:
    """Run ``fake`` on 127.0.0.1 at a free port in a daemon thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, fake, server_class=_Server, handler_class=_QuietHandler)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    fake.base_url = base_url
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (for connection-refused tests)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
