"""Everything that writes study data: creating studies and running a participant through one."""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp import rows, selectors
from studyapp.allocation import PoolItem, items_choose
from studyapp.importing import ExplanationRecord
from studyapp.models import (
    LIKERT_MAX,
    LIKERT_MIN,
    Assignment,
    AttentionCheckResponse,
    Condition,
    Dimension,
    Explanation,
    Participant,
    ParticipantExclusion,
    Question,
    Study,
    StudyConflictError,
)

if TYPE_CHECKING:
    from analysis.plan import AnalysisPlan


def study_create_from_explanations(
    *,
    slug: str,
    records: Sequence[ExplanationRecord],
    title: str | None = None,
    completion_code: str | None = None,
    per_condition: int | None = None,
    live: bool = False,
    plan: AnalysisPlan | None = None,
) -> Study:
    """Create the study ``slug`` with the item pool in ``records``, or bring it up to date.

    Idempotent: importing the same records again changes nothing. New conditions,
    questions and explanations are added; an explanation or question that differs from the
    stored one raises ``StudyConflictError`` instead of silently changing what earlier
    participants rated. ``plan`` registers an analysis plan (None leaves the study's plan
    as it is); a different plan for a study that has gone live raises
    ``StudyPlanFrozenError``. ``live`` opens the study (a closed study stays closed), which
    freezes its plan.
    """
    if not records:
        raise StudyConflictError("there are no explanations to import")
    with transaction.atomic():
        study = _study_upsert(
            slug=slug, title=title, completion_code=completion_code, per_condition=per_condition
        )
        if plan is not None and study.plan_register(
            name=plan.name, text=plan.text, sha256=plan.sha256
        ):
            study.save(update_fields=["plan_name", "plan_text", "plan_sha256"])
        conditions = _conditions_upsert(study=study, records=records)
        questions = _questions_upsert(study=study, records=records)
        _explanations_upsert(records=records, conditions=conditions, questions=questions)
        _study_check_pool(study=study)
        if live and study.status in (Study.Status.DRAFT, Study.Status.PAUSED):
            study.status = Study.Status.LIVE
            study.save(update_fields=["status"])  # the model freezes the plan with it
        elif live and study.status == Study.Status.CLOSED:
            raise StudyConflictError(
                f"study '{slug}' is closed; reopen it in the admin if you really mean to"
            )
    return study


def _study_upsert(
    *, slug: str, title: str | None, completion_code: str | None, per_condition: int | None
) -> Study:
    if per_condition is not None and per_condition < 1:
        raise StudyConflictError("per_condition must be at least 1")
    study = Study.objects.select_for_update().filter(slug=slug).first()
    if study is None:
        study = Study(slug=slug, title=title or slug.replace("-", " ").capitalize())
        if completion_code:
            study.completion_code = completion_code
        if per_condition is not None:
            study.per_condition = per_condition
        _study_validate(study)
        study.save()
        return study

    changed: list[str] = []
    if title and title != study.title:
        study.title = title
        changed.append("title")
    if completion_code and completion_code != study.completion_code:
        study.completion_code = completion_code
        changed.append("completion_code")
    if per_condition is not None and per_condition != study.per_condition:
        if study.participants.exists():
            raise StudyConflictError(
                f"study '{slug}' already has participants; its items per condition "
                f"({study.per_condition}) can no longer change"
            )
        study.per_condition = per_condition
        changed.append("per_condition")
    if changed:
        _study_validate(study)
        study.save(update_fields=changed)
    return study


def _study_validate(study: Study) -> None:
    """The model's own checks (slug, lengths, ranges), refused as a conflict with a message."""
    try:
        study.full_clean()
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
        )
        raise StudyConflictError(problems) from None


