from __future__ import annotations

import json

import pytest

from distillation.evaluation import GenerationSettings
from distillation.explain import choice_match, explanations_generate, jsonl_read, jsonl_write
from distillation.features import ANSWER_PHRASE, view_input
from studyapp.importing import explanations_read
from tests.distillation.students_support import (
    EXPLANATION_KEYS,
    ScriptedModel,
    decoded_input,
    examples_make,
    teacher_make,
    tokenizer_make,
)


@pytest.fixture(scope="module")
def examples():
    return examples_make(4)


@pytest.fixture(scope="module")
def tokenizer(examples):
    return tokenizer_make(examples, teacher_make(examples))


def test_mt_records_take_the_answer_from_predict_and_the_text_from_explain(
    tmp_path, tokenizer, examples
):
    outputs = {}
    for example in examples:
        outputs[decoded_input(tokenizer, view_input("predict", example))] = example.answer
        outputs[decoded_input(tokenizer, view_input("explain", example))] = (
            f"the {example.answer} fits"
        )
    batch = explanations_generate(
        ScriptedModel(tokenizer, outputs),
        tokenizer,
        examples,
        method="mt+cf",
        condition="MT+CF:revised",
        student="tiny-t5",
        data_variant="revised",
        run="demo/x/seed-0",
    )
    assert batch.empty == 0
    record = batch.records[0]
    assert set(record) == EXPLANATION_KEYS
    assert record["predicted_answer"] == examples[0].answer
    assert record["explanation"] == f"the {examples[0].answer} fits"
    assert record["choices"] == list(examples[0].choices)
    path = tmp_path / "explanations.jsonl"
    assert jsonl_write(batch.records, path) == 4
    # The study importer accepts what was written.
    parsed = explanations_read(path.read_text().splitlines())
    assert {r.condition for r in parsed} == {"MT+CF:revised"}
    assert jsonl_read(path) == batch.records


def test_cf_records_split_one_factual_output_and_leave_out_empty_explanations(tokenizer, examples):
    outputs = {}
    for index, example in enumerate(examples):
        text = "" if index == 0 else f"the {example.answer} fits"
        outputs[decoded_input(tokenizer, view_input("factual", example))] = (
            f"{text} {ANSWER_PHRASE} {example.wrong_choices[0]}"
        )
    batch = explanations_generate(
        ScriptedModel(tokenizer, outputs),
        tokenizer,
        examples,
        method="cf",
        condition="CF:original",
        student="tiny-t5",
        data_variant="original",
        run="r",
    )
    assert batch.empty == 1
    assert [r["question_id"] for r in batch.records] == [e.id for e in examples[1:]]
    assert batch.records[0]["predicted_answer"] == examples[1].wrong_choices[0]
    assert ANSWER_PHRASE not in batch.records[0]["explanation"]


def test_a_predicted_answer_is_shown_as_the_choice_it_names():
    choices = ("pantry", "refrigerator", "oven", "cupboard", "breadbox")
    assert choice_match("The Refrigerator.", choices) == "refrigerator"
    assert choice_match("refridgerator", choices) == "refrigerator"


def test_each_record_says_whether_its_explanation_was_cut(tokenizer, examples):
    outputs = {}
    for index, example in enumerate(examples):
        outputs[decoded_input(tokenizer, view_input("predict", example))] = example.answer
        words = "it fits well here " * (8 if index == 2 else 1)
        outputs[decoded_input(tokenizer, view_input("explain", example))] = words.strip()
    cap = 1 + max(len(tokenizer("it fits well here", add_special_tokens=False)["input_ids"]), 4)
    batch = explanations_generate(
        ScriptedModel(tokenizer, outputs),
        tokenizer,
        examples,
        method="mt",
        condition="MT:original",
        student="tiny-t5",
        data_variant="original",
        run="r",
        generation=GenerationSettings(answer_max_new_tokens=8, explanation_max_new_tokens=cap),
    )
    assert [record["truncated"] for record in batch.records] == [False, False, True, False]
    explanation, answer = batch.truncation
    assert (explanation.key, explanation.truncated, explanation.total) == (
        "training.explanation_max_new_tokens",
        1,
        4,
    )
    assert (answer.key, answer.truncated) == ("training.answer_max_new_tokens", 0)
    # The study importer reads the flag.
    lines = [json.dumps(record) for record in batch.records]
    assert [r.truncated for r in explanations_read(lines)] == [False, False, True, False]
