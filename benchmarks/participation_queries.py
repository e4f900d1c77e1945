"""CPU of each read and write an item submission makes: hand-built SQL, the ORM, and raw().

``studyapp.participation.queries`` builds some statements itself instead of through the
ORM, because building and compiling an ORM query can cost more CPU than the database spends
answering a small indexed read. This benchmark says, statement by statement, whether that
still pays: it runs each one in three ways against the same rows and prints the CPU
milliseconds per call of this process (``time.process_time``: the Python side, which is
what the choice changes; the database does the same work in every way):

* ``hand``: SQL built once from the models' metadata, its rows converted as the ORM does;
* ``orm``: the same read or write through an ORM queryset, built on every call;
* ``raw``: ``Model.objects.raw()`` with SQL compiled once from that queryset (reads only).

Each figure is the best of ``--repeats`` rounds of ``--calls`` calls, because other
processes on a shared CPU only ever add time. The gain of a hand-built statement is given
per rated item too (the ORM's cost over hand-built SQL): an item submission makes each of
these once, and the server spends
about 13 ms of CPU per rated item in all (``request_cost.py``), so a statement whose gain is
under 5 % of that (0.65 ms) is better written with the ORM.

Run from the project root against PostgreSQL (a test database is created and dropped)::

    DATABASE_URL=postgres://USER@HOST:PORT/NAME .venv/bin/python \\
        benchmarks/participation_queries.py [--calls 500] [--repeats 5] [--questions 150]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, F, Value  # noqa: E402
from django.db.models.functions import Coalesce  # noqa: E402
from django.utils import timezone  # noqa: E402

from studyapp import selectors  # noqa: E402
from studyapp.models import (  # noqa: E402
    Assignment,
    AttentionCheckResponse,
    Explanation,
    Participant,
    Rating,
)
from studyapp.participation import queries  # noqa: E402
from studyapp.participation.services import participant_start  # noqa: E402
from studyapp.studies.services import study_create_from_explanations  # noqa: E402
from studyformats.explanations import ExplanationRecord  # noqa: E402
from studyformats.questionnaire import PLAIN_5  # noqa: E402

# Server CPU per rated item measured by request_cost.py (150 questions, one worker): the
# scale against which a statement's gain is judged.
SERVER_MS_PER_RATED_ITEM = 12.9
RATED_ITEMS = 12  # per participant
CONDITIONS = ("MT:original", "CF:original", "MT+CF:original", "MT+CF:revised")


def study_build(questions: int) -> Participant:
    choices = ("bank", "library", "garden", "kitchen", "school")
    records = [
        ExplanationRecord(
            condition=condition,
            question_id=f"q{number:03d}",
            question=f"Where would you most likely keep item number {number}?",
            choices=choices,
            answer=choices[number % 5],
            predicted_answer=choices[(number + index) % 5],
            explanation=f"Item {number} is kept there because that is what the place is for. " * 3,
            method=condition.split(":")[0].lower(),
            data_variant=condition.split(":")[1],
        )
        for index, condition in enumerate(CONDITIONS)
        for number in range(questions)
    ]
    study = study_create_from_explanations(slug="bench", records=records, live=True)
    return participant_start(study=study, prolific_pid="bench-participant")


def cpu_ms_per_call(call: Callable[[], Any], *, calls: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.process_time()
        for _ in range(calls):
            call()
        best = min(best, time.process_time() - began)
    return 1000.0 * best / calls


def raw_reader(queryset: Any) -> Callable[[], list[Any]]:
    """``queryset`` as ``Model.objects.raw()`` with its SQL compiled once, here."""
    sql, params = queryset.query.sql_with_params()
    model = queryset.model
    return lambda: list(model.objects.raw(sql, params))


def hand_reader(model: Any, order: tuple[str, ...], participant_id: int) -> Callable[[], list[Any]]:
    """A participant's rows of ``model`` read with SQL written out from the model's metadata
    and converted as the ORM converts them: the hand-built way, for comparison."""
    columns = queries._Columns(model, "t")
    sql = (
        f"SELECT {columns.sql()} FROM {columns.table()} "
        f"WHERE {columns.column('participant')} = %s "
        f"ORDER BY {', '.join(columns.column(name) for name in order)}"
    )

    def read() -> list[Any]:
        build = columns.builder()
        with connection.cursor() as cursor:
            cursor.execute(sql, [participant_id])
            return [build(row) for row in cursor.fetchall()]

    return read


def rows_unconverted(queryset: Any) -> list[tuple[Any, ...]]:
    """The rows of ``queryset`` as the database sends them, without the ORM's conversion."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def hand_update(model: Any, sets: str, where: str) -> Callable[..., int]:
    """An UPDATE of one row of ``model`` written out once: ``sets`` and ``where`` name
    columns as ``{field}``, and its parameters are the call's arguments, in order."""
    table = connection.ops.quote_name(model._meta.db_table)

    def column(name: str) -> str:
        return connection.ops.quote_name(model._meta.get_field(name).column)

    names = {field.name: column(field.name) for field in model._meta.concrete_fields}
    sql = f"UPDATE {table} SET {sets.format(**names)} WHERE {where.format(**names)}"

    def update(*params: Any) -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    return update


