"""Accuracy of a student: batched greedy generation on the path its method predicts with.

MT and MT+CF students answer from the ``[predict]`` input; CF students from the ``[factual]``
input, whose output ends with "So the answer is <choice>". A prediction is correct when its
normalised text equals the normalised gold answer (exact match).

Every generated output records whether it hit its cap (``max_new_tokens`` reached before the
end-of-sequence token): a cut explanation is not the model's explanation, and a cut answer is
no answer. ``truncation_check`` fails a generation with too many of them and names the
setting to raise.

``GenerationSettings`` carries the batch size, the two caps and the input length from the run
configuration to every generation of a student: validation, test accuracy and the explanations
shown in the study.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from distillation.errors import DataError
from distillation.features import answer_from_output, pad_rows, view_input
from distillation.objectives import PREDICTION_VIEW, method_check
from distillation.types import Example

if TYPE_CHECKING:
    from distillation.config import TrainingConfig

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def answer_normalise(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style normalisation)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


# The one view whose output is the answer alone; every other output explains first.
ANSWER_VIEW = "predict"


@dataclass(frozen=True)
class GenerationSettings:
    """How a student generates: greedy, in batches, with a cap of new tokens per output.

    Examples
    --------
    >>> settings = GenerationSettings(answer_max_new_tokens=8, explanation_max_new_tokens=64)
    >>> settings.cap("predict")
    (8, 'training.answer_max_new_tokens')
    >>> settings.cap("factual")
    (64, 'training.explanation_max_new_tokens')
    """

    batch_size: int = 32  # inputs per generate call
    answer_max_new_tokens: int = 16  # cap of an output that is only an answer
    explanation_max_new_tokens: int = 128  # cap of an output that explains
    max_input_length: int = 512  # input tokens, end-of-sequence included

    @classmethod
    def from_training(cls, training: TrainingConfig) -> GenerationSettings:
        """The settings that the run configuration's ``[training]`` table gives."""
        return cls(
            batch_size=training.eval_batch_size,
            answer_max_new_tokens=training.answer_max_new_tokens,
            explanation_max_new_tokens=training.explanation_max_new_tokens,
            max_input_length=training.max_input_length,
        )

    def cap(self, view: str) -> tuple[int, str]:
        """The cap of new tokens for ``view``'s outputs and the configuration key that sets it.

        A factual output explains first and answers last, so it needs the explanation budget.
        """
        if view == ANSWER_VIEW:
            return self.answer_max_new_tokens, "training.answer_max_new_tokens"
        return self.explanation_max_new_tokens, "training.explanation_max_new_tokens"

    def cap_count(self, view: str, outputs: Sequence[GeneratedText]) -> CapCount:
        """How many of ``view``'s ``outputs`` hit its cap."""
        cap, key = self.cap(view)
        return CapCount(
            key=key,
            cap=cap,
            truncated=sum(output.truncated for output in outputs),
            total=len(outputs),
        )


DEFAULT_GENERATION = GenerationSettings()


@dataclass(frozen=True)
class GeneratedText:
    """One greedy output and whether generation stopped at its cap instead of ending itself."""

    text: str
    truncated: bool


def texts_generate(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[str],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 64,
    max_input_length: int = 512,
) -> list[str]:
    """Greedy outputs for ``inputs``, generated in batches of similar length, in input order."""
    generated = outputs_generate(
        model,
        tokenizer,
        inputs,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        max_input_length=max_input_length,
    )
    return [output.text for output in generated]


def outputs_generate(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[str],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 64,
    max_input_length: int = 512,
) -> list[GeneratedText]:
    """``texts_generate`` with, per output, whether it was cut at ``max_new_tokens``."""
    if not inputs:
        return []
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    # Inputs are encoded exactly as in training: the pieces, cut, then end-of-sequence.
    ids = [
        np.asarray([*row[: max_input_length - 1], eos], dtype=np.int64)
        for row in tokenizer(list(inputs), add_special_tokens=False)["input_ids"]
    ]
    order = np.argsort([-len(row) for row in ids], kind="stable")
    outputs: list[GeneratedText] = [GeneratedText("", False)] * len(inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                rows = [ids[index] for index in chunk]
                input_ids = torch.from_numpy(pad_rows(rows, tokenizer.pad_token_id)).to(device)
                lengths = torch.tensor([len(row) for row in rows], device=device)
                attention = (
                    torch.arange(input_ids.shape[1], device=device)[None, :] < lengths[:, None]
                ).long()
                generated = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                )
                texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
                # The first position is the decoder's start token; a row that never produced
                # the end-of-sequence token ran until the cap.
                ended = (generated[:, 1:] == eos).any(dim=1).tolist()
                for index, text, end in zip(chunk.tolist(), texts, ended, strict=True):
                    outputs[index] = GeneratedText(text.strip(), not end)
    finally:
        model.train(was_training)
    return outputs


def view_outputs(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    view: str,
    generation: GenerationSettings = DEFAULT_GENERATION,
) -> list[GeneratedText]:
    """The generated output of ``view`` for every example, under the view's cap."""
    return outputs_generate(
        model,
        tokenizer,
        [view_input(view, example) for example in examples],
        batch_size=generation.batch_size,
        max_new_tokens=generation.cap(view)[0],
        max_input_length=generation.max_input_length,
    )


@dataclass(frozen=True)
class CapCount:
    """How many outputs of one generation hit the cap that the setting ``key`` gives."""

    key: str  # the run configuration key of the cap, e.g. "training.answer_max_new_tokens"
    cap: int
    truncated: int
    total: int

    @property
    def fraction(self) -> float:
        return self.truncated / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "cap": self.key,
            "max_new_tokens": self.cap,
            "truncated": self.truncated,
            "outputs": self.total,
            "truncated_fraction": round(self.fraction, 6),
        }


def truncation_check(counts: Sequence[CapCount], *, limit: float, what: str) -> None:
    """Raise ``DataError`` when more than ``limit`` of the outputs of a cap were cut."""
    for count in counts:
        if count.fraction > limit:
            raise DataError(
                f"{what}: {count.truncated} of {count.total} outputs "
                f"({count.fraction:.1%}) hit the cap of {count.cap} new tokens, more than the "
                f"{limit:.1%} that training.max_truncated_fraction allows; raise {count.key} "
                "and run again (the trained weights are kept)"
            )


@dataclass(frozen=True)
class EvaluationResult:
    accuracy: float
    correct: int
    total: int
    predictions: tuple[str, ...]
    truncation: CapCount

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "truncated": self.truncation.truncated,
            "truncation": self.truncation.as_dict(),
        }


def accuracy_evaluate(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    method: str,
    generation: GenerationSettings = DEFAULT_GENERATION,
) -> EvaluationResult:
    """Exact-match accuracy of ``method``'s predictions on ``examples``."""
    view = PREDICTION_VIEW[method_check(method)]
    outputs = view_outputs(model, tokenizer, examples, view=view, generation=generation)
    predictions = tuple(answer_from_output(output.text) for output in outputs)
    correct = sum(
        answer_normalise(prediction) == answer_normalise(example.answer)
        for prediction, example in zip(predictions, examples, strict=True)
    )
    total = len(examples)
    return EvaluationResult(
        accuracy=correct / total if total else 0.0,
        correct=correct,
        total=total,
        predictions=predictions,
        truncation=generation.cap_count(view, outputs),
    )


def metrics_write(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)
