"""What the platform does on Prolific, and what it does with Prolific's news.

One function applies a submission's new status (``submission_status_apply``): the webhook
and ``prolific_sync`` both call it, so a return releases the participant's unrated items the
same way whichever path reports it first, and a second report changes nothing.

Every request that changes something on Prolific goes through ``ProlificRequest.send``, which
records it in ``ProlificAction`` with who asked and what Prolific answered; a dry run records
and shows the request without sending it. Bonuses are paid in a second, separate step.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from studyapp.demographics import DemographicsImportSummary, demographics_import
from studyapp.models import (
    Participant,
    ProlificAction,
    ProlificBonusBatch,
    ProlificHookDelivery,
    ProlificSubmission,
    Study,
    completion_code_new,
)
from studyapp.prolific.client import (
    BONUS_SETUP_PATH,
    BULK_APPROVE_PATH,
    ProlificClient,
    ProlificError,
    ProlificNotConfigured,
    bonus_pay_path,
    bulk_approve_body,
    study_path,
    submission_path,
    submission_transition_body,
)
from studyapp.studies.services import (
    PROLIFIC_QUERY,
    STUDY_STATUS_CHANGES,
    participant_stop,
    study_status_change,
)

# ---- Prolific's vocabulary ------------------------------------------------------------

# Submission statuses, as Prolific spells them.
ACTIVE = "ACTIVE"
AWAITING_REVIEW = "AWAITING REVIEW"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
RETURNED = "RETURNED"
TIMED_OUT = "TIMED-OUT"
PARTIALLY_APPROVED = "PARTIALLY APPROVED"
SCREENED_OUT = "SCREENED OUT"
SUBMISSION_STATUSES = (
    ACTIVE,
    AWAITING_REVIEW,
    APPROVED,
    REJECTED,
    RETURNED,
    TIMED_OUT,
    PARTIALLY_APPROVED,
    SCREENED_OUT,
)

# A submission that ends in one of these releases the participant's unrated items here.
RELEASING = {
    RETURNED: Participant.Status.RETURNED,
    TIMED_OUT: Participant.Status.TIMED_OUT,
    REJECTED: Participant.Status.STOPPED,
}

# Study statuses on Prolific and the transition actions that reach them.
STUDY_UNPUBLISHED = "UNPUBLISHED"
STUDY_ACTIVE = "ACTIVE"
STUDY_PAUSED = "PAUSED"
STUDY_AWAITING_REVIEW = "AWAITING REVIEW"
STUDY_COMPLETED = "COMPLETED"

# Our status -> the study transition that follows it on Prolific.
TRANSITION_FOR = {
    Study.Status.LIVE: "START",
    Study.Status.PAUSED: "PAUSE",
    Study.Status.CLOSED: "STOP",
}
# Prolific's study status -> ours, when Prolific changed it (its own web app, or places filled).
FOLLOW_PROLIFIC = {
    STUDY_ACTIVE: Study.Status.LIVE,
    STUDY_PAUSED: Study.Status.PAUSED,
    STUDY_COMPLETED: Study.Status.CLOSED,
}

REJECTION_CATEGORIES = (
    ("TOO_QUICKLY", "Completed too quickly"),
    ("TOO_SLOWLY", "Completed too slowly"),
    ("FAILED_INSTRUCTIONS", "Failed to follow instructions"),
    ("INCOMP_LONGITUDINAL", "Incomplete longitudinal study"),
    ("FAILED_CHECK", "Failed attention or comprehension checks"),
    ("LOW_EFFORT", "Low effort"),
    ("MALINGERING", "Malingering"),
    ("NO_CODE", "No completion code"),
    ("BAD_CODE", "Wrong completion code"),
    ("NO_DATA", "No data"),
    ("UNSUPP_DEVICE", "Unsupported device"),
    ("OTHER", "Other"),
)
REJECTION_MESSAGE_MIN = 100  # Prolific asks for a message a participant can act on


class ProlificServiceError(Exception):
    """A researcher's request that cannot be sent as asked; nothing was sent."""