def _conditions_upsert(
    *, study: Study, records: Sequence[ExplanationRecord]
) -> dict[str, Condition]:
    conditions = {c.name: c for c in study.conditions.all()}
    for record in records:
        stored = conditions.get(record.condition)
        wanted = (record.method, record.data_variant, record.student)
        if stored is None:
            conditions[record.condition] = Condition.objects.create(
                study=study,
                name=record.condition,
                method=record.method,
                data_variant=record.data_variant,
                student=record.student,
            )
        elif (stored.method, stored.data_variant, stored.student) != wanted:
            raise StudyConflictError(
                f"line {record.line}: condition '{record.condition}' is stored with method "
                f"'{stored.method}', data variant '{stored.data_variant}' and student "
                f"'{stored.student}'"
            )
    return conditions


def _questions_upsert(*, study: Study, records: Sequence[ExplanationRecord]) -> dict[str, Question]:
    questions = {q.external_id: q for q in study.questions.all()}
    for record in records:
        stored = questions.get(record.question_id)
        if stored is None:
            questions[record.question_id] = Question.objects.create(
                study=study,
                external_id=record.question_id,
                text=record.question,
                choices=list(record.choices),
                answer=record.answer,
            )
        elif (stored.text, tuple(stored.choices), stored.answer) != (
            record.question,
            record.choices,
            record.answer,
        ):
            raise StudyConflictError(
                f"line {record.line}: question '{record.question_id}' is stored with a "
                "different text, choices or answer"
            )
    return questions


def _explanations_upsert(
    *,
    records: Sequence[ExplanationRecord],
    conditions: dict[str, Condition],
    questions: dict[str, Question],
) -> None:
    condition_ids = [c.pk for c in conditions.values()]
    stored = {
        (e.condition_id, e.question_id): e
        for e in Explanation.objects.filter(condition_id__in=condition_ids)
    }
    new: list[Explanation] = []
    newly_cut: list[int] = []
    for record in records:
        condition = conditions[record.condition]
        question = questions[record.question_id]
        existing = stored.get((condition.pk, question.pk))
        if existing is None:
            new.append(
                Explanation(
                    condition=condition,
                    question=question,
                    predicted_answer=record.predicted_answer,
                    text=record.explanation,
                    length=Explanation.words_count(record.explanation),
                    run=record.run,
                    truncated=record.truncated,
                )
            )
        elif (existing.predicted_answer, existing.text) != (
            record.predicted_answer,
            record.explanation,
        ):
            raise StudyConflictError(
                f"line {record.line}: the explanation for question '{record.question_id}' in "
                f"condition '{record.condition}' differs from the stored one; import changed "
                "explanations under a new study slug"
            )
        elif record.truncated and not existing.truncated:
            # The same text, now known to be cut (files written before the flag lack it);
            # a file without the flag never clears it.
            newly_cut.append(existing.pk)
    Explanation.objects.bulk_create(new)
    if newly_cut:
        Explanation.objects.filter(pk__in=newly_cut).update(truncated=True)


def _study_check_pool(*, study: Study) -> None:
    """Refuse a pool from which no participant could get ``per_condition`` items a condition."""
    conditions = list(study.conditions.all())
    needed = study.per_condition * len(conditions)
    question_count = study.questions.count()
    if question_count < needed:
        raise StudyConflictError(
            f"{len(conditions)} conditions x {study.per_condition} items need at least "
            f"{needed} different questions; the file has {question_count}"
        )
    for condition in conditions:
        count = condition.explanations.count()
        if count < study.per_condition:
            raise StudyConflictError(
                f"condition '{condition.name}' has {count} explanation(s); each participant "
                f"needs {study.per_condition} from every condition"
            )


class StudyUnavailableError(Exception):
    """The study admits no new participant; ``reason`` is 'draft', 'paused', 'closed', 'full'
    or 'wrong_study' (the link's STUDY_ID is not the study's Prolific id)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the study is not admitting participants ({reason})")


class ParticipantInactiveError(Exception):
    """The participant can no longer answer (finished, timed out, returned or declined)."""


class RecordOutcome(enum.Enum):
    RECORDED = "recorded"
    # A replayed or duplicate submission of an answered step: nothing was written.
    ALREADY_RECORDED = "already_recorded"
    # A step that is not the participant's current one (for example a page kept open in
    # another tab): nothing was written.
    NOT_CURRENT = "not_current"


def participants_expire(*, study: Study, now: datetime) -> int:
    """Mark participants who ran past the study's time limit as timed out."""
    return Participant.objects.filter(
        study=study, status=Participant.Status.ACTIVE, started_at__lt=study.time_limit_cutoff(now)
    ).update(status=Participant.Status.TIMED_OUT)


