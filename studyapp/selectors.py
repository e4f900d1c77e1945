"""Shared reads over studies, the item pool and participants' progress."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q, QuerySet

from studyapp.allocation import Pool
from studyapp.models import Assignment, Participant, Study
from studyapp.participation import queries


def study_get(*, slug: str) -> Study | None:
    return Study.objects.filter(slug=slug).first()


def participant_get(*, study: Study, prolific_pid: str) -> Participant | None:
    return Participant.objects.filter(study=study, prolific_pid=prolific_pid).first()


def assignments_holding(*, study: Study, now: datetime) -> QuerySet[Assignment]:
    """Assignments that occupy their explanation: rated ones, and unrated ones still in time.

    An unrated item of a participant who ran past the time limit, returned the study or
    otherwise stopped no longer counts, so it goes back to the pool.
    """
    in_time = Q(
        participant__status=Participant.Status.ACTIVE,
        participant__started_at__gte=study.time_limit_cutoff(now),
    )
    return Assignment.objects.filter(participant__study=study).filter(
        Q(answered_at__isnull=False) | in_time
    )


def _exposure_rows(*, study: Study, now: datetime) -> QuerySet[Assignment, tuple[int, int]]:
    return (
        assignments_holding(study=study, now=now)
        .values("explanation_id")
        .annotate(n=Count("id"))
        .values_list("explanation_id", "n")
    )


def explanation_exposures(*, study: Study, now: datetime) -> dict[int, int]:
    """How many participants rated or are rating each explanation of the study (0 omitted)."""
    return dict(_exposure_rows(study=study, now=now))


def pool_items(*, study: Study, now: datetime) -> Pool:
    """Every explanation of the study with its exposure (as ``explanation_exposures``).

    Read for every arriving participant, from a pool of thousands of explanations. The
    explanations and the counts are two reads put together here: joined in one statement, the plan depended on the
    tables' statistics, and while a new study filled up faster than they were refreshed
    PostgreSQL could count the assignments again for every explanation (46 ms a read
    under load instead of a few).
    """
    exposures = dict(_exposure_rows(study=study, now=now))
    return Pool(
        (explanation, condition, question, exposures.get(explanation, 0))
        for explanation, condition, question in queries.pool_explanations(study_id=study.pk)
    )


def participants_occupying(*, study: Study, now: datetime) -> QuerySet[Participant]:
    """Participants who count towards ``max_participants``: finished, or still in time."""
    return Participant.objects.filter(study=study).filter(
        Q(status=Participant.Status.COMPLETED)
        | Q(status=Participant.Status.ACTIVE, started_at__gte=study.time_limit_cutoff(now))
    )


def study_is_full(*, study: Study, now: datetime, pool: Pool | None = None) -> bool:
    """No place for a new participant: enough people, or too few explanations left to rate.

    The second test counts what is left per condition; the rarer case where enough is
    left but not on enough different questions is found when items are assigned. A caller
    that has read the pool already passes it as ``pool``.
    """
    if (
        study.max_participants is not None
        and participants_occupying(study=study, now=now).count() >= study.max_participants
    ):
        return True
    cap = study.max_ratings_per_explanation
    if cap is None:
        return False
    pool = pool if pool is not None else pool_items(study=study, now=now)
    left = pool.open_per_condition(study.conditions.values_list("id", flat=True), cap)
    return any(count < study.per_condition for count in left.values())