def prolific_client_or_none() -> ProlificClient | None:
    """A client from the settings, or None when no API token is set."""
    try:
        return ProlificClient.from_settings()
    except ProlificNotConfigured:
        return None


# ---- one action, recorded ---------------------------------------------------------------


@dataclass
class ProlificRequest:
    """A request the platform would send to Prolific; ``send`` sends and records it."""

    study: Study
    kind: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    target: str = ""

    def describe(self) -> str:
        body = "" if self.body is None else " " + json.dumps(self.body, sort_keys=True)
        return f"{self.method} /{self.path}{body}"

    def record(self, *, by: Any, dry_run: bool, ok: bool | None, answer: str) -> ProlificAction:
        return ProlificAction.objects.create(
            study=self.study,
            kind=self.kind,
            target=self.target[:200],
            method=self.method,
            path="/" + self.path,
            body=self.body,
            dry_run=dry_run,
            ok=ok,
            answer=answer,
            decided_by=by if getattr(by, "is_authenticated", False) else None,
        )

    def send(self, call: Callable[[], Any], *, by: Any, dry_run: bool = False) -> Any:
        """Run ``call`` (the client method sending this request) unless it is a dry run.

        Prolific's refusal is recorded and raised again for the caller to show.
        """
        if dry_run:
            self.record(by=by, dry_run=True, ok=None, answer="not sent (dry run)")
            return None
        try:
            result = call()
        except ProlificError as exc:
            self.record(by=by, dry_run=False, ok=False, answer=str(exc))
            raise
        self.record(by=by, dry_run=False, ok=True, answer=_answer_text(result))
        return result


def _answer_text(result: Any) -> str:
    if result is None:
        return "accepted"
    dump = getattr(result, "model_dump_json", None)
    return dump() if dump else str(result)[:2000]


# ---- submission status: the one path for hooks and the sync ------------------------------


@dataclass(frozen=True)
class StatusApplied:
    """What one report of a submission's status changed here."""

    submission: ProlificSubmission | None
    changed: bool  # Prolific's status as we store it changed
    released: bool  # the participant was active and their unrated items went back
    participant: Participant | None = None


def submission_status_apply(
    *,
    submission_id: str,
    status: str,
    source: str,
    study: Study | None = None,
    participant_id: str = "",
    study_code: str | None = None,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
    at: datetime | None = None,
) -> StatusApplied:
    """Store Prolific's status of one submission and act on it here.

    The study is ``study`` or the one whose participant carries this submission id (the
    link's SESSION_ID). ``at`` is when Prolific sent the news: hooks may arrive out of order,
    so news older than what is stored changes nothing. "RETURNED", "TIMED-OUT" and
    "REJECTED" stop the participant if they are still working, which releases their unrated
    items at once; the update waits for any item the participant is posting at that moment
    and then applies only if they are still active. The same news twice changes nothing.
    """
    at = at or timezone.now()
    participant = _participant_for(study, submission_id, participant_id)
    if study is None:
        study = participant.study if participant is not None else _study_of(submission_id)
    if study is None:
        return StatusApplied(submission=None, changed=False, released=False)
    if participant is None and participant_id:
        participant = Participant.objects.filter(study=study, prolific_pid=participant_id).first()
    pid = participant_id or (participant.prolific_pid if participant else "")
    with transaction.atomic():
        submission, created = ProlificSubmission.objects.select_for_update().get_or_create(
            submission_id=submission_id,
            defaults={"study": study, "participant_pid": pid, "status": status},
        )
        # Prolific's times have whole seconds: news from the same second still counts.
        if not created and int(submission.updated_at.timestamp()) > int(at.timestamp()):
            return StatusApplied(
                submission=submission, changed=False, released=False, participant=participant
            )
        # "Changed" means a new submission or a new status; the times and the code only
        # complete what a hook (which carries none of them) left blank.
        changed = created or submission.status != status
        values: dict[str, Any] = {
            "status": status,
            "participant_pid": submission.participant_pid or pid,
            "study_code": study_code,
            "started_at": started_at,
            "completed_at": completed_at,
        }
        dirty = [
            name
            for name, value in values.items()
            if value is not None and getattr(submission, name) != value
        ]
        if created or dirty:
            # News that changes nothing stores nothing: a sync of a finished study is reads.
            for name in dirty:
                setattr(submission, name, values[name])
            submission.updated_at = at
            submission.source = source
            submission.save(update_fields=[*dirty, "updated_at", "source"])
    released = False
    if participant is not None and status in RELEASING:
        released = participant_stop(participant=participant, status=RELEASING[status])
    return StatusApplied(
        submission=submission, changed=changed, released=released, participant=participant
    )


