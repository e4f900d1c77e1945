from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from distillation.features import (
    ANSWER_PHRASE,
    BatchCollator,
    answer_from_output,
    batches_length_grouped,
    counterfactual_choice,
    explanation_from_output,
    features_build,
    features_cached,
    features_load,
    features_save,
    question_render,
    row_groups,
    view_texts,
)
from distillation.objectives import (
    IGNORE_INDEX,
    ObjectiveWeights,
    objective_loss,
    sequence_loss,
    view_weights,
    weighted_view_loss,
)
from distillation.training import passes_loss
from distillation.types import Example, TeacherExplanations
from tests.distillation.students_support import (
    examples_make,
    model_make,
    teacher_make,
    tokenizer_make,
)


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return examples_make(6)


@pytest.fixture(scope="module")
def teacher(examples) -> dict[str, TeacherExplanations]:
    return teacher_make(examples)


@pytest.fixture(scope="module")
def tokenizer(examples, teacher):
    return tokenizer_make(examples, teacher)


def test_inputs_show_the_question_then_lettered_choices():
    example = Example(id="x", question="Why?", choices=("a1", "b1", "c1", "d1", "e1"), answer="c1")
    assert question_render(example) == "Question: Why?\nChoices: (a) a1 (b) b1 (c) c1 (d) d1 (e) e1"


def test_the_counterfactual_choice_is_never_the_gold_answer_even_in_first_position():
    example = Example(id="x", question="q", choices=("gold", "w1", "w2", "w3", "w4"), answer="gold")
    # A teacher table that (wrongly) also explains the gold answer must not leak it in.
    teacher = TeacherExplanations(
        example_id="x",
        counterfactuals={choice: f"text {choice}" for choice in example.choices},
    )
    drawn = {counterfactual_choice(example, teacher, random.Random(seed)) for seed in range(200)}
    assert drawn == {"w1", "w2", "w3", "w4"}


def test_a_counterfactual_is_drawn_only_among_explained_wrong_choices():
    example = Example(id="x", question="q", choices=("a", "b", "c", "d", "e"), answer="c")
    teacher = TeacherExplanations(example_id="x", counterfactuals={"e": "text", "a": "  "})
    assert counterfactual_choice(example, teacher, random.Random(0)) == "e"
    assert counterfactual_choice(example, TeacherExplanations("x"), random.Random(0)) is None


def test_empty_teacher_fields_are_skipped_and_counted(examples, teacher, tokenizer):
    gaps = dict(teacher)
    gaps["q0"] = TeacherExplanations("q0", original=None, revised="r", counterfactuals={})
    features = features_build(
        examples, gaps, tokenizer=tokenizer, method="mt+cf", data_variant="original", seed=0
    )
    assert features.skipped == {"predict": 0, "explain": 1, "factual": 1, "counterfactual": 1}
    assert features.views["explain"].input_ids[0] is None
    assert features.views["predict"].input_ids[0] is not None  # the answer is still learnt


def _factual_targets(examples, teacher, *, method, variant, source) -> list[str]:
    texts, _ = view_texts(
        examples,
        teacher,
        method=method,
        data_variant=variant,
        seed=0,
        factual_explanation=source,
    )
    return [item[1][0][0] for item in texts["factual"] if item is not None]


def _with_gold(examples, teacher):
    return {
        example.id: replace(teacher[example.id], gold=f"Gold reason for {example.answer}.")
        for example in examples
    }


@pytest.mark.parametrize("variant", ["original", "revised"])
def test_mt_cf_learns_the_gold_answer_explanation_of_the_counterfactual_prompt(
    examples, teacher, variant
):
    gold = _with_gold(examples, teacher)
    targets = _factual_targets(
        examples, gold, method="mt+cf", variant=variant, source="counterfactual_prompt"
    )
    assert targets == [
        f"Gold reason for {example.answer}. {ANSWER_PHRASE} {example.answer}"
        for example in examples
    ]
    # The explain view keeps the variant's explanation: the variant changes only that view.
    texts, _ = view_texts(
        examples,
        gold,
        method="mt+cf",
        data_variant=variant,
        seed=0,
        factual_explanation="counterfactual_prompt",
    )
    variant_text = getattr(teacher[examples[0].id], variant)
    assert texts["explain"][0][1] == [(variant_text, True)]


def test_the_variant_setting_and_cf_alone_learn_the_variant_explanation(examples, teacher):
    gold = _with_gold(examples, teacher)
    expected = [
        f"{teacher[example.id].revised} {ANSWER_PHRASE} {example.answer}" for example in examples
    ]
    assert (
        _factual_targets(examples, gold, method="mt+cf", variant="revised", source="variant")
        == expected
    )
    for source in ("variant", "counterfactual_prompt"):
        assert (
            _factual_targets(examples, gold, method="cf", variant="revised", source=source)
            == expected
        )


