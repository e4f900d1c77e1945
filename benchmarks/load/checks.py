"""The database side: the study each phase loads, and the check of what was stored.

These run in the load generator's process through the project's models, outside the timed
part of a phase: a study is created before its participants arrive, and the database is
compared with what the server acknowledged once they are done.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

CONDITIONS = ("MT:original", "CF:original", "MT+CF:original", "MT+CF:revised")


def study_create(*, slug: str, questions: int) -> None:
    """A live study with ``questions`` questions, each explained once per condition."""
    from studyapp.importing import explanations_read
    from studyapp.studies.services import study_create_from_explanations

    choices = ["bank", "library", "garden", "kitchen", "school"]
    lines = [
        json.dumps(
            {
                "condition": condition,
                "question_id": f"{slug}-q{q:04d}",
                "question": f"Where would you most likely find thing number {q}?",
                "choices": choices,
                "answer": choices[q % 5],
                "predicted_answer": choices[(q + c) % 5],
                "explanation": f"Thing {q} is usually found there because "
                + "people keep such things in that place " * (1 + (q + c) % 4),
                "student": "t5-v1_1-small",
                "method": condition.split(":")[0].lower(),
                "data_variant": condition.split(":")[1],
                "run": "load-test",
            }
        )
        for q in range(questions)
        for c, condition in enumerate(CONDITIONS)
    ]
    study_create_from_explanations(
        slug=slug, records=explanations_read(lines), title="Load test", live=True
    )


@dataclass(frozen=True)
class Ack:
    """A submission the server acknowledged: what the client sent and was told was saved."""

    pid: str
    token: str
    values: dict[str, int]


def study_check(*, slug: str, acks: list[Ack], pids: list[str]) -> dict[str, Any]:
    """Compare the database with what the participants were told; return counts of problems."""
    from django.db.models import Count

    from studyapp.models import Assignment, AttentionCheckResponse, Participant, Rating, Study
    from studyformats.questionnaire import PLAIN_5

    study = Study.objects.get(slug=slug)
    participants = {p.prolific_pid: p for p in Participant.objects.filter(study=study)}
    assignments = {
        (a.participant.prolific_pid, a.position): a
        for a in Assignment.objects.filter(participant__study=study).select_related(
            "participant", "explanation"
        )
    }
    checks = {
        (c.participant.prolific_pid, c.before_position): c
        for c in AttentionCheckResponse.objects.filter(participant__study=study).select_related(
            "participant"
        )
    }
    ratings: dict[int, dict[str, int]] = defaultdict(dict)
    duplicated = 0
    for rating in Rating.objects.filter(assignment__participant__study=study):
        if rating.dimension in ratings[rating.assignment_id]:
            duplicated += 1
        ratings[rating.assignment_id][rating.dimension] = rating.value

    lost = 0
    for ack in acks:
        kind, _, number = ack.token.partition("-")
        if kind == "check":
            check = checks.get((ack.pid, int(number)))
            lost += check is None or check.answered_at is None
            continue
        assignment = assignments.get((ack.pid, int(number)))
        stored = ratings.get(assignment.pk, {}) if assignment else {}
        lost += stored != ack.values
    acked_tokens = Counter((ack.pid, ack.token) for ack in acks)

    per_participant = defaultdict(list)
    for (pid, _), assignment in assignments.items():
        per_participant[pid].append(assignment)
    unbalanced = question_twice = 0
    for items in per_participant.values():
        by_condition = Counter(a.explanation.condition_id for a in items)
        wanted = {study.per_condition} if by_condition else set()
        unbalanced += set(by_condition.values()) != wanted or len(by_condition) != len(CONDITIONS)
        question_twice += len({a.question_id for a in items}) != len(items)

    answered = Counter(
        Assignment.objects.filter(participant__study=study, answered_at__isnull=False)
        .values_list("explanation_id", flat=True)
        .iterator()
    )
    spread = 0
    for condition in study.conditions.annotate(n=Count("explanations")):
        counts = [answered.get(e, 0) for e in condition.explanations.values_list("id", flat=True)]
        spread = max(spread, max(counts) - min(counts))
    partial = sum(
        1
        for a in assignments.values()
        if (a.answered_at is not None) != (len(ratings.get(a.pk, {})) == len(PLAIN_5.keys))
    )
    completed = sum(p.status == Participant.Status.COMPLETED for p in participants.values())
    return {
        "participants": len(participants),
        "completed": completed,
        "not_completed": len(pids) - completed,
        "acknowledged_submissions": len(acks),
        "lost": lost,
        "acknowledged_twice": sum(n > 1 for n in acked_tokens.values()),
        "duplicated_ratings": duplicated,
        "partially_stored_items": partial,
        "unbalanced_participants": unbalanced,
        "question_twice_participants": question_twice,
        "exposure_spread_max": spread,
        "ratings_stored": sum(len(r) for r in ratings.values()),
    }