def _participant_for(
    study: Study | None, submission_id: str, participant_id: str
) -> Participant | None:
    participants = Participant.objects.select_related("study")
    if study is not None:
        participants = participants.filter(study=study)
    found = participants.filter(prolific_session_id=submission_id).first()
    if found is None and study is not None and participant_id:
        found = participants.filter(prolific_pid=participant_id).first()
    return found


def _study_of(submission_id: str) -> Study | None:
    known = ProlificSubmission.objects.select_related("study").filter(submission_id=submission_id)
    first = known.first()
    return first.study if first is not None else None


@dataclass
class SyncSummary:
    study: Study
    submissions: int = 0
    changed: int = 0
    released: int = 0
    study_status: str = ""
    followed: str = ""  # our status change that followed Prolific's, if any


def prolific_sync(
    *, study: Study, client: ProlificClient, now: datetime | None = None
) -> SyncSummary:
    """Read the study and all its submissions from Prolific and apply each status here."""
    if not study.prolific_study_id:
        raise ProlificServiceError(f"study '{study.slug}' has no Prolific study id")
    now = now or timezone.now()
    remote = client.study_get(study.prolific_study_id)
    summary = SyncSummary(study=study, study_status=remote.status)
    for item in client.submissions(study.prolific_study_id):
        applied = submission_status_apply(
            study=study,
            submission_id=item.id,
            participant_id=item.participant_id,
            status=item.status,
            study_code=item.study_code or "",
            started_at=item.started_at,
            completed_at=item.completed_at,
            source="sync",
            at=now,
        )
        summary.submissions += 1
        summary.changed += applied.changed
        summary.released += applied.released
    summary.followed = study_status_follow_prolific(study=study, prolific_status=remote.status)
    Study.objects.filter(pk=study.pk).update(prolific_status=remote.status, prolific_synced_at=now)
    study.refresh_from_db(fields=["status", "prolific_status", "prolific_synced_at"])
    return summary


def study_status_follow_prolific(*, study: Study, prolific_status: str) -> str:
    """Set our status to follow Prolific's (paused there: paused here); '' if unchanged."""
    target = FOLLOW_PROLIFIC.get(prolific_status)
    if target is None or study.status == target:
        return ""
    if study.status not in STUDY_STATUS_CHANGES[target]:
        return ""
    if target == Study.Status.LIVE and study.status == Study.Status.CLOSED:
        return ""  # a study closed here stays closed; reopening is a researcher's decision
    return target if study_status_change(study=study, status=target) else ""


# ---- study: create, publish, pause, resume, stop ----------------------------------------


@dataclass(frozen=True)
class StudyDraft:
    """What the researcher sets for the Prolific study; the rest comes from ours."""

    name: str
    description: str
    reward: int  # in the minor unit of the workspace's currency (pence or cents)
    estimated_completion_time: int  # minutes
    total_available_places: int
    site_url: str  # where participants reach this platform, e.g. https://study.example.org
    review_completed: bool = False  # completed submissions wait for manual review
    filters: list[dict[str, Any]] = field(default_factory=list)
    filter_set_id: str = ""
    device_compatibility: tuple[str, ...] = ("desktop", "tablet", "mobile")

    def hourly_rate(self) -> Decimal:
        """The reward per hour of the estimated time, in the same minor unit."""
        per_hour = Decimal(self.reward) * 60 / Decimal(self.estimated_completion_time)
        return per_hour.quantize(Decimal(1), ROUND_HALF_UP)


def external_study_url(study: Study, site_url: str) -> str:
    return f"{site_url.rstrip('/')}/s/{study.slug}/?{PROLIFIC_QUERY}"


