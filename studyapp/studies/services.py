"""Managing studies: creating one from an explanations file, opening and closing it,
registering its analysis plan, and excluding or stopping participants.

The ``create_study`` command, the admin's upload, the API and the distillation's study stage
all create studies through ``study_import_file`` or ``study_create_from_explanations``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from analysis.errors import AnalysisError
from analysis.plan import AnalysisPlan, plan_load
from studyapp.importing import ExplanationsFileError, explanations_read
from studyapp.models import (
    Condition,
    Explanation,
    Participant,
    ParticipantExclusion,
    Question,
    Questionnaire,
    Study,
    StudyConflictError,
)
from studyformats.explanations import ExplanationRecord
from studyformats.questionnaire import PLAIN_5, QuestionnaireError, questionnaire_read
from studyformats.questionnaire import Questionnaire as QuestionnaireDocument

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

# The variables Prolific fills in when it sends a participant to the study URL.
PROLIFIC_QUERY = (
    "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)


class StudyImportError(Exception):
    """An explanations file, plan or study setting that cannot be imported; nothing was."""


def questionnaire_default() -> Questionnaire:
    """The default questionnaire (plain-5), stored on first use: its latest version."""
    found = Questionnaire.objects.filter(name=PLAIN_5.name).order_by("-version").first()
    if found is not None:
        return found
    stored, _ = questionnaire_import(PLAIN_5)
    return stored


def questionnaire_import(document: QuestionnaireDocument) -> tuple[Questionnaire, bool]:
    """Store ``document`` under its name; return the version it is stored as, and whether
    anything was written.

    The same document again changes nothing. A changed document updates the latest version
    while no study with participants uses it, and becomes the next version otherwise, so a
    questionnaire never changes under the participants who rate with it.
    """
    data = document.as_data()
    with transaction.atomic():
        latest = (
            Questionnaire.objects.select_for_update()
            .filter(name=document.name)
            .order_by("-version")
            .first()
        )
        if latest is not None and latest.definition == data:
            return latest, False
        if latest is not None and latest.frozen_at is None:
            latest.definition = data
            latest.save()
            return latest, True
        version = latest.version + 1 if latest is not None else 1
        created = Questionnaire(name=document.name, version=version, definition=data)
        created.save()
        return created, True


def questionnaire_find(spec: str | Path) -> Questionnaire:
    """A stored questionnaire by NAME or NAME@VERSION (the latest version without one), or
    a .toml/.json file, imported first. Raises ``StudyImportError`` saying what is wrong."""
    text = str(spec)
    if isinstance(spec, Path) or text.endswith((".toml", ".json")):
        try:
            document = questionnaire_read(Path(text))
        except QuestionnaireError as exc:
            raise StudyImportError(str(exc)) from None
        return questionnaire_import(document)[0]
    name, _, version = text.partition("@")
    found = Questionnaire.objects.filter(name=name)
    if version:
        if not version.isdigit():
            raise StudyImportError(f"questionnaire '{text}': the version after '@' is a number")
        found = found.filter(version=int(version))
    stored = found.order_by("-version").first()
    if stored is None and name == PLAIN_5.name and not version:
        return questionnaire_default()
    if stored is None:
        names = sorted(set(Questionnaire.objects.values_list("name", flat=True)) | {PLAIN_5.name})
        raise StudyImportError(
            f"no questionnaire '{text}'; stored: {', '.join(names)} (or give a .toml or .json file)"
        )
    return stored


def study_questionnaire_set(*, study: Study, questionnaire: Questionnaire) -> bool:
    """Make ``questionnaire`` the study's; False when it already is.

    Refused (``StudyConflictError``) once the study has participants: their questions may
    not change, so a study that needs other questions is a new study.
    """
    with transaction.atomic():
        locked = study_lock(study)
        if locked.questionnaire_id == questionnaire.pk:
            return False
        refusal = study_questionnaire_refusal(locked)
        if refusal:
            raise StudyConflictError(refusal)
        locked.questionnaire = questionnaire
        locked.save(update_fields=["questionnaire"])
    study.questionnaire = questionnaire
    return True


def study_questionnaire_refusal(study: Study) -> str:
    """Why the study's questionnaire can no longer change ('' while it can): the admin's
    picker shows this before saving, ``study_questionnaire_set`` refuses with it."""
    if not study.participants.exists():
        return ""
    return (
        f"study '{study.slug}' already has participants; its questionnaire "
        f"({study.questionnaire or PLAIN_5.name}) can no longer change"
    )


def study_import_file(
    *,
    slug: str,
    path: Path,
    title: str | None = None,
    completion_code: str | None = None,
    per_condition: int | None = None,
    live: bool = False,
    plan: AnalysisPlan | str | Path | None = None,
    questionnaire: Questionnaire | str | Path | None = None,
) -> tuple[Study, int]:
    """Validate the whole file, then import it; return the study and how many explanations were new.

    ``plan`` is the analysis plan to register: a plan, a shipped plan's name or a TOML
    file's path (None: leave the study's plan as it is). ``questionnaire`` is a stored one,
    its NAME or NAME@VERSION, or a .toml/.json file (None: leave the study's as it is; a new
    study gets plain-5). Raises ``StudyImportError`` with every problem of the file, a plan
    or questionnaire that cannot be read, or a change to a frozen plan or to the
    questionnaire of a study with participants, and imports nothing then.
    """
    # A questionnaire file is read and checked now, but stored only together with the study,
    # so that a bad explanations file leaves nothing behind.
    document: QuestionnaireDocument | None = None
    if isinstance(questionnaire, Path) or str(questionnaire).endswith((".toml", ".json")):
        try:
            document = questionnaire_read(Path(str(questionnaire)))
        except QuestionnaireError as exc:
            raise StudyImportError(f"nothing was imported: {exc}") from None
        questionnaire = None
    elif questionnaire is not None and not isinstance(questionnaire, Questionnaire):
        questionnaire = questionnaire_find(questionnaire)
    if plan is not None and not isinstance(plan, AnalysisPlan):
        try:
            plan = plan_load(plan)
        except AnalysisError as exc:
            raise StudyImportError(f"nothing was imported: {exc}") from None
    try:
        # utf-8-sig: a byte-order mark (Windows editors) is dropped, as in the admin upload.
        with path.open(encoding="utf-8-sig") as handle:
            records = explanations_read(handle)
    except OSError as exc:
        raise StudyImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise StudyImportError(f"{path} is not UTF-8 text") from None
    except ExplanationsFileError as exc:
        raise StudyImportError(f"{path}: nothing was imported.\n{exc}") from None
    before = Explanation.objects.filter(condition__study__slug=slug).count()
    try:
        with transaction.atomic():
            if document is not None:
                questionnaire = questionnaire_import(document)[0]
            study = study_create_from_explanations(
                slug=slug,
                records=records,
                title=title,
                completion_code=completion_code,
                per_condition=per_condition,
                live=live,
                plan=plan,
                questionnaire=questionnaire,
            )
    except StudyConflictError as exc:
        raise StudyImportError(f"{path}: nothing was imported: {exc}") from None
    except ValidationError as exc:
        # A bad SLUG, title or completion code: the study's own checks, as in the admin form.
        if hasattr(exc, "error_dict"):
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
            )
        else:
            problems = " ".join(exc.messages)
        raise StudyImportError(f"nothing was imported: {problems}") from None
    after = Explanation.objects.filter(condition__study=study).count()
    return study, after - before


def study_create_from_explanations(
    *,
    slug: str,
    records: Sequence[ExplanationRecord],
    title: str | None = None,
    completion_code: str | None = None,
    per_condition: int | None = None,
    live: bool = False,
    plan: AnalysisPlan | None = None,
    questionnaire: Questionnaire | None = None,
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
        if questionnaire is not None:
            study_questionnaire_set(study=study, questionnaire=questionnaire)
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


def study_lock(study: Study) -> Study:
    """The study's row, locked until the transaction ends (PostgreSQL; SQLite serialises writers).

    Every service that creates or changes a participant together with its study takes this
    lock first and the participant's row after it. A participant's insert also locks the
    study's row (its foreign key), so a service that inserted first and locked the study
    second would deadlock with one that did the opposite.
    """
    return Study.objects.select_for_update().get(pk=study.pk)


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
        locked = study_lock(study)
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


PARTICIPANT_STOP_STATUSES = (
    Participant.Status.RETURNED,
    Participant.Status.TIMED_OUT,
    Participant.Status.STOPPED,
)


def participant_stop(*, participant: Participant, status: str) -> bool:
    """Mark an active participant returned, timed out or stopped; False if they were not active.

    Their unrated items go back to the pool at once: ``selectors.assignments_holding``
    counts unrated items of active participants only. Rated items are kept. The update
    waits for the row lock that a participant's own submission holds, and then applies
    only if the participant is still active, so it is safe while they post an item.
    """
    if status not in PARTICIPANT_STOP_STATUSES:
        raise ValueError(f"a participant cannot be stopped with status '{status}'")
    changed = Participant.objects.filter(
        pk=participant.pk, status=Participant.Status.ACTIVE
    ).update(status=status)
    participant.refresh_from_db(fields=["status"])
    return bool(changed)
