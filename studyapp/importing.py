"""Reading and validating an explanations file (``studyformats.explanations``, docs/formats.md).

Every line is checked before anything is imported, so a researcher sees the problems of a
file at once (the first fifty, each with its line number, and how many more), and a bad
file never leaves a half-imported study.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from operator import attrgetter
from typing import Any

from studyapp.problems import FileProblemsError, ProblemList
from studyformats.explanations import (
    CONDITION_PATTERN,
    OPTIONAL_TEXT_FIELDS,
    REQUIRED_TEXT_FIELDS,
    ExplanationRecord,
)

# The widths of the columns these fields are stored in (studyapp.models): longer text would
# fail on PostgreSQL halfway through an import, so it is reported as a bad line instead.
FIELD_MAX_LENGTHS = {
    "condition": 100,
    "question_id": 100,
    "answer": 300,
    "predicted_answer": 300,
    "student": 100,
    "method": 50,
    "data_variant": 50,
    "run": 200,
}
# What every line about the same question, or the same condition, must agree on.
_question_fields = attrgetter("question", "choices", "answer")
_condition_fields = attrgetter("student", "method", "data_variant")


class ExplanationsFileError(FileProblemsError):
    """The file has bad lines; ``errors`` lists each one as 'line N: problem' (the first
    ``PROBLEMS_SHOWN``, then how many more)."""

    what = "the explanations file"


def explanations_read(lines: Iterable[str]) -> list[ExplanationRecord]:
    """Parse and validate every line; raise ``ExplanationsFileError`` listing all bad lines.

    ``lines`` is read once, in order, so a file can be streamed. Checking stops after
    ``PROBLEMS_SHOWN`` problems; the lines left are only counted. Blank lines are skipped.
    Besides each line on its own, the file as a whole must agree
    with itself: one explanation per (condition, question), the same question text, choices
    and answer wherever a question id appears, and the same student, method and data
    variant on every line of a condition.
    """
    problems = ProblemList()
    records: list[ExplanationRecord] = []
    remaining = iter(lines)
    for number, raw in enumerate(remaining, start=1):
        if not raw.strip():
            continue
        record, line_problems = _record_parse(number, raw)
        problems.extend(f"line {number}: {problem}" for problem in line_problems)
        if record is not None:
            records.append(record)
        if problems.full:
            # Refused whatever follows: count the rest instead of checking it.
            problems.skip_rest(remaining)
            raise ExplanationsFileError(problems)
    problems.extend(_consistency_problems(records))
    if not records and not problems:
        problems.add("the file has no explanations (it is empty)")
    if problems:
        raise ExplanationsFileError(problems)
    return records


def _record_parse(number: int, raw: str) -> tuple[ExplanationRecord | None, list[str]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON ({exc.msg} at column {exc.colno})"]
    except RecursionError:
        # The decoder recurses once per level of nesting; no explanation needs more than two.
        return None, ["not valid JSON for an explanation (nested too deeply)"]
    if not isinstance(data, dict):
        return None, ["not a JSON object"]

    problems: list[str] = []
    text: dict[str, str] = {}
    for field in REQUIRED_TEXT_FIELDS:
        value = data.get(field)
        if value is None:
            problems.append(f"missing field '{field}'")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"field '{field}' must be a non-empty string")
        elif _text_storable(field, value, problems):
            text[field] = value.strip()
    for field in OPTIONAL_TEXT_FIELDS:
        value = data.get(field, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.append(f"field '{field}' must be a string")
        elif _text_storable(field, value, problems):
            text[field] = value.strip()

    explanation = data.get("explanation")
    if explanation is None:
        problems.append("missing field 'explanation'")
    elif not isinstance(explanation, str):
        problems.append("field 'explanation' must be a string")
    elif not explanation.strip():
        problems.append("the explanation is empty")
    elif not _text_storable("explanation", explanation, problems):
        explanation = None

    truncated = data.get("truncated", False)
    if not isinstance(truncated, bool):
        problems.append(f"field 'truncated' must be true or false, not {_json_shown(truncated)}")

    choices = _choices_parse(data.get("choices"), problems)

    match = None
    if "condition" in text:
        match = CONDITION_PATTERN.fullmatch(text["condition"])
        if match is None:
            problems.append(
                f"condition '{_shown(text['condition'])}' is not in the format METHOD:variant "
                "(for example 'MT+CF:revised')"
            )
    if choices is not None and "answer" in text and text["answer"] not in choices:
        problems.append(f"answer '{_shown(text['answer'])}' is not among the choices")

    if problems or match is None or choices is None or not isinstance(explanation, str):
        return None, problems
    record = ExplanationRecord(
        line=number,
        condition=text["condition"],
        question_id=text["question_id"],
        question=text["question"],
        choices=choices,
        answer=text["answer"],
        predicted_answer=text["predicted_answer"],
        explanation=explanation.strip(),
        method=text["method"] or match.group("method").lower(),
        data_variant=text["data_variant"] or match.group("variant").lower(),
        student=text["student"],
        run=text["run"],
        truncated=truncated,
    )
    for field, limit in FIELD_MAX_LENGTHS.items():
        length = len(getattr(record, field))
        if length > limit:
            problems.append(f"field '{field}' is {length} characters long; the limit is {limit}")
    if problems:
        return None, problems
    return record, []


# How much of a value a message quotes: enough to find it in the file, never a whole line.
SHOWN_CHARACTERS = 60


def _shown(value: str) -> str:
    return value if len(value) <= SHOWN_CHARACTERS else value[: SHOWN_CHARACTERS - 1] + "…"


def _json_shown(value: Any) -> str:
    """A short description of a JSON value for a message (a container is named, not printed)."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return _shown(json.dumps(value))


