"""Everything that writes study data: creating studies and running a participant through one."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from studyapp.importing import ExplanationRecord
from studyapp.models import Condition, Explanation, Question, Study


class StudyConflictError(Exception):
    """The request contradicts what the database already holds for this study."""


def study_create_from_explanations(
    *,
    slug: str,
    records: Sequence[ExplanationRecord],
    title: str | None = None,
    completion_code: str | None = None,
    per_condition: int | None = None,
    live: bool = False,
) -> Study:
    """Create the study ``slug`` with the item pool in ``records``, or bring it up to date.

    Idempotent: importing the same records again changes nothing. New conditions,
    questions and explanations are added; an explanation or question that differs from the
    stored one raises ``StudyConflictError`` instead of silently changing what earlier
    participants rated. ``live`` opens the study (a closed study stays closed).
    """
    if not records:
        raise StudyConflictError("there are no explanations to import")
    with transaction.atomic():
        study = _study_upsert(
            slug=slug, title=title, completion_code=completion_code, per_condition=per_condition
        )
        conditions = _conditions_upsert(study=study, records=records)
        questions = _questions_upsert(study=study, records=records)
        _explanations_upsert(records=records, conditions=conditions, questions=questions)
        _study_check_pool(study=study)
        if live and study.status in (Study.Status.DRAFT, Study.Status.PAUSED):
            study.status = Study.Status.LIVE
            study.save(update_fields=["status"])
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
        study.full_clean()
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
        study.full_clean()
        study.save(update_fields=changed)
    return study


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
    Explanation.objects.bulk_create(new)


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
