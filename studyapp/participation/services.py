"""Taking part in a study: arriving from Prolific, consenting, and answering each step.

An item POST is one call, ``item_submit``: it opens the transaction, reads the participant
named by the browser's binding with their row locked, reads their steps once, claims the
step (an item or an attention check, the same way), stores the ratings, works out the next
step and completes the participant after the last one. Views call these services and hold
no transaction of their own.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from studyapp import selectors
from studyapp.allocation import PoolItem, items_choose
from studyapp.models import Assignment, AttentionCheckResponse, Participant, Questionnaire, Study
from studyapp.participation import queries
from studyapp.participation.binding import Binding
from studyapp.studies.services import questionnaire_default, study_lock
from studyformats.questionnaire import Questionnaire as QuestionnaireDocument


class StudyUnavailableError(Exception):
    """The study admits no new participant; ``reason`` is 'draft', 'paused', 'closed', 'full'
    or 'wrong_study' (the link's STUDY_ID is not the study's Prolific id)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the study is not admitting participants ({reason})")


class RecordOutcome(enum.Enum):
    RECORDED = "recorded"
    # Answers that do not fit the study's questionnaire (a row missing, a value off its
    # scale, not a number): nothing was written.
    INVALID = "invalid"
    # A replayed or duplicate submission of an answered step: nothing was written.
    ALREADY_RECORDED = "already_recorded"
    # A step that is not the participant's current one (for example a page kept open in
    # another tab): nothing was written.
    NOT_CURRENT = "not_current"


def participant_enter(
    *, study: Study, prolific_pid: str, prolific_study_id: str, now: datetime | None = None
) -> Participant | None:
    """The participant a Prolific link names, or None for a newcomer who may go on to consent.

    Raises ``StudyUnavailableError`` when the link is for another Prolific study, or when a
    newcomer arrives at a study that is not live or has no place left. Whoever already has a
    participant comes back to it, whatever the study's state: they may finish what they began.
    """
    if not study.admits_prolific_study(prolific_study_id):
        # A link made up, or meant for another Prolific study: nobody is bound or created.
        raise StudyUnavailableError("wrong_study")
    participant = selectors.participant_get(study=study, prolific_pid=prolific_pid)
    if participant is None:
        if study.status != Study.Status.LIVE:
            raise StudyUnavailableError(study.status)
        if selectors.study_is_full(study=study, now=now or timezone.now()):
            raise StudyUnavailableError("full")
    return participant


def consent_record(*, study: Study, binding: Binding, agree: bool) -> Participant:
    """Admit the bound participant (``agree``) or record that they declined.

    Raises ``StudyUnavailableError`` when a consenting participant can no longer be admitted.
    """
    record = participant_start if agree else participant_decline
    return record(
        study=study,
        prolific_pid=binding.pid,
        prolific_study_id=binding.study_id,
        prolific_session_id=binding.session_id,
    )


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
        locked = study_lock(study)
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
        questionnaire_freeze(study=locked, now=now)
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
    # Checks go between rated items, never before the questionnaire's ``first_after`` items,
    # so every check is preceded by real work and cannot be told apart from an item by its
    # place. Each asks for a labelled point of the scale (as the questionnaire allows).
    questionnaire = participant.study.questionnaire_document
    places = range(questionnaire.attention_checks.first_after + 1, item_count + 1)
    values = questionnaire.check_values()
    wanted = participant.study.attention_checks
    if wanted is None:
        wanted = questionnaire.attention_checks.count
    count = min(wanted, len(places))
    AttentionCheckResponse.objects.bulk_create(
        AttentionCheckResponse(
            participant=participant, before_position=place, instructed_value=rng.choice(values)
        )
        for place in sorted(rng.sample(places, count))
    )


def questionnaire_freeze(*, study: Study, now: datetime) -> None:
    """Fix the study's questionnaire as its first participant arrives: a study without one
    gets the default (plain-5), and the version is frozen, so it never changes under the
    participants who rate with it. Called with the study's row locked."""
    questionnaire_id = study.questionnaire_id
    if questionnaire_id is None:
        study.questionnaire = questionnaire_default()
        study.save(update_fields=["questionnaire"])
        questionnaire_id = study.questionnaire.pk
    Questionnaire.objects.filter(pk=questionnaire_id, frozen_at__isnull=True).update(frozen_at=now)


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
        locked = study_lock(study)
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


def step_mark_shown(*, step: queries.Step, now: datetime | None = None) -> None:
    """Start the clock of a step the first time it is shown (a reload keeps the first time)."""
    now = now or timezone.now()
    target: Assignment | AttentionCheckResponse | None = step.check or step.assignment
    if target is None or target.shown_at is not None:
        return
    if queries.step_shown(model=type(target), pk=target.pk, now=now):
        target.shown_at = now
    else:
        # Another request showed it first (two tabs); keep the time that was stored.
        target.refresh_from_db(fields=["shown_at"])


