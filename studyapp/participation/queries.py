"""The reads and writes of taking part: a participant's steps, claiming a step, its ratings.

Each runs a dozen times per participant, so each is written the cheapest way that pays:

* the ORM, where its cost over hand-built SQL is small (starting a step's clock, 2.8 % of
  the server's CPU per rated item);
* ``Model.objects.raw()`` with SQL compiled once from a queryset, where the ORM costs more
  but raw() nearly nothing (the items and attention checks of a participant);
* SQL built once per process from the models' metadata (never typed by hand), its rows
  converted exactly as the ORM converts them, where the ORM costs more: the participant
  joined with the study and locked (9.6 %), and, kept together so that an item POST stays
  within its CPU budget, the claim of a step (4.4 %) and the multi-row ratings insert
  (3.9 %); and the pool's id triples, read by the thousand on each arrival.

``benchmarks/participation_queries.py`` measures each statement in each way; every kept
hand-built statement says in one line what it saves. The explanations and questions a
step shows never change, so they come from a per-process cache (``pool_cache``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import QuerySet

from studyapp.models import (
    Assignment,
    AttentionCheckResponse,
    Condition,
    Explanation,
    Participant,
    Rating,
    Study,
)

M = TypeVar("M", bound=models.Model)
_Converter = Callable[[Any, Any, Any], Any]


def _quote(name: str | None) -> str:
    assert name is not None, "a concrete field always has a column"
    return connection.ops.quote_name(name)


def _column(model: type[models.Model], name: str) -> str:
    """The quoted column of ``model``'s field ``name``, unqualified (for UPDATE and INSERT)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field), f"{name} is not a column of {model}"
    return _quote(field.column)


class _Columns(Generic[M]):
    """One model's concrete columns in a SELECT under ``alias``, and how to build it back."""

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self._converters: dict[str, list[tuple[int, list[_Converter], Any]]] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def sql(self) -> str:
        return ", ".join(f"{self.alias}.{_quote(field.column)}" for field in self.fields)

    def table(self) -> str:
        return f"{_quote(self.model._meta.db_table)} {self.alias}"

    def column(self, name: str) -> str:
        return f"{self.alias}.{_column(self.model, name)}"

    def builder(self) -> Callable[[Sequence[Any]], M]:
        """Builds instances from this model's slice of a row. The connection, its converters
        and the field names are looked up here once, not again for every row."""
        db = connections[DEFAULT_DB_ALIAS]
        if db.vendor not in self._converters:
            found = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                converters = db.ops.get_db_converters(column) + column.get_db_converters(db)
                if converters:
                    found.append((index, converters, column))
            self._converters[db.vendor] = found
        converting = self._converters[db.vendor]
        from_db, alias, attnames = self.model.from_db, db.alias, self.attnames

        def build(values: Sequence[Any]) -> M:
            row = list(values)
            for index, converters, column in converting:
                value = row[index]
                for converter in converters:
                    value = converter(value, column, db)
                row[index] = value
            return from_db(alias, attnames, row)

        return build


_PARTICIPANT = _Columns(Participant, "p")
_STUDY = _Columns(Study, "s")
_EXPLANATION = _Columns(Explanation, "e")
_CONDITION = _Columns(Condition, "k")

_sql_cache: dict[tuple[str, str], str] = {}


def _sql(name: str, build: Callable[[], str]) -> str:
    key = (connection.vendor, name)
    if key not in _sql_cache:
        _sql_cache[key] = build()
    return _sql_cache[key]