def test_a_missing_gold_explanation_skips_only_the_factual_view(examples, teacher, tokenizer):
    gold = _with_gold(examples, teacher)
    gold["q1"] = replace(gold["q1"], gold=None)
    features = features_build(
        examples,
        gold,
        tokenizer=tokenizer,
        method="mt+cf",
        data_variant="original",
        seed=0,
        factual_explanation="counterfactual_prompt",
    )
    assert features.skipped == {"predict": 0, "explain": 0, "factual": 1, "counterfactual": 0}
    assert features.views["factual"].input_ids[1] is None


def test_labels_are_padded_with_minus_100_and_never_the_pad_id(examples, teacher, tokenizer):
    features = features_build(
        examples, teacher, tokenizer=tokenizer, method="mt", data_variant="original", seed=0
    )
    batch = BatchCollator(features, pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=0)(
        [0, 1, 2]
    )
    lengths = [len(features.views[v].targets[i]) for v in ("predict", "explain") for i in (0, 1, 2)]
    for row, length in enumerate(lengths):
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert (batch["labels"][row, :length] != IGNORE_INDEX).all()
    assert not (batch["labels"] == tokenizer.pad_token_id).any()
    assert batch["view_ids"].tolist() == [0, 0, 0, 1, 1, 1]
    inputs = [
        len(features.views[v].input_ids[i]) for v in ("predict", "explain") for i in (0, 1, 2)
    ]
    assert batch["attention_mask"].sum(dim=1).tolist() == inputs


def test_decoder_inputs_are_the_targets_shifted_right(examples, teacher, tokenizer):
    features = features_build(
        examples, teacher, tokenizer=tokenizer, method="mt", data_variant="original", seed=0
    )
    batch = BatchCollator(features, pad_token_id=0, decoder_start_token_id=0, views=["explain"])(
        [0]
    )
    target = features.views["explain"].targets[0]
    assert batch["decoder_input_ids"][0, 0] == 0
    assert batch["decoder_input_ids"][0, 1 : len(target)].tolist() == target[:-1].tolist()


def test_answer_only_counterfactual_loss_masks_the_phrase_but_feeds_it_to_the_decoder(
    examples, teacher, tokenizer
):
    features = features_build(
        examples,
        teacher,
        tokenizer=tokenizer,
        method="cf",
        data_variant="original",
        seed=0,
        counterfactual_answer_only=True,
    )
    rows = features.views["counterfactual"]
    phrase = tokenizer(ANSWER_PHRASE, add_special_tokens=False)["input_ids"]
    assert rows.untrained[0] == len(phrase)
    batch = BatchCollator(
        features, pad_token_id=0, decoder_start_token_id=0, views=["counterfactual"]
    )([0])
    assert (batch["labels"][0, : len(phrase)] == IGNORE_INDEX).all()
    assert batch["decoder_input_ids"][0, 1 : len(phrase) + 1].tolist() == phrase
    decoded = tokenizer.decode(rows.targets[0], skip_special_tokens=True)
    assert decoded.startswith(ANSWER_PHRASE)
    assert decoded[len(ANSWER_PHRASE) :].strip() in examples[0].wrong_choices


@pytest.mark.parametrize("method", ["mt", "cf", "mt+cf"])
def test_a_combined_batch_gives_the_loss_of_one_pass_per_view(examples, teacher, tokenizer, method):
    features = features_build(
        examples, teacher, tokenizer=tokenizer, method=method, data_variant="revised", seed=3
    )
    model = model_make(tokenizer, dropout=0.0).eval()
    weights = ObjectiveWeights(alpha=0.3, beta=0.8, gamma=0.4)
    per_view = view_weights(method, weights)
    batch_examples = [0, 2, 4]
    with torch.no_grad():
        collator = BatchCollator(features, pad_token_id=0, decoder_start_token_id=0)
        batch = collator(batch_examples)
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
        ).logits
        combined = weighted_view_loss(
            logits,
            batch["labels"],
            batch["view_ids"],
            torch.tensor([per_view[view] for view in collator.views]),
        )
        separate = {}
        for view in per_view:
            single = BatchCollator(features, pad_token_id=0, decoder_start_token_id=0, views=[view])
            part = single(batch_examples)
            # Hugging Face's own label path (shift, then its loss) as the independent reference.
            output = model(
                input_ids=part["input_ids"],
                attention_mask=part["attention_mask"],
                labels=part["labels"],
            )
            separate[view] = output.loss
            assert sequence_loss(output.logits, part["labels"]).item() == pytest.approx(
                output.loss.item(), rel=1e-5
            )
        # The training path: the same rows cut into padding-efficient passes.
        passes = collator.passes(batch_examples)
        split = passes_loss(
            model,
            passes,
            torch.tensor([per_view[view] for view in collator.views]),
            device="cpu",
        )
    reference = objective_loss(method, separate, weights)
    assert combined.item() == pytest.approx(reference.item(), rel=1e-5)
    assert split.item() == pytest.approx(reference.item(), rel=1e-5)
    assert sum(len(part["view_ids"]) for part in passes) == len(batch["view_ids"])


