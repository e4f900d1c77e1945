from __future__ import annotations

import doctest

import pytest

import distillation.evaluation
from distillation.errors import DataError
from distillation.evaluation import (
    CapCount,
    GenerationSettings,
    accuracy_evaluate,
    answer_normalise,
    outputs_generate,
    texts_generate,
    truncation_check,
)
from distillation.features import ANSWER_PHRASE, view_input
from tests.distillation.students_support import (
    ScriptedModel,
    decoded_input,
    examples_make,
    model_make,
    teacher_make,
    tokenizer_make,
    training_make,
)


@pytest.fixture(scope="module")
def examples():
    return examples_make(6)


@pytest.fixture(scope="module")
def tokenizer(examples):
    return tokenizer_make(examples, teacher_make(examples))


def test_answers_are_normalised_before_matching():
    assert answer_normalise("  The Freezer! ") == "freezer"
    assert answer_normalise("an   apple tree.") == "apple tree"
    assert answer_normalise("freezer") != answer_normalise("fridge")


def test_mt_accuracy_is_exact_match_of_the_predict_output(tokenizer, examples):
    outputs = {}
    for index, example in enumerate(examples):
        key = decoded_input(tokenizer, view_input("predict", example))
        outputs[key] = example.answer if index % 2 == 0 else example.wrong_choices[0]
    model = ScriptedModel(tokenizer, outputs)
    result = accuracy_evaluate(
        model, tokenizer, examples, method="mt", generation=GenerationSettings(batch_size=4)
    )
    assert (result.correct, result.total) == (3, 6)
    assert result.accuracy == pytest.approx(0.5)
    assert model.calls == [4, 2]  # batched


def test_cf_accuracy_reads_the_answer_after_the_explanation(tokenizer, examples):
    outputs = {}
    for index, example in enumerate(examples):
        key = decoded_input(tokenizer, view_input("factual", example))
        choice = example.answer if index < 4 else example.wrong_choices[1]
        outputs[key] = f"the {example.answer} fits {ANSWER_PHRASE} {choice}"
    model = ScriptedModel(tokenizer, outputs)
    result = accuracy_evaluate(
        model,
        tokenizer,
        examples,
        method="cf",
        generation=GenerationSettings(explanation_max_new_tokens=64),
    )
    assert result.correct == 4
    assert result.predictions[5] == examples[5].wrong_choices[1]


def test_generation_returns_outputs_in_input_order(tokenizer, examples):
    model = model_make(tokenizer, dropout=0.0)
    inputs = [view_input("explain", example) for example in examples]
    in_batches = texts_generate(model, tokenizer, inputs, batch_size=2, max_new_tokens=5)
    one_by_one = [texts_generate(model, tokenizer, [text], max_new_tokens=5)[0] for text in inputs]
    assert in_batches == one_by_one
    assert model.training  # the caller's mode is restored


def test_outputs_that_hit_a_tiny_cap_are_counted(tokenizer, examples):
    outputs = {}
    for index, example in enumerate(examples):
        key = decoded_input(tokenizer, view_input("predict", example))
        # Two examples answer at length; the others give the one-word answer.
        outputs[key] = f"{example.answer} " * 6 if index in (1, 4) else example.answer
    longest_short = max(
        len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples
    )
    cap = longest_short + 1  # room for every short answer and its end-of-sequence token
    result = accuracy_evaluate(
        ScriptedModel(tokenizer, outputs),
        tokenizer,
        examples,
        method="mt",
        generation=GenerationSettings(answer_max_new_tokens=cap),
    )
    assert result.truncation == CapCount("training.answer_max_new_tokens", cap, 2, 6)
    assert result.as_dict()["truncated"] == 2
    assert result.as_dict()["truncation"]["truncated_fraction"] == pytest.approx(2 / 6, abs=1e-6)


def test_a_real_model_cut_at_one_token_is_flagged(tokenizer, examples):
    model = model_make(tokenizer, dropout=0.0)
    inputs = [view_input("explain", example) for example in examples]
    generated = outputs_generate(model, tokenizer, inputs, batch_size=4, max_new_tokens=1)
    eos_first = [text == "" for text in texts_generate(model, tokenizer, inputs, max_new_tokens=1)]
    # One new token is either the end-of-sequence token (not cut) or a word (cut).
    assert [output.truncated for output in generated] == [not empty for empty in eos_first]


def test_too_many_cut_outputs_fail_with_the_cap_to_raise():
    counts = [
        CapCount("training.explanation_max_new_tokens", 128, 0, 200),
        CapCount("training.answer_max_new_tokens", 16, 3, 200),
    ]
    truncation_check(counts, limit=0.015, what="evaluate: x")  # 1.5 % of 200 = 3 is allowed
    with pytest.raises(
        DataError,
        match=r"evaluate: x: 3 of 200 outputs \(1\.5%\) hit the cap of 16 new tokens.*"
        r"raise training\.answer_max_new_tokens",
    ):
        truncation_check(counts, limit=0.01, what="evaluate: x")


def test_the_run_configuration_gives_one_set_of_generation_settings():
    training = training_make(
        eval_batch_size=3,
        answer_max_new_tokens=5,
        explanation_max_new_tokens=9,
        max_input_length=40,
    )

    settings = GenerationSettings.from_training(training)

    assert settings == GenerationSettings(
        batch_size=3, answer_max_new_tokens=5, explanation_max_new_tokens=9, max_input_length=40
    )
    assert settings.cap("predict") == (5, "training.answer_max_new_tokens")
    for view in ("explain", "factual", "counterfactual"):
        assert settings.cap(view) == (9, "training.explanation_max_new_tokens")


def test_the_examples_in_the_docstrings_hold():
    result = doctest.testmod(distillation.evaluation)
    assert result.attempted > 0
    assert result.failed == 0