def study_create_body(study: Study, draft: StudyDraft, failed_checks_code: str) -> dict[str, Any]:
    """The body of Prolific's create-study request for ``study``."""
    completed_action = "MANUALLY_REVIEW" if draft.review_completed else "AUTOMATICALLY_APPROVE"
    body: dict[str, Any] = {
        "name": draft.name,
        "internal_name": study.slug,
        "description": draft.description,
        "external_study_url": external_study_url(study, draft.site_url),
        "prolific_id_option": "url_parameters",
        "completion_codes": [
            {
                "code": study.completion_code,
                "code_type": "COMPLETED",
                "actions": [{"action": completed_action}],
            },
            {
                "code": failed_checks_code,
                "code_type": "FAILED_ATTENTION_CHECK",
                "actions": [{"action": "MANUALLY_REVIEW"}],
            },
        ],
        "total_available_places": draft.total_available_places,
        "estimated_completion_time": draft.estimated_completion_time,
        "maximum_allowed_time": study.time_limit_minutes,
        "reward": draft.reward,
        "device_compatibility": list(draft.device_compatibility),
    }
    if draft.filter_set_id:
        body["filter_set_id"] = draft.filter_set_id
    elif draft.filters:
        body["filters"] = draft.filters
    return body


def study_create_request(
    study: Study, draft: StudyDraft, *, failed_checks_code: str = ""
) -> ProlificRequest:
    """The create-study request; the second code is the study's, else ``failed_checks_code``
    (the one a preview showed), else a new one."""
    if study.prolific_study_id:
        raise ProlificServiceError(
            f"study '{study.slug}' is already on Prolific as {study.prolific_study_id}"
        )
    given = failed_checks_code if failed_checks_code != study.completion_code else ""
    code = study.failed_checks_code or given or _other_code(study.completion_code)
    return ProlificRequest(
        study=study,
        kind="create",
        method="POST",
        path="api/v1/studies/",
        body=study_create_body(study, draft, code),
    )


def _other_code(completion_code: str) -> str:
    while (code := completion_code_new()) == completion_code:
        pass
    return code


def study_create_on_prolific(
    *,
    study: Study,
    draft: StudyDraft,
    client: ProlificClient,
    by: Any,
    dry_run: bool = False,
    failed_checks_code: str = "",
) -> ProlificRequest:
    """Create the study on Prolific as a draft and store its id; ``dry_run`` only records.

    ``failed_checks_code``: the second completion code to use when the study has none yet
    (the one a preview showed); blank: a new one.
    """
    request = study_create_request(study, draft, failed_checks_code=failed_checks_code)
    created = request.send(lambda: client.study_create(request.body or {}), by=by, dry_run=dry_run)
    if created is not None:
        failed_code = request.body["completion_codes"][1]["code"] if request.body else ""
        Study.objects.filter(pk=study.pk).update(
            prolific_study_id=created.id,
            prolific_status=created.status,
            failed_checks_code=failed_code,
        )
        study.refresh_from_db(fields=["prolific_study_id", "prolific_status", "failed_checks_code"])
    return request


def study_transition_request(study: Study, action: str) -> ProlificRequest:
    if not study.prolific_study_id:
        raise ProlificServiceError(
            f"study '{study.slug}' is not on Prolific yet; create it there first"
        )
    return ProlificRequest(
        study=study,
        kind=action.lower(),
        method="POST",
        path=study_path(study.prolific_study_id, "transition/"),
        body={"action": action},
        target=study.prolific_study_id,
    )


def study_publish(
    *, study: Study, client: ProlificClient, by: Any, dry_run: bool = False
) -> ProlificRequest:
    """Publish the Prolific study and open ours.

    Prolific first: if it refuses (an empty wallet, a missing field), our study is left as
    it was. Participants can only arrive once Prolific has published it.
    """
    request = study_transition_request(study, "PUBLISH")
    remote = request.send(
        lambda: client.study_transition(study.prolific_study_id, "PUBLISH"), by=by, dry_run=dry_run
    )
    if remote is not None:
        _remote_status_store(study, remote.status)
        if study.status != Study.Status.LIVE:
            study_status_change(study=study, status=Study.Status.LIVE)
    return request