def _compiled(name: str, build: Callable[[], QuerySet[Any, Any]]) -> str:
    """The SQL of the queryset ``build`` makes, compiled once per database vendor; its one
    parameter becomes the placeholder each call fills in (for ``Model.objects.raw()``)."""

    def compile_once() -> str:
        sql, params = build().query.sql_with_params()
        assert len(params) == 1, "one parameter, filled in on every call"
        return sql

    return _sql(name, compile_once)


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def participant_bound(
    *, participant_id: int, prolific_pid: str, slug: str, lock: bool = False
) -> Participant | None:
    """The participant with this id and Prolific ID in the study ``slug``, with its study.

    With ``lock`` (inside a transaction) the participant's row, and only that row, stays
    locked until the transaction ends, where the database can lock rows (PostgreSQL).
    """
    # Hand-built: 1.23 ms a call less than select_related().select_for_update(), 9.6 % of a
    # rated item's CPU (benchmarks/participation_queries.py).

    def build() -> str:
        sql = (
            f"SELECT {_PARTICIPANT.sql()}, {_STUDY.sql()} "
            f"FROM {_PARTICIPANT.table()} "
            f"INNER JOIN {_STUDY.table()} ON {_STUDY.column('id')} = {_PARTICIPANT.column('study')} "
            f"WHERE {_PARTICIPANT.column('id')} = %s AND {_PARTICIPANT.column('prolific_pid')} = %s "
            f"AND {_STUDY.column('slug')} = %s"
        )
        if lock and connection.features.has_select_for_update:
            # Never the study's row: every participant of the study would queue behind it.
            of = (_PARTICIPANT.alias,) if connection.features.has_select_for_update_of else ()
            sql += " " + connection.ops.for_update_sql(of=of)
        return sql

    rows = _fetch(_sql(f"participant_bound:{lock}", build), [participant_id, prolific_pid, slug])
    if not rows:
        return None
    split = len(_PARTICIPANT)
    participant = _PARTICIPANT.builder()(rows[0][:split])
    participant.study = _STUDY.builder()(rows[0][split:])
    return participant


class PoolCache:
    """The explanations of recent studies, each with its question, kept in this process.

    Every step read needs the explanation and question of each of the participant's items,
    and a study's explanations and questions never change once imported (a changed text is
    refused; new ones may be added). So each is read from the database once per process, the
    first time a participant needs it, instead of with every step. They are read a
    participant's items at a time, not the whole pool at once: reading thousands at a
    study's launch would hold up the other requests of that worker just when participants
    arrive. A study is known by its id and creation time together, so a study created again
    under a reused id (a test database rolled back, a restored backup) never sees another's
    explanations. The ``studies`` most recently used are kept.
    """

    def __init__(self, studies: int = 16) -> None:
        self.studies = studies
        self._known: OrderedDict[tuple[int, datetime], dict[int, Explanation]] = OrderedDict()
        self._lock = threading.Lock()

    def explanations(self, study: Study, ids: Iterable[int]) -> dict[int, Explanation]:
        """The explanations ``ids`` of ``study`` (with their questions), and any read before."""
        key = (study.pk, study.created_at)
        with self._lock:
            known = self._known.get(key)
            if known is None:
                known = self._known[key] = {}
                while len(self._known) > self.studies:
                    self._known.popitem(last=False)
            else:
                self._known.move_to_end(key)
        missing = [pk for pk in ids if pk not in known]
        if missing:
            read = Explanation.objects.filter(pk__in=missing, condition__study=study)
            known.update((e.pk, e) for e in read.select_related("question"))
        return known

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


pool_cache = PoolCache()


def participant_assignments(participant: Participant) -> list[Assignment]:
    """The participant's items in order, each with its explanation and question.

    Only the items are read; their explanations and questions come from ``pool_cache``.
    """
    # raw() with SQL compiled once: 0.27 ms a call more than hand-built SQL, 0.59 ms less
    # than the ORM queryset (benchmarks/participation_queries.py).
    sql = _compiled(
        "participant_assignments",
        lambda: Assignment.objects.filter(participant_id=0).order_by("position"),
    )
    assignments = list(Assignment.objects.raw(sql, [participant.pk]))
    explanations = pool_cache.explanations(
        participant.study, (a.explanation_id for a in assignments)
    )
    for assignment in assignments:
        assignment.explanation = explanations[assignment.explanation_id]
    return assignments


def participant_checks(*, participant_id: int) -> list[AttentionCheckResponse]:
    """The participant's attention checks in the order they are shown."""
    # raw() with SQL compiled once: 0.13 ms a call more than hand-built SQL, 0.69 ms less
    # than the ORM queryset (benchmarks/participation_queries.py).
    sql = _compiled(
        "participant_checks",
        lambda: AttentionCheckResponse.objects.filter(participant_id=0).order_by(
            "before_position", "id"
        ),
    )
    return list(AttentionCheckResponse.objects.raw(sql, [participant_id]))


