"""Live monitoring of a study: the figures the admin dashboard and the API's progress show."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from studyapp.models import (
    Assignment,
    AttentionCheckResponse,
    Condition,
    Explanation,
    Participant,
    Study,
    StudyReport,
)


@dataclass(frozen=True)
class StudyProgress:
    """Participant counts, timing, ratings per condition and pool coverage of one study."""

    participants_started: int  # consented and got items
    participants_active: int  # still within the time limit
    participants_completed: int
    # returned, timed out, stopped by a researcher, or active past the time limit
    participants_abandoned: int
    participants_no_consent: int
    participants_excluded: int
    participants_attention_flagged: int
    median_completion_seconds: float | None
    ratings_total: int
    ratings_per_condition: dict[str, int]
    explanations_total: int
    # How many explanations were rated 0, 1, 2, ... times: {times rated: explanations}.
    exposure_histogram: dict[int, int]
    attention_checks_answered: int
    attention_checks_failed: int
    # Excluded participants still active: their unrated items still hold explanations.
    participants_excluded_holding: int = 0

    @property
    def attention_fail_rate(self) -> float | None:
        if not self.attention_checks_answered:
            return None
        return self.attention_checks_failed / self.attention_checks_answered

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["attention_fail_rate"] = self.attention_fail_rate
        # JSON object keys are strings; keep the histogram ordered by times rated.
        data["exposure_histogram"] = {
            str(times): count for times, count in sorted(self.exposure_histogram.items())
        }
        return data


def study_progress(*, study: Study, now: datetime | None = None) -> StudyProgress:
    now = now or timezone.now()
    participants = Participant.objects.filter(study=study)
    status = dict(participants.values("status").annotate(n=Count("id")).values_list("status", "n"))
    cutoff = study.time_limit_cutoff(now)
    active_in_time = participants.filter(
        status=Participant.Status.ACTIVE, started_at__gte=cutoff
    ).count()
    active_late = status.get(Participant.Status.ACTIVE, 0) - active_in_time
    no_consent = status.get(Participant.Status.NO_CONSENT, 0)
    checks = AttentionCheckResponse.objects.filter(
        participant__study=study, answered_at__isnull=False
    ).aggregate(answered=Count("id"), failed=Count("id", filter=Q(passed=False)))
    ratings_total, per_condition = _rated_items_per_condition(study)
    return StudyProgress(
        participants_started=sum(status.values()) - no_consent,
        participants_active=active_in_time,
        participants_completed=status.get(Participant.Status.COMPLETED, 0),
        participants_abandoned=status.get(Participant.Status.RETURNED, 0)
        + status.get(Participant.Status.TIMED_OUT, 0)
        + status.get(Participant.Status.STOPPED, 0)
        + active_late,
        participants_no_consent=no_consent,
        participants_excluded=participants.filter(excluded=True).count(),
        participants_excluded_holding=participants.filter(
            excluded=True, status=Participant.Status.ACTIVE
        ).count(),
        participants_attention_flagged=participants.filter(
            attention_failures__gte=Participant.ATTENTION_FAILURES_TO_FLAG
        ).count(),
        median_completion_seconds=_median_completion_seconds(participants),
        ratings_total=ratings_total,
        ratings_per_condition=per_condition,
        explanations_total=Explanation.objects.filter(condition__study=study).count(),
        exposure_histogram=_exposure_histogram(study),
        attention_checks_answered=checks["answered"],
        attention_checks_failed=checks["failed"],
    )


def _median_completion_seconds(participants: QuerySet[Participant]) -> float | None:
    durations = [
        (completed - started).total_seconds()
        for started, completed in participants.filter(
            status=Participant.Status.COMPLETED, completed_at__isnull=False
        ).values_list("started_at", "completed_at")
        if completed is not None
    ]
    return statistics.median(durations) if durations else None


def _rated_items_per_condition(study: Study) -> tuple[int, dict[str, int]]:
    """Rated items (one per answered assignment) per condition, every condition listed."""
    counts = dict(
        Assignment.objects.filter(participant__study=study, answered_at__isnull=False)
        .values("explanation__condition_id")
        .annotate(n=Count("id"))
        .values_list("explanation__condition_id", "n")
    )
    per_condition = {
        condition.name: counts.get(condition.pk, 0)
        for condition in Condition.objects.filter(study=study).order_by("name")
    }
    return sum(per_condition.values()), per_condition


def _exposure_histogram(study: Study) -> dict[int, int]:
    rated = (
        Explanation.objects.filter(condition__study=study)
        .annotate(times=Count("assignments", filter=Q(assignments__answered_at__isnull=False)))
        .values_list("times", flat=True)
    )
    histogram = Counter(rated)
    if not histogram:
        return {}
    # Every count from 0 to the maximum, so a gap in coverage shows as an empty bar.
    return {times: histogram.get(times, 0) for times in range(max(histogram) + 1)}


def study_latest_report(study: Study) -> StudyReport | None:
    return StudyReport.objects.filter(study=study).order_by("-created_at", "-id").first()


# Horizontal bar charts drawn as inline SVG on the server (no JavaScript, nothing from a CDN).
CHART_LABEL_WIDTH = 160
CHART_BAR_WIDTH = 320


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    y: int
    width: float

    @property
    def x(self) -> int:
        return CHART_LABEL_WIDTH

    @property
    def label_x(self) -> int:
        return CHART_LABEL_WIDTH - 10

    @property
    def text_x(self) -> float:
        return CHART_LABEL_WIDTH + self.width + 6


def bars_layout(
    items: list[tuple[str, float]], *, bar_height: int = 18, gap: int = 6
) -> tuple[list[Bar], int]:
    """Bar positions for a horizontal SVG bar chart; returns (bars, chart height)."""
    largest = max((value for _, value in items), default=0) or 1
    bars = [
        Bar(
            label=label,
            value=value,
            text=f"{value:g}",
            y=index * (bar_height + gap),
            width=round(CHART_BAR_WIDTH * value / largest, 1),
        )
        for index, (label, value) in enumerate(items)
    ]
    return bars, max(len(items) * (bar_height + gap) - gap, bar_height)
