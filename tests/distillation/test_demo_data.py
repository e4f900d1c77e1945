"""The bundled demo data: questions, teacher outputs and the ready study pool.

The demo distillation run, the demo study and several tests read these files, so every
contract they rely on is checked here, with the offending line named on failure.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.distillation.students_support import EXPLANATION_KEYS

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ROOT / "distillation" / "demo_data" / "questions.jsonl"
TEACHER_OUTPUTS = ROOT / "distillation" / "demo_data" / "teacher_outputs.jsonl"
FIXTURE = ROOT / "studyapp" / "fixtures" / "demo_explanations.jsonl"

QUESTION_FIELDS = {
    "id",
    "question",
    "choices",
    "answer",
    "abstractive_explanation",
    "extractive_explanation",
}
TEACHER_FIELDS = {
    "id",
    "question",
    "choices",
    "answer",
    "explanation",
    "critique",
    "revision",
    "counterfactuals",
}
# The fixture's explanations were written, not generated: none was cut at a generation cap, and
# the optional "truncated" flag is left out.
FIXTURE_FIELDS = EXPLANATION_KEYS - {"truncated"}
# condition -> (method, data_variant), as docs/formats.md names them
CONDITIONS = {
    "MT:original": ("mt", "original"),
    "CF:original": ("cf", "original"),
    "MT+CF:original": ("mt+cf", "original"),
    "MT+CF:revised": ("mt+cf", "revised"),
}
HELD_OUT = 16
SENTENCE_END = (".", "!", "?")


@cache
def _records(path: Path) -> tuple[dict[str, Any], ...]:
    """Every line of a JSON Lines file as an object; fails naming the first bad line."""
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                pytest.fail(f"{path.name} line {number}: not valid JSON ({error})")
            if not isinstance(record, dict):
                pytest.fail(f"{path.name} line {number}: expected an object, got {record!r}")
            records.append(record)
    return tuple(records)


def _questions() -> tuple[dict[str, Any], ...]:
    return _records(QUESTIONS)


def _questions_by_id() -> dict[str, dict[str, Any]]:
    return {question["id"]: question for question in _questions()}


def _teacher_outputs() -> tuple[dict[str, Any], ...]:
    return _records(TEACHER_OUTPUTS)


def _fixture() -> tuple[dict[str, Any], ...]:
    return _records(FIXTURE)


def _choice_problems(record: dict[str, Any]) -> list[str]:
    choices = record.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
        return ["choices is not a list of non-empty strings"]
    problems: list[str] = []
    if len(choices) != 5 or len(set(choices)) != 5:
        problems.append(f"needs 5 distinct choices, has {choices}")
    if record.get("answer") not in choices:
        problems.append(f"answer {record.get('answer')!r} is not among the choices")
    return problems


def _well_formed(
    records: Iterable[dict[str, Any]], fields: set[str], problems: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each record with exactly ``fields`` and valid choices.

    The others are reported in ``problems`` and skipped, so callers can index fields freely.
    """
    for number, record in enumerate(records, start=1):
        if set(record) != fields:
            found = [f"fields {sorted(record)}, expected {sorted(fields)}"]
        else:
            found = _choice_problems(record)
        problems += [f"line {number}: {problem}" for problem in found]
        if not found:
            yield number, record


@pytest.mark.parametrize("path", [QUESTIONS, TEACHER_OUTPUTS, FIXTURE], ids=lambda p: p.name)
def test_every_line_is_one_json_object(path: Path) -> None:
    assert _records(path), f"{path} is empty"


def test_questions_have_the_cos_e_fields_and_five_distinct_choices() -> None:
    problems: list[str] = []
    for number, question in _well_formed(_questions(), QUESTION_FIELDS, problems):
        for field in QUESTION_FIELDS - {"choices"}:
            if not isinstance(question[field], str) or not question[field].strip():
                problems.append(f"line {number}: {field} is empty")
    assert not problems, "\n".join(problems)


