"""The reads and writes of taking part: a participant's steps, claiming a step, its ratings.

These run a dozen times per participant, so each is written to cost little. Most go through
the ORM. Where building and compiling the ORM query cost more CPU than the database spends
answering a small indexed read, the SQL is built once per process from the models' metadata
(never by hand) and its rows are converted exactly as the ORM converts them (the backend's
and the fields' own converters), so callers see ordinary model instances. Each such read says
in one line what it saves per rated item, as ``benchmarks/request_cost.py`` measured it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    Question,
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
_ASSIGNMENT = _Columns(Assignment, "a")
_EXPLANATION = _Columns(Explanation, "e")
_QUESTION = _Columns(Question, "q")
_CHECK = _Columns(AttentionCheckResponse, "c")
_CONDITION = _Columns(Condition, "k")

_sql_cache: dict[tuple[str, str], str] = {}


def _sql(name: str, build: Callable[[], str]) -> str:
    key = (connection.vendor, name)
    if key not in _sql_cache:
        _sql_cache[key] = build()
    return _sql_cache[key]


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


def participant_assignments(*, participant_id: int) -> list[Assignment]:
    """The participant's items in order, each with its explanation and question."""
    sql = _sql(
        "participant_assignments",
        lambda: (
            f"SELECT {_ASSIGNMENT.sql()}, {_EXPLANATION.sql()}, {_QUESTION.sql()} "
            f"FROM {_ASSIGNMENT.table()} "
            f"INNER JOIN {_EXPLANATION.table()} "
            f"ON {_EXPLANATION.column('id')} = {_ASSIGNMENT.column('explanation')} "
            f"INNER JOIN {_QUESTION.table()} "
            f"ON {_QUESTION.column('id')} = {_EXPLANATION.column('question')} "
            f"WHERE {_ASSIGNMENT.column('participant')} = %s "
            f"ORDER BY {_ASSIGNMENT.column('position')}"
        ),
    )
    first, second = len(_ASSIGNMENT), len(_ASSIGNMENT) + len(_EXPLANATION)
    assignment_of, explanation_of, question_of = (
        _ASSIGNMENT.builder(),
        _EXPLANATION.builder(),
        _QUESTION.builder(),
    )
    assignments = []
    for row in _fetch(sql, [participant_id]):
        assignment = assignment_of(row[:first])
        explanation = explanation_of(row[first:second])
        explanation.question = question_of(row[second:])
        assignment.explanation = explanation
        assignments.append(assignment)
    return assignments


def participant_checks(*, participant_id: int) -> list[AttentionCheckResponse]:
    """The participant's attention checks in the order they are shown."""
    sql = _sql(
        "participant_checks",
        lambda: (
            f"SELECT {_CHECK.sql()} FROM {_CHECK.table()} "
            f"WHERE {_CHECK.column('participant')} = %s "
            f"ORDER BY {_CHECK.column('before_position')}, {_CHECK.column('id')}"
        ),
    )
    check_of = _CHECK.builder()
    return [check_of(row) for row in _fetch(sql, [participant_id])]


def unconverted(queryset: QuerySet[Any, Any]) -> list[tuple[Any, ...]]:
    """The rows of an ORM query as the database sends them, without the ORM's conversion of
    every value. Only for queries of ids and counts, which need none, read in thousands."""
    sql, params = queryset.query.sql_with_params()
    return _fetch(sql, params)


def pool_explanations(*, study_id: int) -> list[tuple[Any, ...]]:
    """Every explanation of the study as (explanation, condition, question) ids."""
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
    sql = _sql(
        f"step_shown:{model._meta.db_table}",
        lambda: (
            f"UPDATE {_quote(model._meta.db_table)} SET {_column(model, 'shown_at')} = %s "
            f"WHERE {_column(model, 'id')} = %s AND {_column(model, 'shown_at')} IS NULL"
        ),
    )
    return _execute(sql, [connection.ops.adapt_datetimefield_value(now), pk]) == 1


def ratings_insert(*, assignment_id: int, values: Mapping[str, int]) -> None:
    """One rating row per dimension of the item, in one statement."""
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
    assignments = participant_assignments(participant_id=participant.pk)
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