@dataclass(frozen=True)
class Submission:
    """What one item POST did, and where the participant stands afterwards."""

    # None: the participant can no longer answer (finished, timed out, returned, stopped).
    outcome: RecordOutcome | None
    # As stored after the submission: status, completion time, attention failures.
    participant: Participant
    # The first step still unanswered (None: all answered, or no longer answering). After a
    # submission that was not recorded it is None when it was not read again; after INVALID
    # answers it is the step they were for.
    following: queries.Step | None


def item_submit(
    *,
    binding: Binding,
    slug: str,
    step_token: str,
    values: Mapping[str, object],
    show_following: bool = False,
    now: datetime | None = None,
) -> Submission | None:
    """Store one rating a dimension for the bound participant's current step in study ``slug``.

    Returns None when the binding names no participant of the study. ``step_token`` names
    the step the form was shown for (``Step.token``). Writing is guarded twice: the
    participant's row is locked, and the step is claimed with a conditional update, so a
    double submit or a replayed form is written exactly once. An attention check is recorded
    as passed or failed, never as ratings.

    ``values`` are the answers as sent, by dimension key (numbers or their text); they are
    checked against the study's questionnaire, read from the row already locked, so a value
    outside its scale or a missing row is never stored (outcome ``INVALID``).

    The steps are read once, under the lock, and the step that follows is worked out from
    them; with ``show_following`` its clock starts in the same transaction, for a caller
    that shows it in the same response.
    """
    if binding.participant is None:
        return None
    now = now or timezone.now()
    following: queries.Step | None = None
    outcome: RecordOutcome | None = None
    with transaction.atomic():
        participant = queries.participant_bound(
            participant_id=binding.participant, prolific_pid=binding.pid, slug=slug, lock=True
        )
        if participant is None:
            return None
        if participant.is_expired(now):
            participant.status = Participant.Status.TIMED_OUT
            participant.save(update_fields=["status"])
        if participant.status == Participant.Status.ACTIVE:
            outcome, following = _step_answer(participant, step_token, values, now=now)
            if following is not None and show_following:
                step_mark_shown(step=following, now=now)
    if participant.status != Participant.Status.ACTIVE:
        following = None
    return Submission(outcome=outcome, participant=participant, following=following)


def _step_answer(
    participant: Participant, step_token: str, answers: Mapping[str, object], *, now: datetime
) -> tuple[RecordOutcome, queries.Step | None]:
    steps = queries.participant_steps(participant)
    unanswered = [s for s in steps if s.answered_at is None]
    step = unanswered[0] if unanswered else None
    if step is None or step.token != step_token:
        answered = any(s.token == step_token and s.answered_at is not None for s in steps)
        outcome = RecordOutcome.ALREADY_RECORDED if answered else RecordOutcome.NOT_CURRENT
        return outcome, step
    values = values_parse(answers, participant.study.questionnaire_document)
    if values is None:
        return RecordOutcome.INVALID, step
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


def values_parse(
    answers: Mapping[str, object], questionnaire: QuestionnaireDocument
) -> dict[str, int] | None:
    """One whole number on the questionnaire's scale for each of its dimensions, or None.

    Other keys (a form's token fields) are ignored.

    Examples
    --------
    >>> from studyformats.questionnaire import PLAIN_5
    >>> values_parse(dict.fromkeys(PLAIN_5.keys, "4"), PLAIN_5) == dict.fromkeys(PLAIN_5.keys, 4)
    True
    >>> values_parse(dict.fromkeys(PLAIN_5.keys, 6), PLAIN_5) is None
    True
    """
    points = questionnaire.scale.points
    values: dict[str, int] = {}
    for key in questionnaire.keys:
        raw = answers.get(key)
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            return None
        text = str(raw).strip()
        if not text.isdigit() or not 1 <= int(text) <= points:
            return None
        values[key] = int(text)
    return values


def _assignment_answer(
    assignment: Assignment, values: Mapping[str, int], *, now: datetime
) -> RecordOutcome:
    if not queries.step_claim(model=Assignment, pk=assignment.pk, now=now):
        return RecordOutcome.ALREADY_RECORDED
    queries.ratings_insert(assignment_id=assignment.pk, values=values)
    return RecordOutcome.RECORDED


def _check_answer(
    participant: Participant,
    check: AttentionCheckResponse,
    values: Mapping[str, int],
    *,
    now: datetime,
) -> RecordOutcome:
    passed = all(value == check.instructed_value for value in values.values())
    if not queries.step_claim(model=AttentionCheckResponse, pk=check.pk, now=now, passed=passed):
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
