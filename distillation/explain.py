"""Explanations of the test questions by a trained student, as the study's explanations file.

One JSON Lines record per question in the explanations-file format (docs/formats.md)::

    {"condition": "MT+CF:revised", "question_id", "question", "choices", "answer",
     "predicted_answer", "explanation", "student", "method", "data_variant", "run",
     "truncated"}

``truncated`` is true when the explanation's generation hit its cap (the text was cut).

The predicted answer comes from the view the method predicts with, the explanation from the
view it explains with (``objectives.PREDICTION_VIEW`` / ``EXPLANATION_VIEW``); for CF both come
from one factual output. Participants are shown the predicted answer as one of the question's
choices: a generated answer that is not literally a choice is shown as the most similar choice.
A question whose generated explanation is empty gets no record (the count is returned), since
there is nothing for a participant to rate.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillation.evaluation import (
    DEFAULT_GENERATION,
    CapCount,
    GenerationSettings,
    answer_normalise,
    view_outputs,
)
from distillation.features import answer_from_output, explanation_from_output
from distillation.objectives import EXPLANATION_VIEW, PREDICTION_VIEW, method_check
from distillation.types import Example
from studyformats.explanations import ExplanationRecord


def choice_match(prediction: str, choices: Sequence[str]) -> str:
    """The choice ``prediction`` names: an exact normalised match, else the most similar one."""
    normalised = answer_normalise(prediction)
    for choice in choices:
        if answer_normalise(choice) == normalised:
            return choice
    return max(
        choices,
        key=lambda choice: difflib.SequenceMatcher(
            None, normalised, answer_normalise(choice)
        ).ratio(),
    )


@dataclass(frozen=True)
class ExplanationBatch:
    records: list[dict[str, Any]]
    empty: int  # questions left out because the generated explanation was empty
    truncation: tuple[CapCount, ...] = ()  # per generation cap: outputs that hit it


def explanations_generate(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    method: str,
    condition: str,
    student: str,
    data_variant: str,
    run: str,
    generation: GenerationSettings = DEFAULT_GENERATION,
) -> ExplanationBatch:
    """Greedy answers and explanations of ``examples`` as explanations-file records."""
    method_check(method)
    prediction_view, explanation_view = PREDICTION_VIEW[method], EXPLANATION_VIEW[method]
    explained = view_outputs(
        model, tokenizer, examples, view=explanation_view, generation=generation
    )
    truncation = [generation.cap_count(explanation_view, explained)]
    if prediction_view == explanation_view:
        answers = [answer_from_output(output.text) for output in explained]
        explanations = [explanation_from_output(output.text) for output in explained]
    else:
        answered = view_outputs(
            model, tokenizer, examples, view=prediction_view, generation=generation
        )
        truncation.append(generation.cap_count(prediction_view, answered))
        answers = [output.text for output in answered]
        explanations = [output.text.strip() for output in explained]
    records = []
    empty = 0
    for example, answer, explanation, output in zip(
        examples, answers, explanations, explained, strict=True
    ):
        if not explanation:
            empty += 1
            continue
        record = ExplanationRecord(
            condition=condition,
            question_id=example.id,
            question=example.question,
            choices=tuple(example.choices),
            answer=example.answer,
            predicted_answer=choice_match(answer, example.choices),
            explanation=explanation,
            student=student,
            method=method,
            data_variant=data_variant,
            run=run,
            truncated=output.truncated,
        )
        records.append(record.as_json())
    return ExplanationBatch(records=records, empty=empty, truncation=tuple(truncation))


def jsonl_write(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write ``records`` as JSON Lines (atomically); returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    partial.replace(path)
    return count


def jsonl_read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