def test_there_are_64_questions_with_unique_ids() -> None:
    ids = [question["id"] for question in _questions()]
    duplicated = [qid for qid, count in Counter(ids).items() if count > 1]
    assert not duplicated, f"duplicated ids: {duplicated}"
    assert len(ids) == 64


def test_each_question_text_appears_only_once() -> None:
    texts = Counter(question["question"].strip().lower() for question in _questions())
    assert [text for text, count in texts.items() if count > 1] == []


def test_gold_answers_are_spread_over_the_choice_positions() -> None:
    positions = Counter(q["choices"].index(q["answer"]) for q in _questions())
    assert len(positions) >= 4, f"gold answers only at positions {sorted(positions)}"
    # a model that always picks one position must not score far above chance
    assert max(positions.values()) <= 0.3 * len(_questions()), positions


def test_extractive_explanations_are_spans_of_their_question() -> None:
    not_spans = [
        question["id"]
        for question in _questions()
        if question["extractive_explanation"].lower() not in question["question"].lower()
    ]
    assert not_spans == []


def test_teacher_outputs_cover_every_question_once_with_the_same_item() -> None:
    questions = _questions_by_id()
    seen: Counter[str] = Counter()
    problems: list[str] = []
    for number, output in _well_formed(_teacher_outputs(), TEACHER_FIELDS, problems):
        seen[output["id"]] += 1
        question = questions.get(output["id"])
        if question is None:
            problems.append(f"line {number}: id {output['id']!r} is not a demo question")
            continue
        for field in ("question", "choices", "answer"):
            if output[field] != question[field]:
                problems.append(f"line {number}: {field} differs from questions.jsonl")
    assert not problems, "\n".join(problems)
    assert [qid for qid, count in seen.items() if count > 1] == []
    assert set(seen) == set(questions)


def test_counterfactuals_are_keyed_by_exactly_the_wrong_choices() -> None:
    problems: list[str] = []
    for output in _teacher_outputs():
        wrong = set(output["choices"]) - {output["answer"]}
        counterfactuals = output["counterfactuals"]
        if not isinstance(counterfactuals, dict) or set(counterfactuals) != wrong:
            problems.append(f"{output['id']}: keys {sorted(counterfactuals)} != {sorted(wrong)}")
        elif not all(isinstance(text, str) and text.strip() for text in counterfactuals.values()):
            problems.append(f"{output['id']}: an empty counterfactual")
    assert not problems, "\n".join(problems)


def test_teacher_outputs_hold_exactly_the_three_deliberate_failures() -> None:
    """One empty revision, one empty critique, one explanation cut mid-sentence; nothing else."""
    failures = []
    for output in _teacher_outputs():
        for field in ("explanation", "critique", "revision"):
            text = output[field]
            assert isinstance(text, str), f"{output['id']}: {field} is not a string"
            if not text:
                failures.append((field, "empty"))
            elif not text.endswith(SENTENCE_END):
                failures.append((field, "cut"))
    assert sorted(failures) == [
        ("critique", "empty"),
        ("explanation", "cut"),
        ("revision", "empty"),
    ], f"unexpected failures: {sorted(failures)}"


def test_teacher_failures_sit_among_the_training_questions() -> None:
    """The held-out questions feed the study, so their teacher outputs must be complete."""
    held_out = {question["id"] for question in _questions()[-HELD_OUT:]}
    failed = {
        output["id"]
        for output in _teacher_outputs()
        if not (output["critique"] and output["revision"])
        or not output["explanation"].endswith(SENTENCE_END)
    }
    assert failed, "the deliberate failures are missing"
    assert not failed & held_out


def test_fixture_covers_the_held_out_questions_in_all_four_conditions() -> None:
    held_out = [question["id"] for question in _questions()[-HELD_OUT:]]
    pairs = Counter((item["question_id"], item["condition"]) for item in _fixture())
    assert [pair for pair, count in pairs.items() if count > 1] == []
    expected = {(qid, condition) for qid in held_out for condition in CONDITIONS}
    assert set(pairs) == expected, (
        f"missing {sorted(expected - set(pairs))}, unexpected {sorted(set(pairs) - expected)}"
    )