def text_unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored as text in the database (None: it can).

    JSON can spell both problems as escapes: ``\\u0000`` (PostgreSQL refuses NUL in text)
    and a lone surrogate such as ``\\ud800`` (not a character; no database encodes it).
    """
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (an unpaired \\ud800–\\udfff escape), which is not text"
    return None


def _text_storable(field: str, value: str, problems: list[str]) -> bool:
    problem = text_unstorable(value)
    if problem is not None:
        problems.append(f"field '{field}' {problem}")
    return problem is None


def _choices_parse(value: Any, problems: list[str]) -> tuple[str, ...] | None:
    if value is None:
        problems.append("missing field 'choices'")
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        problems.append("field 'choices' must be a list of non-empty strings")
        return None
    if not all(_text_storable("choices", choice, problems) for choice in value):
        return None
    choices = tuple(c.strip() for c in value)
    if len(choices) < 2:
        problems.append("field 'choices' needs at least two choices")
        return None
    if len(set(choices)) != len(choices):
        problems.append("field 'choices' lists the same choice twice")
        return None
    return choices


def _consistency_problems(records: list[ExplanationRecord]) -> list[str]:
    problems: list[str] = []
    first_of_pair: dict[tuple[str, str], int] = {}
    first_of_question: dict[str, ExplanationRecord] = {}
    first_of_condition: dict[str, ExplanationRecord] = {}
    for record in records:
        pair = (record.condition, record.question_id)
        if pair in first_of_pair:
            problems.append(
                f"line {record.line}: a second explanation for question '{record.question_id}' "
                f"in condition '{record.condition}' (first on line {first_of_pair[pair]})"
            )
        else:
            first_of_pair[pair] = record.line

        seen = first_of_question.setdefault(record.question_id, record)
        if _question_fields(seen) != _question_fields(record):
            problems.append(
                f"line {record.line}: question '{record.question_id}' has a different text, "
                f"choices or answer than on line {seen.line}"
            )

        first = first_of_condition.setdefault(record.condition, record)
        if _condition_fields(first) != _condition_fields(record):
            problems.append(
                f"line {record.line}: condition '{record.condition}' has a different student, "
                f"method or data variant than on line {first.line}"
            )
    return problems
