from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from distillation.teachers import GenerationRequest
from distillation.teachers.contrastive import contrastive_generate, contrastive_scores
from distillation.teachers.hf import HFTeacher
from distillation.teachers.tiny import tiny_causal_lm_build, tiny_tokenizer_train, torch_threads

# A toy vocabulary of four tokens: the gold-answer prompt and the wrong-answer prompt each give
# a next-token distribution.
EXPERT = torch.tensor([[0.50, 0.30, 0.15, 0.05]])
AMATEUR = torch.tensor([[0.60, 0.10, 0.20, 0.10]])


def test_scores_are_expert_minus_lambda_times_amateur_log_probabilities() -> None:
    scores = contrastive_scores(EXPERT.log(), AMATEUR.log(), lam=1.0, alpha=0.0)

    # By hand: log(0.5/0.6), log(0.3/0.1), log(0.15/0.2), log(0.05/0.1).
    expected = [-0.18232, 1.09861, -0.28768, -0.69315]
    assert scores[0].tolist() == pytest.approx(expected, abs=1e-4)
    # Plain greedy would pick token 0; the contrast favours token 1, likely only given the gold.
    assert int(scores.argmax()) == 1


def test_lambda_scales_the_penalty() -> None:
    scores = contrastive_scores(EXPERT.log(), AMATEUR.log(), lam=0.5, alpha=0.0)

    assert scores[0, 0].item() == pytest.approx(math.log(0.5) - 0.5 * math.log(0.6), abs=1e-6)
    assert contrastive_scores(EXPERT.log(), AMATEUR.log(), lam=0.0, alpha=0.0).argmax() == 0


def test_the_plausibility_cut_excludes_tokens_unlikely_under_the_gold_prompt() -> None:
    # alpha = 0.4: tokens below 0.4 * 0.5 = 0.2 are out, whatever the amateur says.
    scores = contrastive_scores(EXPERT.log(), AMATEUR.log(), lam=1.0, alpha=0.4)

    assert scores[0, 2:].tolist() == [float("-inf"), float("-inf")]
    assert scores[0, :2].tolist() == pytest.approx([-0.18232, 1.09861], abs=1e-4)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def tiny(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    # GPT-2's absolute position embeddings catch wrong positions under left padding, which
    # LLaMA's rotary (relative) positions would hide.
    tokenizer = tiny_tokenizer_train(
        ["the cat sleeps on the sofa because it is soft and warm"] * 5, vocab_size=200
    )
    tokenizer.padding_side = "left"
    return tiny_causal_lm_build(tokenizer, kind=request.param, seed=2), tokenizer


def reference_decode(model: Any, tokenizer: Any, gold: str, wrong: str, steps: int) -> list[int]:
    """Contrastive decoding the slow way: one unpadded prompt, a full forward pass per token."""
    gold_ids = tokenizer(gold, return_tensors="pt")["input_ids"]
    wrong_ids = tokenizer(wrong, return_tensors="pt")["input_ids"]
    chosen: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            tail = torch.tensor([chosen], dtype=torch.long)
            expert = model(input_ids=torch.cat([gold_ids, tail], 1)).logits[:, -1].log_softmax(-1)
            amateur = model(input_ids=torch.cat([wrong_ids, tail], 1)).logits[:, -1].log_softmax(-1)
            chosen.append(int(contrastive_scores(expert, amateur, lam=0.7, alpha=0.1).argmax()))
            if chosen[-1] == tokenizer.eos_token_id:
                break
    return chosen


def test_the_batched_cached_loop_matches_a_reference_decoding(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    pairs = [
        ("the cat sleeps on the", "the cat sleeps on the warm soft"),  # contrast longer than gold
        ("the cat", "it is"),
    ]

    results = contrastive_generate(
        model,
        tokenizer,
        [gold for gold, _ in pairs],
        [wrong for _, wrong in pairs],
        max_new_tokens=5,
        lam=0.7,
        alpha=0.1,
    )

    for (gold, wrong), result in zip(pairs, results, strict=True):
        expected = reference_decode(model, tokenizer, gold, wrong, 5)
        assert result.text == tokenizer.decode(expected, skip_special_tokens=True)
        assert result.hit_limit == (tokenizer.eos_token_id not in expected)


def test_the_hf_backend_decodes_contrastively_when_a_request_has_a_contrast_prompt(
    tiny: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny
    teacher = HFTeacher(
        model, tokenizer, name="tiny", contrastive_lambda=0.7, contrastive_alpha=0.1
    )

    (result,) = teacher.generate([GenerationRequest("the cat", 5, contrast_prompt="it is")])

    expected = reference_decode(model, tokenizer, "the cat", "it is", 5)
    assert result.text == tokenizer.decode(expected, skip_special_tokens=True)