def test_fixture_items_match_their_question_and_condition() -> None:
    questions = _questions_by_id()
    problems: list[str] = []
    for number, item in _well_formed(_fixture(), FIXTURE_FIELDS, problems):
        if item["predicted_answer"] not in item["choices"]:
            problems.append(f"line {number}: predicted answer is not among the choices")
        question = questions[item["question_id"]]
        for field in ("question", "choices", "answer"):
            if item[field] != question[field]:
                problems.append(f"line {number}: {field} differs from questions.jsonl")
        if (item["method"], item["data_variant"]) != CONDITIONS[item["condition"]]:
            problems.append(f"line {number}: method/data_variant do not match the condition")
        # Written by hand, not by a student model, and labelled so wherever conditions show.
        if (item["student"], item["run"]) != ("hand-written", "demo-hand-written"):
            problems.append(f"line {number}: unexpected student or run")
        if not item["explanation"].strip().endswith(SENTENCE_END):
            problems.append(f"line {number}: explanation is empty or unfinished")
    assert not problems, "\n".join(problems)


def test_fixture_predictions_are_wrong_for_a_fifth_to_a_third_of_items() -> None:
    items = _fixture()
    wrong = sum(item["predicted_answer"] != item["answer"] for item in items)
    assert 0.2 <= wrong / len(items) <= 0.3, f"{wrong} of {len(items)} predictions are wrong"
    # every condition must show some mistakes, or the conditions differ only in wording
    wrong_conditions = {
        item["condition"] for item in items if item["predicted_answer"] != item["answer"]
    }
    assert wrong_conditions == set(CONDITIONS)


def test_no_explanation_text_is_repeated() -> None:
    texts = [item["explanation"] for item in _fixture()]
    for output in _teacher_outputs():
        texts += [output["explanation"], output["critique"], output["revision"]]
        texts += list(output["counterfactuals"].values())
    repeated = [text for text, count in Counter(t for t in texts if t).items() if count > 1]
    assert repeated == []


def test_revised_explanations_are_longer_than_multitask_ones() -> None:
    """The revised condition is the contrastive one; the demo study relies on it differing."""
    words: dict[str, list[int]] = {condition: [] for condition in CONDITIONS}
    for item in _fixture():
        words[item["condition"]].append(len(item["explanation"].split()))
    mean = {condition: sum(counts) / len(counts) for condition, counts in words.items()}
    assert mean["MT+CF:revised"] > mean["MT+CF:original"] > mean["MT:original"], mean


def test_questions_load_as_examples() -> None:
    data = pytest.importorskip("distillation.data")
    examples = data.examples_load(QUESTIONS, format="cos_e")
    assert [example.id for example in examples] == [q["id"] for q in _questions()]
    assert all(example.answer in example.choices for example in examples)


def test_fixture_passes_the_study_importer() -> None:
    importing = pytest.importorskip("studyapp.importing")
    with FIXTURE.open(encoding="utf-8") as lines:
        records = importing.explanations_read(lines)
    assert len(records) == len(_fixture())


def test_teacher_outputs_import_with_failures_marked_missing(tmp_path: Path) -> None:
    importing = pytest.importorskip("distillation.importing")
    store = pytest.importorskip("distillation.store")
    importing.teacher_outputs_import(TEACHER_OUTPUTS, tmp_path / "store")
    loaded = store.teacher_explanations_load(tmp_path / "store")
    outputs = {output["id"]: output for output in _teacher_outputs()}
    assert set(loaded) == set(outputs)
    for example_id, explanations in loaded.items():
        output = outputs[example_id]
        assert (explanations.critique is None) == (output["critique"] == "")
        assert (explanations.revised is None) == (output["revision"] == "")
        assert set(explanations.counterfactuals) == set(output["counterfactuals"])
        # the cut explanation must reach the students trimmed to whole sentences
        assert explanations.original is not None
        assert explanations.original.endswith(SENTENCE_END)