def study_status_set(
    *, study: Study, status: str, client: ProlificClient | None, by: Any
) -> tuple[bool, str]:
    """Change our study's status and have the Prolific study follow (pause, resume, stop).

    Returns whether our status changed and a note on Prolific: what it was asked, or why
    not. Our change stands even if Prolific refuses; the note then quotes its answer.
    """
    changed = study_status_change(study=study, status=status)
    if not changed or not study.prolific_study_id:
        return changed, ""
    if study.prolific_status in ("", STUDY_UNPUBLISHED):
        return (
            changed,
            "The Prolific study is not published yet; publish it from the study's Prolific page.",
        )
    if client is None:
        return changed, "Prolific was not told: no API token is set."
    action = TRANSITION_FOR[Study.Status(status)]
    if (action, study.prolific_status) in (
        ("START", STUDY_ACTIVE),
        ("PAUSE", STUDY_PAUSED),
        ("STOP", STUDY_COMPLETED),
    ):
        return changed, ""
    request = study_transition_request(study, action)
    try:
        remote = request.send(
            lambda: client.study_transition(study.prolific_study_id, action), by=by
        )
    except ProlificError as exc:
        return changed, f"Prolific did not follow: {exc}"
    _remote_status_store(study, remote.status)
    return changed, f"The Prolific study is now {remote.status.lower()}."


def _remote_status_store(study: Study, status: str) -> None:
    Study.objects.filter(pk=study.pk).update(prolific_status=status)
    study.refresh_from_db(fields=["prolific_status"])


# ---- review ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRow:
    """A submission on Prolific beside what the participant did here."""

    submission: ProlificSubmission
    participant: Participant | None

    @property
    def completed_here(self) -> bool:
        return self.participant is not None and (
            self.participant.status == Participant.Status.COMPLETED
        )

    @property
    def failed_checks(self) -> int:
        return self.participant.attention_failures if self.participant else 0

    @property
    def approvable(self) -> bool:
        """Completed here with fewer failed checks than a fair rejection needs, and waiting."""
        return (
            self.submission.status == AWAITING_REVIEW
            and self.completed_here
            and self.participant is not None
            and not self.participant.attention_failed
            and not self.participant.excluded
        )

    @property
    def rejectable(self) -> bool:
        """Failed two or more checks (Prolific's condition for a fair rejection), and waiting."""
        return (
            self.submission.status == AWAITING_REVIEW
            and self.participant is not None
            and self.participant.attention_failed
        )


def review_rows(study: Study) -> list[ReviewRow]:
    participants = {
        p.prolific_pid: p for p in Participant.objects.filter(study=study).order_by("started_at")
    }
    return [
        ReviewRow(submission=s, participant=participants.get(s.participant_pid))
        for s in study.prolific_submissions.order_by("started_at", "id")
    ]


def bulk_approve(
    *, study: Study, client: ProlificClient, by: Any, dry_run: bool = False
) -> tuple[ProlificRequest, list[ReviewRow]]:
    """Approve every submission that completed here and passed the checks, in one request."""
    if not study.prolific_study_id:
        raise ProlificServiceError(f"study '{study.slug}' is not on Prolific")
    rows = [row for row in review_rows(study) if row.approvable]
    if not rows:
        raise ProlificServiceError(
            "no submission awaits review that completed here and passed the checks"
        )
    ids = [row.submission.submission_id for row in rows]
    request = ProlificRequest(
        study=study,
        kind="bulk_approve",
        method="POST",
        path=BULK_APPROVE_PATH,
        body=bulk_approve_body(ids),
        target=f"{len(ids)} submissions",
    )
    request.send(
        lambda: client.submissions_bulk_approve(ids),
        by=by,
        dry_run=dry_run,
    )
    if not dry_run:
        for row in rows:
            submission_status_apply(
                study=study,
                submission_id=row.submission.submission_id,
                status=APPROVED,
                source="action",
            )
    return request, rows


