"""study_create_from_explanations: creating a study from records, idempotently."""

from __future__ import annotations

import json

import pytest

from studyapp.importing import explanations_read
from studyapp.models import Condition, Explanation, Question, Study
from studyapp.studies.services import StudyConflictError, study_create_from_explanations
from tests.studyapp.participant_pool import CONDITIONS, explanation_lines, explanation_record

pytestmark = pytest.mark.django_db


def _records(questions: int = 16, conditions: tuple[str, ...] = CONDITIONS) -> list:
    return explanations_read(explanation_lines(questions=questions, conditions=conditions))


def _snapshot() -> list[tuple]:
    return [
        *Study.objects.values_list("slug", "title", "status", "completion_code", "per_condition"),
        *Condition.objects.values_list("id", "name", "method", "data_variant", "student"),
        *Question.objects.values_list("id", "external_id", "text", "answer"),
        *Explanation.objects.values_list("id", "condition_id", "question_id", "text", "length"),
    ]


def test_it_creates_the_study_with_its_conditions_questions_and_explanations() -> None:
    study = study_create_from_explanations(slug="cqa", records=_records(), title="CQA ratings")

    assert (study.slug, study.title, study.status) == ("cqa", "CQA ratings", Study.Status.DRAFT)
    assert sorted(study.conditions.values_list("name", flat=True)) == sorted(CONDITIONS)
    assert study.questions.count() == 16
    assert Explanation.objects.filter(condition__study=study).count() == 64
    condition = study.conditions.get(name="MT+CF:revised")
    assert (condition.method, condition.data_variant, condition.student) == (
        "mt+cf",
        "revised",
        "t5-v1_1-small",
    )
    question = study.questions.get(external_id="q003")
    assert question.choices == ["bank", "library", "garden", "kitchen", "school"]
    assert question.answer == "kitchen"
    assert len(study.completion_code) == 8


def test_it_stores_the_explanation_length_in_words() -> None:
    line = json.dumps(explanation_record("MT:original", 0, explanation="One two  three\nfour."))
    records = explanations_read([line])

    study_create_from_explanations(slug="len", records=records, per_condition=1)

    assert Explanation.objects.get().length == 4


def test_importing_the_same_records_twice_changes_nothing() -> None:
    study_create_from_explanations(slug="cqa", records=_records(), live=True)
    before = _snapshot()

    study_create_from_explanations(slug="cqa", records=_records(), live=True)

    assert _snapshot() == before


def test_it_adds_new_explanations_to_an_existing_study() -> None:
    study_create_from_explanations(slug="cqa", records=_records(questions=16))

    study = study_create_from_explanations(slug="cqa", records=_records(questions=20))

    assert Explanation.objects.filter(condition__study=study).count() == 80


def test_it_refuses_to_change_an_explanation_already_stored() -> None:
    study_create_from_explanations(slug="cqa", records=_records())
    changed = [json.dumps(explanation_record("MT:original", 0, explanation="Changed text."))]

    with pytest.raises(StudyConflictError, match="differs from the stored one"):
        study_create_from_explanations(slug="cqa", records=explanations_read(changed))

    assert (
        Explanation.objects.get(question__external_id="q000", condition__name="MT:original").text
        != "Changed text."
    )


def test_it_refuses_a_question_stored_with_other_choices() -> None:
    study_create_from_explanations(slug="cqa", records=_records())
    changed = [json.dumps(explanation_record("MT:original", 0, choices=["a", "b", "bank"]))]

    with pytest.raises(StudyConflictError, match="question 'q000' is stored with a different"):
        study_create_from_explanations(slug="cqa", records=explanations_read(changed))


def test_it_refuses_a_pool_too_small_for_one_participant() -> None:
    with pytest.raises(StudyConflictError, match="need at least 12 different questions"):
        study_create_from_explanations(slug="small", records=_records(questions=11))

    assert not Study.objects.exists()


def test_it_refuses_a_condition_with_too_few_explanations() -> None:
    lines = explanation_lines(questions=16, conditions=CONDITIONS[:3])
    lines += [json.dumps(explanation_record("MT+CF:revised", q)) for q in range(2)]

    with pytest.raises(StudyConflictError, match="'MT\\+CF:revised' has 2 explanation"):
        study_create_from_explanations(slug="x", records=explanations_read(lines))


def test_live_opens_a_draft_study_but_not_a_closed_one() -> None:
    study = study_create_from_explanations(slug="cqa", records=_records())
    assert study.status == Study.Status.DRAFT

    study = study_create_from_explanations(slug="cqa", records=_records(), live=True)
    assert study.status == Study.Status.LIVE

    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    with pytest.raises(StudyConflictError, match="is closed"):
        study_create_from_explanations(slug="cqa", records=_records(), live=True)


def test_it_keeps_an_explicit_completion_code_and_items_per_condition() -> None:
    study = study_create_from_explanations(
        slug="cqa", records=_records(), completion_code="C0DE42", per_condition=2
    )

    assert (study.completion_code, study.per_condition) == ("C0DE42", 2)


def test_items_per_condition_cannot_change_once_participants_exist() -> None:
    from studyapp.participation.services import participant_start

    study = study_create_from_explanations(slug="cqa", records=_records(), live=True)
    participant_start(study=study, prolific_pid="p1")

    with pytest.raises(StudyConflictError, match="already has participants"):
        study_create_from_explanations(slug="cqa", records=_records(), per_condition=2)


def test_a_study_the_model_refuses_is_a_conflict_with_the_reason() -> None:
    with pytest.raises(StudyConflictError, match="slug: Enter a valid"):
        study_create_from_explanations(slug="not a slug!", records=_records())
    with pytest.raises(StudyConflictError, match="title: Ensure this value has at most 200"):
        study_create_from_explanations(slug="cqa", records=_records(), title="t" * 201)

    assert not Study.objects.exists()
    assert not Explanation.objects.exists()


def test_it_stores_which_explanations_were_cut_at_the_generation_cap() -> None:
    lines = explanation_lines()
    lines[5] = json.dumps({**json.loads(lines[5]), "truncated": True})
    study_create_from_explanations(slug="cqa", records=explanations_read(lines))

    cut = Explanation.objects.get(truncated=True)
    assert (cut.condition.name, cut.question.external_id) == ("CF:original", "q001")
    assert Explanation.objects.filter(truncated=False).count() == 63


def test_a_later_file_marks_a_stored_explanation_cut_and_none_unmarks_it() -> None:
    study_create_from_explanations(slug="cqa", records=_records())
    lines = explanation_lines()
    lines[0] = json.dumps({**json.loads(lines[0]), "truncated": True})

    study_create_from_explanations(slug="cqa", records=explanations_read(lines))
    assert Explanation.objects.filter(truncated=True).count() == 1
    # An older file, written before the flag existed, leaves the mark as it is.
    study_create_from_explanations(slug="cqa", records=_records())
    assert Explanation.objects.filter(truncated=True).count() == 1
