"""A small client for Prolific's REST API (v1), on httpx.

Authentication is the researcher's API token (``Authorization: Token …``), read from the
``PROLIFIC_API_TOKEN`` setting and never stored in the database. ``PROLIFIC_API_URL`` points
the client elsewhere (a staging or a local fake server).

Retries: a 429 is retried for any request, after the ``Retry-After`` the answer gives (Prolific
refused it before doing anything). A 5xx answer or a lost connection after the request was
sent is retried only for reads: a repeated create, transition or payment could act twice.
A connection that never opened is retried for every request, since nothing was sent.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

DEFAULT_API_URL = "https://api.prolific.com"
TOKEN_HELP = (
    "Set PROLIFIC_API_TOKEN in the server's environment to an API token made under "
    "Settings > API tokens on app.prolific.com, then restart the server."
)

Method = Literal["GET", "POST", "PATCH", "PUT", "DELETE"]
IDEMPOTENT: frozenset[str] = frozenset({"GET", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})


class ProlificError(Exception):
    """Prolific refused a request or could not be reached; the message quotes its answer."""

    def __init__(self, message: str, *, status: int | None = None, answer: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


class ProlificNotConfigured(ProlificError):
    """No API token is set."""


# ---- typed results --------------------------------------------------------------------


class _Record(BaseModel):
    # Prolific adds fields over time; the client reads the ones it uses and keeps no others.
    model_config = ConfigDict(extra="ignore", frozen=True)


class StudyRecord(_Record):
    id: str
    name: str = ""
    internal_name: str | None = None
    status: str
    total_available_places: int | None = None
    places_taken: int | None = None
    reward: int | None = None
    estimated_completion_time: int | None = None
    external_study_url: str | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _name_unset(cls, value: Any) -> Any:
        # Every study field is nullable on Prolific; a draft may have no name yet.
        return "" if value is None else value


class SubmissionRecord(_Record):
    """A submission as the submissions listing gives it."""

    id: str
    participant_id: str
    status: str
    started_at: datetime | None = None
    completed_at: datetime | None = None
    study_code: str | None = None
    return_requested: datetime | None = None


class SubmissionChange(_Record):
    """A submission as a transition answers it (Prolific names the participant differently)."""

    id: str
    status: str
    participant: str | None = None


class BonusRecord(_Record):
    """A bonus batch set up and not yet paid (the first of the two steps); amounts in cents."""

    id: str
    study: str | None = None
    amount: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    vat: Decimal = Decimal(0)
    total_amount: Decimal


Record = TypeVar("Record", bound=_Record)


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry; ``sleep`` is replaceable so tests need not wait."""

    attempts: int = 4
    backoff_seconds: float = 0.5
    max_wait_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def wait(self, attempt: int, retry_after: str | None) -> float:
        given = retry_after_seconds(retry_after) if retry_after else None
        seconds = given if given is not None else self.backoff_seconds * 2**attempt
        return min(max(seconds, 0.0), self.max_wait_seconds)