def _submission(study: Study, submission_id: str) -> ProlificSubmission:
    found = study.prolific_submissions.filter(submission_id=submission_id).first()
    if found is None:
        raise ProlificServiceError(
            f"no submission '{submission_id}' is known for study '{study.slug}'; sync it first"
        )
    return found


def submission_reject(
    *,
    study: Study,
    submission_id: str,
    category: str,
    message: str,
    client: ProlificClient,
    by: Any,
    dry_run: bool = False,
) -> ProlificRequest:
    """Reject one submission with Prolific's category and a message to the participant.

    Only a submission awaiting review whose participant failed two or more attention checks
    may be rejected from here: the rejection Prolific's policy calls fair.
    """
    submission = _submission(study, submission_id)
    participant = Participant.objects.filter(
        study=study, prolific_pid=submission.participant_pid
    ).first()
    row = ReviewRow(submission=submission, participant=participant)
    if not row.rejectable:
        raise ProlificServiceError(
            f"submission {submission_id} cannot be rejected from here: only submissions "
            f"awaiting review whose participant failed {Participant.ATTENTION_FAILURES_TO_FLAG} "
            "or more attention checks can"
        )
    if category not in dict(REJECTION_CATEGORIES):
        raise ProlificServiceError(
            f"'{category}' is not a rejection category; choose one of "
            + ", ".join(key for key, _ in REJECTION_CATEGORIES)
        )
    message = message.strip()
    if len(message) < REJECTION_MESSAGE_MIN:
        raise ProlificServiceError(
            f"the message to the participant has {len(message)} characters; Prolific asks "
            f"for at least {REJECTION_MESSAGE_MIN} that say what went wrong"
        )
    request = ProlificRequest(
        study=study,
        kind="reject",
        method="POST",
        path=submission_path(submission_id, "transition/"),
        body=submission_transition_body("REJECT", message, category),
        target=submission_id,
    )
    remote = request.send(
        lambda: client.submission_transition(
            submission_id, "REJECT", message=message, rejection_category=category
        ),
        by=by,
        dry_run=dry_run,
    )
    if remote is not None:
        submission_status_apply(
            study=study, submission_id=submission_id, status=remote.status, source="action"
        )
    return request


RETURN_REASON_MAX = 5


def submission_request_return(
    *,
    study: Study,
    submission_id: str,
    reasons: list[str],
    client: ProlificClient,
    by: Any,
    dry_run: bool = False,
) -> ProlificRequest:
    """Ask the participant to return their submission, with the reasons they will read."""
    submission = _submission(study, submission_id)
    reasons = [r.strip() for r in reasons if r.strip()]
    if not reasons:
        raise ProlificServiceError("give at least one reason the participant will read")
    if len(reasons) > RETURN_REASON_MAX:
        raise ProlificServiceError(f"give at most {RETURN_REASON_MAX} reasons")
    if submission.status not in (ACTIVE, AWAITING_REVIEW):
        raise ProlificServiceError(
            f"submission {submission_id} is {submission.status.lower()}; only an active or "
            "awaiting-review submission can be asked to return"
        )
    request = ProlificRequest(
        study=study,
        kind="request_return",
        method="POST",
        path=submission_path(submission_id, "request-return/"),
        body={"request_return_reasons": reasons},
        target=submission_id,
    )
    request.send(
        lambda: client.submission_request_return(submission_id, reasons), by=by, dry_run=dry_run
    )
    return request


# ---- bonuses: set up, then pay -----------------------------------------------------------


@dataclass(frozen=True)
class BonusLine:
    participant_id: str
    amount: Decimal  # in the workspace currency's major unit, as Prolific's CSV takes it


