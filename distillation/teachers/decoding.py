"""Decoding helpers shared by the local backends: stop handling and turning tokens into results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria

from distillation.postprocess import cut_at_stop
from distillation.teachers import GenerationResult


def result_from_tokens(
    tokenizer: Any, new_ids: Sequence[int], *, max_new_tokens: int, stop: Sequence[str]
) -> GenerationResult:
    """The result for one row of generated ids (prompt excluded; padding after EOS ignored).

    An output "hit the limit" when it used all ``max_new_tokens`` without an EOS token or a stop
    sequence: only then may its last sentence be unfinished.
    """
    ids = list(new_ids)
    eos = tokenizer.eos_token_id
    ended_by_eos = eos is not None and eos in ids
    if ended_by_eos:
        ids = ids[: ids.index(eos)]
    text, stopped = cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stop)
    hit_limit = not ended_by_eos and not stopped and len(ids) >= max_new_tokens
    return GenerationResult(text=text, hit_limit=hit_limit, new_tokens=len(ids))


class StopOnText(StoppingCriteria):
    """Ends each row of a batch as soon as its generated text contains a stop sequence.

    Rows stop independently (``generate`` pads the finished ones), so one long answer does not
    hold the batch, and a short one is not cut by another row's stop.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(sequence for sequence in stop if sequence)
        self.prompt_length = prompt_length

    def __call__(
        self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any
    ) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.stop:
            return done  # type: ignore[return-value]
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_length :], skip_special_tokens=True
        )
        for row, text in enumerate(texts):
            done[row] = any(sequence in text for sequence in self.stop)
        return done  # type: ignore[return-value]