def pool_explanations(*, study_id: int) -> list[tuple[Any, ...]]:
    """Every explanation of the study as (explanation, condition, question) ids.

    Read for every arriving participant, from a pool of thousands of explanations, so the
    ids come back as the database sends them, with no conversion of each value.
    """
    # Hand-built: 1.4 ms less per arrival than values_list() with 600 explanations, growing
    # with the pool: 0.9 % of a rated item's CPU at 150 questions, about 7 % at 1,221.
    sql = _sql(
        "pool_explanations",
        lambda: (
            f"SELECT {_EXPLANATION.column('id')}, {_EXPLANATION.column('condition')}, "
            f"{_EXPLANATION.column('question')} FROM {_EXPLANATION.table()} "
            f"INNER JOIN {_CONDITION.table()} "
            f"ON {_CONDITION.column('id')} = {_EXPLANATION.column('condition')} "
            f"WHERE {_CONDITION.column('study')} = %s"
        ),
    )
    return _fetch(sql, [study_id])


def _execute(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def step_claim(
    *, model: type[Assignment | AttentionCheckResponse], pk: int, now: datetime, **values: Any
) -> bool:
    """Mark an item or check answered at ``now`` (and shown, if it never was), with
    ``values`` for other columns (a check's ``passed``), unless it already is answered.

    True when this call claimed it: a second submission of the same step finds it taken.
    """
    # Hand-built: 0.57 ms a call less than QuerySet.update(), 4.4 % of a rated item's CPU;
    # kept with the ratings insert so that the item POST stays within its CPU budget.
    names = sorted(values)
    sql = _sql(
        f"step_claim:{model._meta.db_table}:{','.join(names)}",
        lambda: (
            f"UPDATE {_quote(model._meta.db_table)} "
            f"SET {_column(model, 'answered_at')} = %s, "
            f"{_column(model, 'shown_at')} = COALESCE({_column(model, 'shown_at')}, %s)"
            + "".join(f", {_column(model, name)} = %s" for name in names)
            + f" WHERE {_column(model, 'id')} = %s AND {_column(model, 'answered_at')} IS NULL"
        ),
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    return _execute(sql, [stamp, stamp, *(values[name] for name in names), pk]) == 1


def step_shown(*, model: type[Assignment | AttentionCheckResponse], pk: int, now: datetime) -> bool:
    """Start the clock of an item or check unless it already runs; True when this call did."""
    return model.objects.filter(pk=pk, shown_at__isnull=True).update(shown_at=now) == 1


def ratings_insert(*, assignment_id: int, values: Mapping[str, int]) -> None:
    """One rating row per dimension of the item, in one statement."""
    # Hand-built: 0.50 ms a call less than bulk_create(), 3.9 % of a rated item's CPU; kept
    # with the claim so that the item POST stays within its CPU budget.
    sql = _sql(
        f"ratings_insert:{len(values)}",
        lambda: (
            f"INSERT INTO {_quote(Rating._meta.db_table)} "
            f"({_column(Rating, 'assignment')}, {_column(Rating, 'dimension')}, "
            f"{_column(Rating, 'value')}) "
            f"VALUES {', '.join(['(%s, %s, %s)'] * len(values))}"
        ),
    )
    params: list[Any] = []
    for dimension, value in values.items():
        params += [assignment_id, dimension, value]
    _execute(sql, params)


@dataclass(frozen=True)
class Step:
    """The page a participant is on: a rated item or an attention check."""

    item_number: int  # 1-based number of the rated item this step shows or precedes
    item_total: int
    assignment: Assignment | None = None
    check: AttentionCheckResponse | None = None

    @property
    def token(self) -> str:
        """Names the step in its form, so a stale or replayed submission is recognised."""
        if self.check is not None:
            return f"check-{self.check.before_position}"
        return f"item-{self.item_number}"

    @property
    def items_done(self) -> int:
        return self.item_number - 1

    @property
    def answered_at(self) -> datetime | None:
        target = self.check or self.assignment
        return target.answered_at if target is not None else None


def participant_steps(participant: Participant) -> list[Step]:
    """All steps in the order shown: each item, preceded by the checks placed before it."""
    assignments = participant_assignments(participant)
    checks: dict[int, list[AttentionCheckResponse]] = {}
    for check in participant_checks(participant_id=participant.pk):
        checks.setdefault(check.before_position, []).append(check)
    total = len(assignments)
    steps: list[Step] = []
    for assignment in assignments:
        for check in checks.get(assignment.position, []):
            steps.append(Step(item_number=assignment.position, item_total=total, check=check))
        steps.append(Step(item_number=assignment.position, item_total=total, assignment=assignment))
    return steps


def participant_current_step(participant: Participant) -> Step | None:
    """The first unanswered step, or None when the participant has answered everything."""
    for step in participant_steps(participant):
        if step.answered_at is None:
            return step
    return None