def bonus_lines_parse(text: str, study: Study) -> list[BonusLine]:
    """Bonus lines from a "participant id,amount" CSV (a header line is allowed).

    Amounts are in pounds or dollars with at most two decimals. Each participant must have
    taken part in this study, and may appear once.
    """
    known = set(Participant.objects.filter(study=study).values_list("prolific_pid", flat=True))
    lines: list[BonusLine] = []
    problems: list[str] = []
    seen: Counter[str] = Counter()
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if number == 1 and len(cells) >= 2 and not _is_amount(cells[1]):
            continue  # a header
        if len(cells) != 2:
            problems.append(
                f"line {number}: expected 'participant id,amount', got {len(cells)} cells"
            )
            continue
        pid, amount_text = cells
        if not _is_amount(amount_text):
            problems.append(f"line {number}: '{amount_text}' is not an amount (for example 1.50)")
            continue
        amount = Decimal(amount_text)
        if amount <= 0:
            problems.append(f"line {number}: the bonus must be more than 0")
        elif pid not in known:
            problems.append(f"line {number}: '{pid}' took no part in study '{study.slug}'")
        else:
            seen[pid] += 1
            if seen[pid] == 2:
                problems.append(f"line {number}: '{pid}' appears more than once")
            lines.append(BonusLine(pid, amount))
    if problems:
        raise ProlificServiceError("; ".join(problems[:10]))
    if not lines:
        raise ProlificServiceError("the bonus list is empty")
    return lines


def _is_amount(text: str) -> bool:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return False
    return value.is_finite() and value == value.quantize(Decimal("0.01"))


def bonus_lines_completed(study: Study, amount: Decimal) -> list[BonusLine]:
    """The rule "everyone who completed": one bonus of ``amount`` each, excluded ones left out."""
    pids = Participant.objects.filter(
        study=study, status=Participant.Status.COMPLETED, excluded=False
    ).values_list("prolific_pid", flat=True)
    return [BonusLine(pid, amount) for pid in pids.order_by("started_at")]


def bonus_csv(lines: Iterable[BonusLine]) -> str:
    return "".join(f"{line.participant_id},{line.amount:.2f}\n" for line in lines)


def bonus_setup(
    *,
    study: Study,
    lines: list[BonusLine],
    client: ProlificClient,
    by: Any,
    dry_run: bool = False,
) -> tuple[ProlificRequest, ProlificBonusBatch | None]:
    """First step: Prolific prices the bonuses (nothing is paid); the batch is kept to pay."""
    if not study.prolific_study_id:
        raise ProlificServiceError(f"study '{study.slug}' is not on Prolific")
    if not lines:
        raise ProlificServiceError("nobody to pay a bonus to")
    text = bonus_csv(lines)
    request = ProlificRequest(
        study=study,
        kind="bonus_setup",
        method="POST",
        path=BONUS_SETUP_PATH,
        body={"study_id": study.prolific_study_id, "csv_bonuses": text},
        target=f"{len(lines)} bonuses",
    )
    record = request.send(
        lambda: client.bonus_setup(study.prolific_study_id, text), by=by, dry_run=dry_run
    )
    if record is None:
        return request, None
    batch = ProlificBonusBatch.objects.create(
        study=study,
        bonus_id=record.id,
        csv_bonuses=text,
        participants=len(lines),
        amount=record.amount,
        fees=record.fees,
        vat=record.vat,
        total_amount=record.total_amount,
        created_by=by if getattr(by, "is_authenticated", False) else None,
    )
    return request, batch


def bonus_pay(
    *, batch: ProlificBonusBatch, client: ProlificClient, by: Any, dry_run: bool = False
) -> ProlificRequest:
    """Second step: pay a batch that was set up; a paid batch is never paid again."""
    if batch.paid_at is not None:
        raise ProlificServiceError(
            f"bonus batch {batch.bonus_id} was paid at {batch.paid_at:%Y-%m-%d %H:%M}"
        )
    request = ProlificRequest(
        study=batch.study,
        kind="bonus_pay",
        method="POST",
        path=bonus_pay_path(batch.bonus_id),
        body=None,
        target=batch.bonus_id,
    )
    if dry_run:
        request.send(lambda: None, by=by, dry_run=True)
        return request
    # Claimed before the request: two clicks at once cannot both send it.
    claimed = ProlificBonusBatch.objects.filter(pk=batch.pk, paid_at__isnull=True).update(
        paid_at=timezone.now(), paid_by=by if getattr(by, "is_authenticated", False) else None
    )
    if not claimed:
        raise ProlificServiceError(f"bonus batch {batch.bonus_id} is already being paid")
    try:
        request.send(lambda: client.bonus_pay(batch.bonus_id), by=by)
    except ProlificError:
        ProlificBonusBatch.objects.filter(pk=batch.pk).update(paid_at=None, paid_by=None)
        raise
    batch.refresh_from_db()
    return request