def test_rows_are_split_into_passes_that_pad_less():
    inputs = [10, 60, 12, 58, 11, 59]
    targets = [3, 80, 4, 70, 3, 75]
    groups = row_groups(inputs, targets, max_groups=4, pass_cost=50.0)
    # Short answers in one pass, long explanations in another: 820 units of work instead of
    # 6 × (60 + 2 × 80) = 1,320 for a single padded pass.
    assert sorted(sorted(g.tolist()) for g in groups) == [[0, 2, 4], [1, 3, 5]]
    # With a high cost per pass, everything stays in one pass.
    assert len(row_groups(inputs, targets, pass_cost=1e9)) == 1


def test_features_survive_a_save_and_load(tmp_path, examples, teacher, tokenizer):
    features = features_build(
        examples, teacher, tokenizer=tokenizer, method="mt+cf", data_variant="original", seed=0
    )
    features.views["explain"].input_ids[1] = None
    features.views["explain"].targets[1] = None
    features_save(features, tmp_path / "f.npz")
    loaded = features_load(tmp_path / "f.npz")
    assert loaded.example_ids == features.example_ids
    assert loaded.skipped == features.skipped
    for view, rows in features.views.items():
        for a, b in zip(rows.input_ids, loaded.views[view].input_ids, strict=True):
            assert (a is None and b is None) or np.array_equal(a, b)
        assert rows.untrained == loaded.views[view].untrained


def test_features_are_tokenised_once_and_then_read_from_the_cache(
    tmp_path, examples, teacher, tokenizer, monkeypatch
):
    settings = {"method": "mt", "data_variant": "original", "seed": 0}
    first = features_cached(tmp_path, examples, teacher, tokenizer=tokenizer, **settings)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr("distillation.features.features_build", fail)
    second = features_cached(tmp_path, examples, teacher, tokenizer=tokenizer, **settings)
    assert [r.tolist() for r in second.views["predict"].input_ids] == [
        r.tolist()
        for r in first.views["predict"].input_ids  # type: ignore[union-attr]
    ]


def test_other_teacher_texts_for_the_same_questions_are_tokenised_anew(
    tmp_path, examples, teacher, tokenizer
):
    settings = {"method": "mt", "data_variant": "original", "seed": 0}
    first = features_cached(tmp_path, examples, teacher, tokenizer=tokenizer, **settings)
    changed = dict(teacher)
    example_id = examples[0].id
    changed[example_id] = replace(teacher[example_id], original="A different explanation.")
    second = features_cached(tmp_path, examples, changed, tokenizer=tokenizer, **settings)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert (
        second.views["explain"].targets[0].tolist()  # type: ignore[union-attr]
        != first.views["explain"].targets[0].tolist()  # type: ignore[union-attr]
    )


def test_length_grouped_batches_cover_each_example_once_and_replay_by_seed():
    lengths = np.asarray([5, 50, 6, 49, 7, 48, 8, 47, 9, 10])
    indices = np.arange(10)
    batches = batches_length_grouped(
        indices, lengths, batch_size=2, seed=1, epoch=0, group_factor=5
    )
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    again = batches_length_grouped(indices, lengths, batch_size=2, seed=1, epoch=0, group_factor=5)
    assert [b.tolist() for b in batches] == [b.tolist() for b in again]
    other = batches_length_grouped(indices, lengths, batch_size=2, seed=1, epoch=1, group_factor=5)
    assert [b.tolist() for b in batches] != [b.tolist() for b in other]
    # Within a group, neighbours in length share a batch: no batch mixes a short and a long one.
    for batch in batches:
        assert np.ptp(lengths[batch]) < 10


def test_answers_and_explanations_are_read_back_from_factual_outputs():
    text = f"Milk spoils when warm. {ANSWER_PHRASE} refrigerator"
    assert answer_from_output(text) == "refrigerator"
    assert explanation_from_output(text) == "Milk spoils when warm."
    assert answer_from_output("refrigerator") == "refrigerator"
