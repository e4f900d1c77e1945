"""Contrastive decoding for explanations that support the answer they explain.

At every step the next token is the argmax of::

    log p(token | prompt with the gold answer) - lambda * log p(token | prompt with a wrong answer)

so tokens that the model would write whatever the answer is (generic filler) lose to tokens
that only make sense for the gold answer. As in Li et al. (2023), tokens whose gold-prompt
probability is below ``alpha`` times that of the most likely token are excluded first, so the
subtraction cannot promote tokens the model considers implausible. Both prompts share the
generated continuation and are run as one left-padded batch with a key/value cache.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

from distillation.teachers import GenerationResult
from distillation.teachers.decoding import result_from_tokens


def contrastive_scores(
    expert_logprobs: torch.Tensor, amateur_logprobs: torch.Tensor, *, lam: float, alpha: float
) -> torch.Tensor:
    """Token scores ``expert - lam * amateur``; ``-inf`` below the ``alpha`` plausibility cut.

    Both inputs are log-probabilities of shape ``(batch, vocab)``.
    """
    scores = expert_logprobs - lam * amateur_logprobs
    if alpha > 0.0:
        cutoff = expert_logprobs.max(dim=-1, keepdim=True).values + math.log(alpha)
        scores = scores.masked_fill(expert_logprobs < cutoff, float("-inf"))
    return scores


@torch.no_grad()
def contrastive_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    contrast_prompts: Sequence[str],
    *,
    max_new_tokens: int,
    lam: float,
    alpha: float,
    stop: Sequence[str] = (),
) -> list[GenerationResult]:
    """Greedy contrastive decoding of ``prompts`` against ``contrast_prompts`` (same length)."""
    if len(prompts) != len(contrast_prompts):
        raise ValueError("every prompt needs exactly one contrast prompt")
    batch = len(prompts)
    if batch == 0:
        return []
    device = model.device
    encoded = tokenizer(list(prompts) + list(contrast_prompts), return_tensors="pt", padding=True)
    input_ids = encoded["input_ids"].to(device)
    attention_mask = encoded["attention_mask"].to(device)
    # Left padding: positions must count real tokens only, as ``generate`` does.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    generated = torch.empty((batch, 0), dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    # The cache is filled in place; transformers 5 names the argument ``cache``, 4.x
    # ``past_key_values``.
    cache = DynamicCache(config=model.config)
    cache_argument = (
        "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    )
    step_ids, step_positions = input_ids, position_ids
    for _ in range(max_new_tokens):
        output = model(
            input_ids=step_ids,
            attention_mask=attention_mask,
            position_ids=step_positions,
            use_cache=True,
            **{cache_argument: cache},
        )
        logprobs = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)
        scores = contrastive_scores(logprobs[:batch], logprobs[batch:], lam=lam, alpha=alpha)
        next_ids = scores.argmax(dim=-1)
        next_ids = torch.where(finished, torch.full_like(next_ids, pad), next_ids)
        generated = torch.cat([generated, next_ids[:, None]], dim=1)
        if eos is not None:
            finished |= next_ids == eos
        finished |= _stopped(tokenizer, generated, stop, device)
        if bool(finished.all()):
            break
        # The same token continues both the gold and the contrast prompt of each row.
        step_ids = torch.cat([next_ids, next_ids])[:, None]
        step_positions = step_positions[:, -1:] + 1
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((2 * batch, 1))], 1)
    return [
        result_from_tokens(tokenizer, row.tolist(), max_new_tokens=max_new_tokens, stop=stop)
        for row in generated
    ]


def _stopped(
    tokenizer: Any, generated: torch.Tensor, stop: Sequence[str], device: torch.device
) -> torch.Tensor:
    stop = [sequence for sequence in stop if sequence]
    if not stop:
        return torch.zeros(generated.shape[0], dtype=torch.bool, device=device)
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return torch.tensor([any(s in text for s in stop) for text in texts], device=device)