# ---- demographics -------------------------------------------------------------------------


def demographics_fetch(
    *, study: Study, client: ProlificClient, by: Any
) -> DemographicsImportSummary:
    """Fetch Prolific's demographic export and import it as an uploaded export would be."""
    if not study.prolific_study_id:
        raise ProlificServiceError(f"study '{study.slug}' is not on Prolific")
    request = ProlificRequest(
        study=study,
        kind="demographics",
        method="POST",
        path=study_path(study.prolific_study_id, "demographic-export/"),
        body={"filters": []},
        target=study.prolific_study_id,
    )
    text = request.send(lambda: client.demographic_export(study.prolific_study_id), by=by)
    return demographics_import(study=study, lines=io.StringIO(text.lstrip("\ufeff")))


# Prolific retries a delivery for a day with the same X-Event-ID; two days of records
# recognise every retry, and anything older is refused by its timestamp anyway.
HOOK_DELIVERIES_KEPT = timedelta(days=2)


def hook_deliveries_prune(now: datetime | None = None) -> int:
    """Forget webhook deliveries no retry can repeat any more; how many were deleted."""
    cutoff = (now or timezone.now()) - HOOK_DELIVERIES_KEPT
    deleted, _ = ProlificHookDelivery.objects.filter(received_at__lt=cutoff).delete()
    return deleted


# ---- ours beside Prolific's ---------------------------------------------------------------

# What a submission's status on Prolific should be for each of our participant statuses.
AGREEING = {
    Participant.Status.ACTIVE: {ACTIVE},
    Participant.Status.COMPLETED: {AWAITING_REVIEW, APPROVED, REJECTED, PARTIALLY_APPROVED},
    Participant.Status.RETURNED: {RETURNED},
    Participant.Status.TIMED_OUT: {TIMED_OUT, RETURNED},
    Participant.Status.NO_CONSENT: {RETURNED, ACTIVE, TIMED_OUT},
    Participant.Status.STOPPED: {REJECTED, RETURNED, TIMED_OUT, AWAITING_REVIEW},
}


@dataclass(frozen=True)
class Disagreement:
    participant_pid: str
    ours: str  # our participant status ("" when the participant never arrived here)
    theirs: str  # Prolific's submission status ("" when Prolific does not know them)
    problem: str


@dataclass(frozen=True)
class Comparison:
    """Prolific's submission counts beside ours, and every participant the two disagree on."""

    ours: dict[str, int]
    theirs: dict[str, int]
    disagreements: list[Disagreement]
    synced_at: datetime | None


def prolific_comparison(study: Study) -> Comparison:
    participants = {
        p.prolific_pid: p.status
        for p in Participant.objects.filter(study=study).only("prolific_pid", "status")
    }
    submissions = {s.participant_pid: s.status for s in study.prolific_submissions.all()}
    ours = Counter(participants.values())
    theirs = Counter(submissions.values())
    problems: list[Disagreement] = []
    for pid, status in sorted(participants.items()):
        remote = submissions.get(pid)
        if remote is None:
            problems.append(
                Disagreement(pid, status, "", "took part here, but Prolific has no submission")
            )
        elif remote not in AGREEING.get(Participant.Status(status), set()):
            label = Participant.Status(status).label.lower()
            problems.append(
                Disagreement(pid, status, remote, f"{label} here but {remote.lower()} on Prolific")
            )
    for pid, remote in sorted(submissions.items()):
        if pid not in participants and remote not in (RETURNED, TIMED_OUT, SCREENED_OUT):
            problems.append(
                Disagreement(pid, "", remote, f"{remote.lower()} on Prolific, never arrived here")
            )
    return Comparison(
        ours={Participant.Status(k).label: v for k, v in ours.items()},
        theirs=dict(sorted(theirs.items())),
        disagreements=problems,
        synced_at=study.prolific_synced_at,
    )