def retry_after_seconds(value: str, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan" and "inf" parse as floats but are no wait
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()


def error_text(response: httpx.Response) -> str:
    """Prolific's own words from an error answer (its ``error.detail`` and ``title``)."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        detail = error.get("detail", error)
        # The nested form has a title; the simple one ({"message", "detail"}) a message.
        title = error.get("title") or error.get("message")
        detail_text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        if not isinstance(title, str):
            return detail_text
        return f"{title}: {detail_text}" if title and title not in detail_text else detail_text
    return json.dumps(error)


def token_setting() -> str:
    """The API token from the settings; "" when none is set."""
    return str(getattr(settings, "PROLIFIC_API_TOKEN", "") or "")


class ProlificClient:
    """Prolific's API, one method per endpoint the platform uses."""

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 20.0,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise ProlificNotConfigured(f"No Prolific API token is set. {TOKEN_HELP}")
        self.base_url = base_url.rstrip("/") + "/"
        self.retry = retry or Retry()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, **kwargs: Any) -> ProlificClient:
        return cls(
            token_setting(),
            str(getattr(settings, "PROLIFIC_API_URL", "") or DEFAULT_API_URL),
            **kwargs,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProlificClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport ----------------------------------------------------------------------

    def request(
        self,
        method: Method,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        safe: bool = False,
    ) -> httpx.Response:
        """Send one request, retrying as the module says; raise ``ProlificError`` on failure.

        ``safe`` marks a POST that changes nothing on Prolific (a calculation, an export),
        which is then retried like a read.
        """
        idempotent = safe or method in IDEMPOTENT
        last_problem = ""
        for attempt in range(self.retry.attempts):
            try:
                response = self._http.request(method, path, json=body, params=params)
            except httpx.ConnectError as exc:  # nothing was sent: safe to try again
                last_problem = f"could not connect to {self.base_url} ({exc})"
                retry_after = None
            except httpx.TimeoutException as exc:
                last_problem = f"no answer from Prolific within the time limit ({exc!r})"
                if not (idempotent or isinstance(exc, httpx.ConnectTimeout)):
                    raise ProlificError(
                        f"{method} {path}: {last_problem}. It may or may not have been done; "
                        "check on Prolific before trying again."
                    ) from exc
                retry_after = None
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:  # broke after sending
                last_problem = f"the connection to Prolific broke ({exc!r})"
                if not idempotent:
                    raise ProlificError(
                        f"{method} {path}: {last_problem}. It may or may not have been done; "
                        "check on Prolific before trying again."
                    ) from exc
                retry_after = None
            except httpx.HTTPError as exc:
                raise ProlificError(f"{method} {path}: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                retryable = response.status_code == 429 or (
                    idempotent and response.status_code in RETRY_STATUSES
                )
                if not retryable or attempt == self.retry.attempts - 1:
                    raise self._refusal(method, path, response)
                last_problem = f"{response.status_code} {error_text(response)}"
                retry_after = response.headers.get("Retry-After")
            if attempt < self.retry.attempts - 1:
                self.retry.sleep(self.retry.wait(attempt, retry_after))
        raise ProlificError(
            f"{method} {path}: gave up after {self.retry.attempts} tries: {last_problem}"
        )

    @staticmethod
    def _refusal(method: str, path: str, response: httpx.Response) -> ProlificError:
        text = error_text(response)
        status = response.status_code
        if status == 401:
            message = f"Prolific refused the API token ({text}). {TOKEN_HELP}"
        elif status == 404:
            message = f"Prolific has no such object: {method} {path} answered 404 ({text})."
        else:
            message = f"Prolific answered {status} to {method} {path}: {text}"
        try:
            answer = response.json()
        except ValueError:
            answer = response.text
        return ProlificError(message, status=status, answer=answer)

    def _json(self, method: Method, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ProlificError(f"{method} {path}: Prolific's answer is not JSON") from exc

    @staticmethod
    def _typed(model: type[Record], data: Any, what: str) -> Record:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ProlificError(f"Prolific's {what} lacks '{where}': {first['msg']}") from exc

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int | None = None
    ) -> Iterator[Any]:
        """Every result of a listing, page after page.

        The next page is the answer's ``_links.next.href`` when it gives one; otherwise, for
        a listing paged by ``page`` and ``page_size``, the next page number while pages come
        back full (and ``meta.count``, when given, says more remain).
        """
        url = path
        query: dict[str, Any] | None = dict(params) if params else None
        seen: set[str] = set()
        fetched = 0
        count: Any = None
        while True:
            try:
                data = self._json("GET", url, params=query)
            except ProlificError as exc:
                # A page-number listing answers 404 to a page past the last one (as Django
                # REST framework does); met only when the previous page was full and no
                # count said whether more remained.
                past_last = exc.status == 404 and query and int(query.get("page", 1)) > 1
                if past_last and not isinstance(count, int):
                    return
                raise
            results = data.get("results", []) if isinstance(data, dict) else data or []
            if not isinstance(results, list):
                raise ProlificError(f"GET {path}: the listing's 'results' is not a list")
            yield from results
            fetched += len(results)
            links = data.get("_links") if isinstance(data, dict) else None
            link = links.get("next") if isinstance(links, dict) else None
            href = link.get("href") if isinstance(link, dict) else None
            if href:
                url = self._same_host(href)
                if url in seen:
                    raise ProlificError(f"GET {path}: the next page points back to a page read")
                seen.add(url)
                query = None  # the link carries the query
                continue
            count = (data.get("meta") or {}).get("count") if isinstance(data, dict) else None
            more = len(results) == page_size and (not isinstance(count, int) or fetched < count)
            if not (page_size and query and "page" in query and more):
                return
            query["page"] = int(query["page"]) + 1

    def _same_host(self, href: str) -> str:
        """A next-page link relative to the base URL; links to another host are refused."""
        absolute = urljoin(self.base_url, href)
        base = urlsplit(self.base_url)
        parts = urlsplit(absolute)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            raise ProlificError(f"a listing's next page points to another host: {href}")
        return absolute

    # ---- endpoints ----------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        data = self._json("GET", "api/v1/users/me/")
        return data if isinstance(data, dict) else {}

    def study_create(self, body: Mapping[str, Any]) -> StudyRecord:
        return self._typed(StudyRecord, self._json("POST", STUDIES_PATH, body=body), "study")

    def study_get(self, study_id: str) -> StudyRecord:
        return self._typed(StudyRecord, self._json("GET", study_path(study_id)), "study")

    def study_transition(self, study_id: str, action: str) -> StudyRecord:
        data = self._json("POST", study_path(study_id, "transition/"), body={"action": action})
        return self._typed(StudyRecord, data, "study")

    def study_cost(self, reward: int, places: int) -> Decimal:
        """What ``places`` submissions at ``reward`` cost with fees and VAT, in cents.

        A calculation only: nothing is created, so it is retried like a read.
        """
        data = self._json(
            "POST",
            COST_PATH,
            body={"reward": reward, "total_available_places": places},
            safe=True,
        )
        try:
            return Decimal(str(data["total_cost"]))
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise ProlificError(f"Prolific's cost answer lacks 'total_cost': {data!r}") from exc

    def submissions(self, study_id: str, page_size: int = 100) -> Iterator[SubmissionRecord]:
        """Every submission of a study, in pages of ``page_size``."""
        params = {"study": _segment(study_id), "page": 1, "page_size": page_size}
        for item in self.pages(SUBMISSIONS_PATH, params, page_size=page_size):
            yield self._typed(SubmissionRecord, item, "submission")

    def submission_transition(
        self,
        submission_id: str,
        action: str,
        *,
        message: str | None = None,
        rejection_category: str | None = None,
    ) -> SubmissionChange:
        body = submission_transition_body(action, message, rejection_category)
        data = self._json("POST", submission_path(submission_id, "transition/"), body=body)
        return self._typed(SubmissionChange, data, "submission")

    def submissions_bulk_approve(self, submission_ids: list[str]) -> str:
        """Approve submissions (Prolific approves them in the background); its answer."""
        data = self._json("POST", BULK_APPROVE_PATH, body=bulk_approve_body(submission_ids))
        return str(data or "")

    def submission_request_return(self, submission_id: str, reasons: list[str]) -> SubmissionChange:
        data = self._json(
            "POST",
            submission_path(submission_id, "request-return/"),
            body={"request_return_reasons": reasons},
        )
        return self._typed(SubmissionChange, data, "submission")

    def bonus_setup(self, study_id: str, csv_bonuses: str) -> BonusRecord:
        data = self._json(
            "POST", BONUS_SETUP_PATH, body={"study_id": study_id, "csv_bonuses": csv_bonuses}
        )
        return self._typed(BonusRecord, data, "bonus batch")

    def bonus_pay(self, bonus_id: str) -> str:
        """Pay a batch set up before. Never repeated on its own: a repeat pays again."""
        return str(self._json("POST", bonus_pay_path(bonus_id)) or "")

    def demographic_export(self, study_id: str) -> str:
        """The study's demographic export (the base columns), as the CSV text Prolific sends."""
        response = self.request(
            "POST", study_path(study_id, "demographic-export/"), body={"filters": []}, safe=True
        )
        if response.status_code == 204 or not response.content:
            raise ProlificError(
                "Prolific sent no demographic export (it may still be preparing it); try "
                "again in a few minutes"
            )
        if "json" in response.headers.get("Content-Type", ""):
            raise ProlificError(
                f"Prolific answered the export with JSON, not CSV: {response.text[:500]}"
            )
        return response.text


# The paths and bodies, also used to show a dry run exactly as it would be sent.

STUDIES_PATH = "api/v1/studies/"
SUBMISSIONS_PATH = "api/v1/submissions/"
BULK_APPROVE_PATH = "api/v1/submissions/bulk-approve/"
BONUS_SETUP_PATH = "api/v1/submissions/bonus-payments/"
COST_PATH = "api/v1/study-cost-calculator/"


def _segment(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ProlificError(f"'{value}' is not a Prolific id (letters, digits, '-' and '_')")
    return value


def study_path(study_id: str, rest: str = "") -> str:
    return f"api/v1/studies/{_segment(study_id)}/{rest}"


def submission_path(submission_id: str, rest: str = "") -> str:
    return f"api/v1/submissions/{_segment(submission_id)}/{rest}"


def bonus_pay_path(bonus_id: str) -> str:
    return f"api/v1/bulk-bonus-payments/{_segment(bonus_id)}/pay/"


def submission_transition_body(
    action: str, message: str | None, rejection_category: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"action": action}
    if message is not None:
        body["message"] = message
    if rejection_category is not None:
        body["rejection_category"] = rejection_category
    return body


def bulk_approve_body(submission_ids: list[str]) -> dict[str, Any]:
    return {"submission_ids": submission_ids}