def participant_expire_if_late(
    *, participant: Participant, now: datetime | None = None
) -> Participant:
    """Mark this participant timed out if they ran past the time limit; return them updated."""
    if participant.is_expired(now):
        Participant.objects.filter(pk=participant.pk, status=Participant.Status.ACTIVE).update(
            status=Participant.Status.TIMED_OUT
        )
        participant.refresh_from_db(fields=["status"])
    return participant


def participant_start(
    *,
    study: Study,
    prolific_pid: str,
    prolific_study_id: str = "",
    prolific_session_id: str = "",
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> Participant:
    """Admit a consenting participant and give them their items and attention checks.

    Idempotent per Prolific ID: a second call (double click, second tab) returns the
    participant the first one created, with the same items. A study with a Prolific study
    id admits only that ``prolific_study_id``. The study row is locked for
    the duration (on PostgreSQL), so participants arriving together are assigned one after
    another from up-to-date exposure counts; SQLite serialises writers by itself.
    """
    rng = rng or random.SystemRandom()
    now = now or timezone.now()
    with transaction.atomic():
        locked = _study_lock(study)
        existing = Participant.objects.filter(study=locked, prolific_pid=prolific_pid).first()
        if existing is not None:
            return existing
        if locked.status != Study.Status.LIVE:
            raise StudyUnavailableError(locked.status)
        if not locked.admits_prolific_study(prolific_study_id):
            raise StudyUnavailableError("wrong_study")
        participants_expire(study=locked, now=now)
        pool = selectors.pool_items(study=locked, now=now)
        if selectors.study_is_full(study=locked, now=now, pool=pool):
            raise StudyUnavailableError("full")
        chosen = items_choose(
            pool,
            condition_ids=list(locked.conditions.values_list("id", flat=True)),
            per_condition=locked.per_condition,
            rng=rng,
            cap=locked.max_ratings_per_explanation,
        )
        if chosen is None:
            raise StudyUnavailableError("full")
        participant = Participant.objects.create(
            study=locked,
            prolific_pid=prolific_pid,
            prolific_study_id=prolific_study_id,
            prolific_session_id=prolific_session_id,
            started_at=now,
        )
        _items_assign(participant=participant, chosen=chosen, rng=rng)
        _attention_checks_place(participant=participant, item_count=len(chosen), rng=rng)
    return participant


def _study_lock(study: Study) -> Study:
    """The study's row, locked until the transaction ends (PostgreSQL; SQLite serialises writers).

    Every service that creates or changes a participant together with its study takes this
    lock first and the participant's row after it. A participant's insert also locks the
    study's row (its foreign key), so a service that inserted first and locked the study
    second would deadlock with one that did the opposite.
    """
    return Study.objects.select_for_update().get(pk=study.pk)


def _items_assign(*, participant: Participant, chosen: list[PoolItem], rng: random.Random) -> None:
    order = list(chosen)
    rng.shuffle(order)
    Assignment.objects.bulk_create(
        Assignment(
            participant=participant,
            position=position,
            explanation_id=item.explanation_id,
            question_id=item.question_id,
        )
        for position, item in enumerate(order, start=1)
    )


def _attention_checks_place(
    *, participant: Participant, item_count: int, rng: random.Random
) -> None:
    # Checks go between rated items (never before the first), so every check is preceded
    # by real work and cannot be told apart from an item by its place.
    places = range(2, item_count + 1)
    count = min(participant.study.attention_checks, len(places))
    AttentionCheckResponse.objects.bulk_create(
        AttentionCheckResponse(
            participant=participant,
            before_position=place,
            instructed_value=rng.randint(LIKERT_MIN, LIKERT_MAX),
        )
        for place in sorted(rng.sample(places, count))
    )


def participant_decline(
    *,
    study: Study,
    prolific_pid: str,
    prolific_study_id: str = "",
    prolific_session_id: str = "",
) -> Participant:
    """Record that this Prolific ID declined consent; nothing else about them is kept.

    A participant who already consented keeps their record unchanged. The study's row is
    locked first, as ``participant_start`` locks it, so a consent and a refusal of the same
    Prolific ID arriving together take turns instead of deadlocking.
    """
    with transaction.atomic():
        locked = _study_lock(study)
        participant, _ = Participant.objects.get_or_create(
            study=locked,
            prolific_pid=prolific_pid,
            defaults={
                "prolific_study_id": prolific_study_id,
                "prolific_session_id": prolific_session_id,
                "status": Participant.Status.NO_CONSENT,
            },
        )
    return participant


def step_mark_shown(*, step: selectors.Step, now: datetime | None = None) -> None:
    """Start the clock of a step the first time it is shown (a reload keeps the first time)."""
    now = now or timezone.now()
    target: Assignment | AttentionCheckResponse | None = step.check or step.assignment
    if target is None or target.shown_at is not None:
        return
    if rows.step_shown(model=type(target), pk=target.pk, now=now):
        target.shown_at = now
    else:
        # Another request showed it first (two tabs); keep the time that was stored.
        target.refresh_from_db(fields=["shown_at"])


@dataclass(frozen=True)
class StepRecord:
    """What one submission did, and where the participant stands afterwards."""

    outcome: RecordOutcome
    # The first step still unanswered after this submission (None: all answered, or the
    # participant can no longer answer).
    following: selectors.Step | None


def rating_record(
    *,
    participant: Participant,
    step_token: str,
    values: Mapping[str, int],
    now: datetime | None = None,
) -> RecordOutcome:
    """Store one rating a dimension for the participant's current step; see ``step_record``."""
    return step_record(
        participant=participant, step_token=step_token, values=values, now=now
    ).outcome


def step_record(
    *,
    participant: Participant,
    step_token: str,
    values: Mapping[str, int],
    now: datetime | None = None,
    show_following: bool = False,
    already_locked: bool = False,
) -> StepRecord:
    """Store one rating a dimension for the participant's current step.

    ``step_token`` names the step the form was shown for (``Step.token``). Writing is
    guarded twice: the participant row is locked, and the assignment is claimed with a
    conditional update, so a double submit or a replayed form is written exactly once.
    Attention-check steps are recorded as pass/fail, never as ratings.

    The steps are read once, under the lock, and the step that follows is worked out from
    them: with ``show_following`` its clock starts in the same transaction, for a caller
    that shows it in the same response. ``participant`` gets the stored status, completion
    time and attention failures, so callers see a completion at once.

    ``already_locked`` says the caller read ``participant`` with its row locked, in the
    transaction it is in: the work joins that transaction instead of locking again.
    """
    _values_check(values)
    now = now or timezone.now()
    following: selectors.Step | None = None
    if already_locked and not transaction.get_connection().in_atomic_block:
        raise ValueError("already_locked: the participant's row is locked only in a transaction")
    with transaction.atomic(savepoint=not already_locked):
        locked = _participant_lock(participant, now=now, already=already_locked)
        # An inactive participant leaves the block normally so a time-out just detected is saved.
        outcome = None
        if locked.status == Participant.Status.ACTIVE:
            outcome, following = _step_answer(locked, step_token, values, now=now)
            if following is not None and show_following:
                step_mark_shown(step=following, now=now)
    for name in ("status", "completed_at", "attention_failures"):
        setattr(participant, name, getattr(locked, name))
    if outcome is None:
        raise ParticipantInactiveError(participant.get_status_display())
    if participant.status != Participant.Status.ACTIVE:
        following = None
    return StepRecord(outcome=outcome, following=following)


def _step_answer(
    participant: Participant, step_token: str, values: Mapping[str, int], *, now: datetime
) -> tuple[RecordOutcome, selectors.Step | None]:
    steps = selectors.participant_steps(participant)
    unanswered = [s for s in steps if s.answered_at is None]
    step = unanswered[0] if unanswered else None
    if step is None or step.token != step_token:
        answered = any(s.token == step_token and s.answered_at is not None for s in steps)
        outcome = RecordOutcome.ALREADY_RECORDED if answered else RecordOutcome.NOT_CURRENT
        return outcome, step
    if step.check is not None:
        outcome = _check_answer(participant, step.check, values, now=now)
    else:
        assert step.assignment is not None, "a step shows either an item or a check"
        outcome = _assignment_answer(step.assignment, values, now=now)
    if outcome is not RecordOutcome.RECORDED:
        # Another request answered it first; the list read before no longer says where
        # the participant is, so name no following step.
        return outcome, None
    # The steps were read under the participant lock, so whether this was the last
    # unanswered one is known without reading them again (this runs for every rating).
    if len(unanswered) == 1:
        _participant_complete(participant, now=now)
        return outcome, None
    return outcome, unanswered[1]


def _values_check(values: Mapping[str, int]) -> None:
    if set(values) != set(Dimension.values):
        raise ValueError(f"ratings must cover exactly the dimensions {Dimension.values}")
    for dimension, value in values.items():
        if not LIKERT_MIN <= value <= LIKERT_MAX:
            raise ValueError(f"{dimension}: {value} is outside {LIKERT_MIN}–{LIKERT_MAX}")


def _participant_lock(participant: Participant, *, now: datetime, already: bool) -> Participant:
    if already:
        locked = participant
    else:
        locked = rows.participant_locked(participant_id=participant.pk)
        locked.study = participant.study  # the caller loaded it; its time limit is all that is read
    if locked.is_expired(now):
        locked.status = Participant.Status.TIMED_OUT
        locked.save(update_fields=["status"])
    return locked


def _assignment_answer(
    assignment: Assignment, values: Mapping[str, int], *, now: datetime
) -> RecordOutcome:
    if not rows.assignment_claim(assignment_id=assignment.pk, now=now):
        return RecordOutcome.ALREADY_RECORDED
    rows.ratings_insert(assignment_id=assignment.pk, values=values)
    return RecordOutcome.RECORDED


def _check_answer(
    participant: Participant,
    check: AttentionCheckResponse,
    values: Mapping[str, int],
    *,
    now: datetime,
) -> RecordOutcome:
    passed = all(value == check.instructed_value for value in values.values())
    claimed = AttentionCheckResponse.objects.filter(pk=check.pk, answered_at__isnull=True).update(
        answered_at=now, shown_at=Coalesce(F("shown_at"), Value(now)), passed=passed
    )
    if not claimed:
        return RecordOutcome.ALREADY_RECORDED
    if not passed:
        Participant.objects.filter(pk=participant.pk).update(
            attention_failures=F("attention_failures") + 1
        )
        participant.attention_failures += 1  # the row is locked: this is the stored value
    return RecordOutcome.RECORDED


def _participant_complete(participant: Participant, *, now: datetime) -> None:
    Participant.objects.filter(pk=participant.pk, status=Participant.Status.ACTIVE).update(
        status=Participant.Status.COMPLETED, completed_at=now
    )
    participant.status = Participant.Status.COMPLETED
    participant.completed_at = now


# Researcher actions (admin and API): status changes and exclusions.

STUDY_STATUS_CHANGES: dict[str, tuple[str, ...]] = {
    # target status: the statuses it may be reached from
    Study.Status.LIVE: (Study.Status.DRAFT, Study.Status.PAUSED, Study.Status.CLOSED),
    Study.Status.PAUSED: (Study.Status.LIVE,),
    Study.Status.CLOSED: (Study.Status.DRAFT, Study.Status.LIVE, Study.Status.PAUSED),
}


def study_status_change(*, study: Study, status: str, now: datetime | None = None) -> bool:
    """Open, pause or close a study; return False when it is already in (or cannot reach) it.

    Pausing only makes sense for a live study; a closed study may be reopened on purpose.
    The first opening freezes the study's analysis plan (a later one keeps that time).
    """
    allowed_from = STUDY_STATUS_CHANGES.get(status)
    if allowed_from is None:
        raise ValueError(f"a study cannot be set to '{status}' by hand")
    values: dict[str, Any] = {"status": status}
    if status == Study.Status.LIVE:
        values["plan_frozen_at"] = Coalesce(F("plan_frozen_at"), Value(now or timezone.now()))
    changed = Study.objects.filter(pk=study.pk, status__in=allowed_from).update(**values)
    study.refresh_from_db(fields=["status", "plan_frozen_at"])
    return bool(changed)


def study_plan_set(*, study: Study, plan: AnalysisPlan | None) -> bool:
    """Register ``plan`` as the study's analysis plan (None: remove it); False if unchanged.

    The study row is locked and read again, so a study that went live meanwhile is seen:
    a change to the plan of a study that has gone live raises ``StudyPlanFrozenError``.
    """
    name, text, sha256 = (plan.name, plan.text, plan.sha256) if plan is not None else ("", "", "")
    with transaction.atomic():
        locked = _study_lock(study)
        changed = locked.plan_register(name=name, text=text, sha256=sha256)
        if changed:
            locked.save(update_fields=["plan_name", "plan_text", "plan_sha256"])
    study.refresh_from_db(fields=list(Study.PLAN_FIELDS))
    return changed


def participant_exclusion_set(
    *, participant: Participant, excluded: bool, reason: str, decided_by: Any = None
) -> bool:
    """Exclude (or re-include) a participant, keeping an audit record with the reason.

    Returns False and records nothing when the participant is already in that state.
    Their ratings stay in the database and in exports, flagged by ``excluded``. Excluding
    a participant who has not finished also stops them: their unrated items go back to the
    pool and they can answer no more. Re-including them does not restart them, since
    their items may have gone to others meanwhile.
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required to exclude or re-include a participant")
    with transaction.atomic():
        changed = Participant.objects.filter(pk=participant.pk, excluded=not excluded).update(
            excluded=excluded
        )
        if changed:
            ParticipantExclusion.objects.create(
                participant=participant, excluded=excluded, reason=reason, decided_by=decided_by
            )
            if excluded:
                _excluded_stop(Participant.objects.filter(pk=participant.pk))
    participant.refresh_from_db(fields=["excluded", "status"])
    return bool(changed)


def _excluded_stop(participants: QuerySet[Participant]) -> int:
    """Stop the excluded among ``participants`` who are still active; their unrated items
    stop holding explanations (``selectors.assignments_holding`` counts active ones only)."""
    return participants.filter(excluded=True, status=Participant.Status.ACTIVE).update(
        status=Participant.Status.STOPPED
    )


def excluded_release(*, study: Study) -> int:
    """Release the unrated items of the study's excluded participants who are still active.

    Exclusion stops a participant at once; this catches those excluded another way (an
    older version, a script). Returns how many participants were stopped.
    """
    return _excluded_stop(Participant.objects.filter(study=study))


def participant_stop(*, participant: Participant, status: str) -> bool:
    """Mark an active participant returned or timed out; False if they were not active.

    Their unrated items go back to the pool at once: ``selectors.assignments_holding``
    counts unrated items of active participants only. Rated items are kept.
    """
    if status not in (Participant.Status.RETURNED, Participant.Status.TIMED_OUT):
        raise ValueError(f"a participant cannot be stopped with status '{status}'")
    changed = Participant.objects.filter(
        pk=participant.pk, status=Participant.Status.ACTIVE
    ).update(status=status)
    participant.refresh_from_db(fields=["status"])
    return bool(changed)
