"""The explanations-file check behind create_study: every bad line reported, nothing partial."""

from __future__ import annotations

import json

import pytest

from studyapp.importing import FIELD_MAX_LENGTHS, ExplanationsFileError, explanations_read
from studyapp.models import Condition, Explanation, Question
from tests.studyapp.participant_pool import explanation_lines, explanation_record


def _line(**overrides: object) -> str:
    return json.dumps(explanation_record("MT+CF:revised", 1, **overrides))


def _errors(lines: list[str]) -> list[str]:
    with pytest.raises(ExplanationsFileError) as caught:
        explanations_read(lines)
    return caught.value.errors


def test_it_reads_a_valid_file_into_records() -> None:
    records = explanations_read(explanation_lines(questions=2))

    assert len(records) == 8
    first = records[0]
    assert (first.line, first.condition, first.question_id) == (1, "MT:original", "q000")
    assert first.choices == ("bank", "library", "garden", "kitchen", "school")
    assert (first.method, first.data_variant, first.student) == ("mt", "original", "t5-v1_1-small")


def test_it_takes_method_and_variant_from_the_record_when_given() -> None:
    [record] = explanations_read([_line(method="mt+cf", data_variant="revised-v2")])

    assert (record.method, record.data_variant) == ("mt+cf", "revised-v2")


def test_it_skips_blank_lines_but_keeps_line_numbers() -> None:
    lines = ["", _line(), "   ", _line(question_id="q2")]

    records = explanations_read(lines)

    assert [r.line for r in records] == [2, 4]


def test_it_reports_every_bad_line_with_its_number() -> None:
    missing = explanation_record("MT:original", 2)
    del missing["question"]
    lines = [
        _line(),
        json.dumps(missing),
        _line(question_id="q3", answer="moon"),
        _line(question_id="q4", condition="MT plus CF"),
        _line(question_id="q5", explanation="   "),
        "{not json",
        "[1, 2]",
    ]

    errors = _errors(lines)

    assert errors == [
        "line 2: missing field 'question'",
        "line 3: answer 'moon' is not among the choices",
        "line 4: condition 'MT plus CF' is not in the format METHOD:variant (for example 'MT+CF:revised')",
        "line 5: the explanation is empty",
        "line 6: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 7: not a JSON object",
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"choices": "bank"}, "field 'choices' must be a list of non-empty strings"),
        ({"choices": ["bank"], "answer": "bank"}, "field 'choices' needs at least two choices"),
        ({"choices": ["bank", "bank"], "answer": "bank"}, "lists the same choice twice"),
        ({"predicted_answer": 3}, "field 'predicted_answer' must be a non-empty string"),
        ({"student": ["t5"]}, "field 'student' must be a string"),
        ({"explanation": None}, "missing field 'explanation'"),
        ({"explanation": 12}, "field 'explanation' must be a string"),
        (
            {"predicted_answer": "p" * 301},
            "field 'predicted_answer' is 301 characters long; the limit is 300",
        ),
        ({"run": "r" * 201}, "field 'run' is 201 characters long; the limit is 200"),
        ({"question_id": "q" * 101}, "field 'question_id' is 101 characters long"),
        ({"truncated": "yes"}, "field 'truncated' must be true or false, not \"yes\""),
        ({"truncated": 1}, "field 'truncated' must be true or false, not 1"),
        ({"truncated": None}, "field 'truncated' must be true or false, not null"),
    ],
)
def test_it_rejects_malformed_fields(overrides: dict[str, object], message: str) -> None:
    [error] = _errors([_line(**overrides)])

    assert error.startswith("line 1: ")
    assert message in error


def test_it_rejects_a_second_explanation_for_the_same_condition_and_question() -> None:
    errors = _errors([_line(), _line(explanation="Another one.")])

    assert errors == [
        "line 2: a second explanation for question 'q001' in condition 'MT+CF:revised' "
        "(first on line 1)"
    ]


def test_it_rejects_a_question_that_changes_between_lines() -> None:
    other = json.dumps(explanation_record("CF:original", 1, question="Something else?"))

    errors = _errors([_line(), other])

    assert errors == [
        "line 2: question 'q001' has a different text, choices or answer than on line 1"
    ]


def test_it_rejects_a_condition_whose_student_changes_between_lines() -> None:
    errors = _errors([_line(), _line(question_id="q9", student="t5-large")])

    assert errors == [
        "line 2: condition 'MT+CF:revised' has a different student, method or data variant "
        "than on line 1"
    ]


def test_it_rejects_an_empty_file() -> None:
    assert _errors(["", "  "]) == ["the file has no explanations (it is empty)"]


def test_the_error_message_lists_all_problems() -> None:
    with pytest.raises(ExplanationsFileError) as caught:
        explanations_read(["x", "y"])

    assert str(caught.value).startswith("2 problems in the explanations file:\nline 1: ")


def test_the_length_limits_are_the_widths_of_the_database_columns() -> None:
    columns = {
        "condition": Condition._meta.get_field("name"),
        "question_id": Question._meta.get_field("external_id"),
        "answer": Question._meta.get_field("answer"),
        "predicted_answer": Explanation._meta.get_field("predicted_answer"),
        "student": Condition._meta.get_field("student"),
        "method": Condition._meta.get_field("method"),
        "data_variant": Condition._meta.get_field("data_variant"),
        "run": Explanation._meta.get_field("run"),
    }
    assert {name: field.max_length for name, field in columns.items()} == FIELD_MAX_LENGTHS


def test_it_reads_whether_the_output_hit_the_generation_cap() -> None:
    records = explanations_read(
        [_line(truncated=True), _line(question_id="q2", truncated=False), _line(question_id="q3")]
    )

    assert [r.truncated for r in records] == [True, False, False]