def statements(participant: Participant) -> dict[str, dict[str, Callable[[], Any]]]:
    """Each statement of an item submission, in each way it can be written."""
    study = participant.study
    assignment = participant.assignments.order_by("position").first()
    check = participant.attention_checks.first()
    assert assignment is not None
    assert check is not None
    now = timezone.now()

    def bound_orm() -> Participant | None:
        return (
            Participant.objects.select_related("study")
            .select_for_update(of=("self",))
            .filter(pk=participant.pk, prolific_pid=participant.prolific_pid, study__slug="bench")
            .first()
        )

    def assignments_orm() -> list[Assignment]:
        return list(Assignment.objects.filter(participant_id=participant.pk).order_by("position"))

    def checks_orm() -> list[AttentionCheckResponse]:
        return list(
            AttentionCheckResponse.objects.filter(participant_id=participant.pk).order_by(
                "before_position", "id"
            )
        )

    def claim_orm() -> int:
        # Never matches (answered_at is set), as a replayed submission: the same statement.
        return Assignment.objects.filter(pk=assignment.pk, answered_at__isnull=True).update(
            answered_at=now, shown_at=Coalesce(F("shown_at"), Value(now))
        )

    def shown_orm() -> int:
        return AttentionCheckResponse.objects.filter(pk=check.pk, shown_at__isnull=True).update(
            shown_at=now
        )

    values = dict.fromkeys(PLAIN_5.keys, 3)

    def ratings_hand() -> None:
        with transaction.atomic():
            queries.ratings_insert(assignment_id=assignment.pk, values=values)
            transaction.set_rollback(True)

    def ratings_orm() -> None:
        with transaction.atomic():
            Rating.objects.bulk_create(
                Rating(assignment_id=assignment.pk, dimension=d, value=v) for d, v in values.items()
            )
            transaction.set_rollback(True)

    stamp = connection.ops.adapt_datetimefield_value(now)
    claim_hand = hand_update(
        Assignment,
        "{answered_at} = %s, {shown_at} = COALESCE({shown_at}, %s)",
        "{id} = %s AND {answered_at} IS NULL",
    )
    shown_hand = hand_update(
        AttentionCheckResponse, "{shown_at} = %s", "{id} = %s AND {shown_at} IS NULL"
    )
    exposures = (
        selectors.assignments_holding(study=study, now=now)
        .values("explanation_id")
        .annotate(n=Count("id"))
        .values_list("explanation_id", "n")
    )
    Assignment.objects.filter(pk=assignment.pk).update(answered_at=now, shown_at=now)
    AttentionCheckResponse.objects.filter(pk=check.pk).update(shown_at=now)
    return {
        "participant with study, locked": {
            "hand": lambda: queries.participant_bound(
                participant_id=participant.pk,
                prolific_pid=participant.prolific_pid,
                slug="bench",
                lock=True,
            ),
            "orm": bound_orm,
        },
        "items": {
            "hand": hand_reader(Assignment, ("position",), participant.pk),
            "orm": assignments_orm,
            "raw": raw_reader(
                Assignment.objects.filter(participant_id=participant.pk).order_by("position")
            ),
        },
        "attention checks": {
            "hand": hand_reader(AttentionCheckResponse, ("before_position", "id"), participant.pk),
            "orm": checks_orm,
            "raw": raw_reader(
                AttentionCheckResponse.objects.filter(participant_id=participant.pk).order_by(
                    "before_position", "id"
                )
            ),
        },
        "claim a step": {
            "hand": lambda: claim_hand(stamp, stamp, assignment.pk),
            "orm": claim_orm,
        },
        "start a step's clock": {
            "hand": lambda: shown_hand(stamp, check.pk),
            "orm": shown_orm,
        },
        "ratings insert (rolled back)": {"hand": ratings_hand, "orm": ratings_orm},
        # Read once per arriving participant, so their gain counts a twelfth per rated item.
        "pool: explanations (per arrival)": {
            "hand": lambda: queries.pool_explanations(study_id=study.pk),
            "orm": lambda: list(
                Explanation.objects.filter(condition__study=study).values_list(
                    "id", "condition_id", "question_id"
                )
            ),
        },
        "pool: exposures (per arrival)": {
            "hand": lambda: rows_unconverted(exposures),
            "orm": lambda: list(exposures.all()),  # .all(): a fresh query, not the cached rows
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round (default 500)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds, best kept (default 5)")
    parser.add_argument(
        "--questions", type=int, default=150, help="questions in the pool, each x 4 conditions"
    )
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        raise SystemExit("set DATABASE_URL to a PostgreSQL server: the figures are for production")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with transaction.atomic():
            participant = study_build(args.questions)
            found = statements(participant)
            results: dict[str, dict[str, float]] = {}
            print(f"CPU ms per call, best of {args.repeats} x {args.calls} calls")
            print(f"   {'statement':32} {'hand':>7} {'orm':>7} {'raw':>7}  gain/rated item")
            for name, ways in found.items():
                for call in ways.values():
                    call()  # warm: SQL caches, converters, the explanation cache
                results[name] = {
                    way: round(cpu_ms_per_call(call, calls=args.calls, repeats=args.repeats), 4)
                    for way, call in ways.items()
                }
                row = results[name]
                gain = row["orm"] - row["hand"]
                if "per arrival" in name:
                    gain /= RATED_ITEMS
                share = 100.0 * gain / SERVER_MS_PER_RATED_ITEM
                raw = f"{row['raw']:7.3f}" if "raw" in row else "      -"
                print(
                    f"   {name:32} {row['hand']:7.3f} {row['orm']:7.3f} {raw}  "
                    f"{gain:+.3f} ms ({share:+.1f} %)"
                )
            transaction.set_rollback(True)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print(
        json.dumps(
            {
                "cpu_ms_per_call": results,
                "server_ms_per_rated_item": SERVER_MS_PER_RATED_ITEM,
                "settings": {"calls": args.calls, "repeats": args.repeats},
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
