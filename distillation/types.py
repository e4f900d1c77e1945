"""The value types that flow between the stages of the distillation pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One multiple-choice CommonsenseQA question with its gold answer (one of ``choices``)."""

    id: str
    question: str
    choices: tuple[str, ...]
    answer: str

    @property
    def answer_index(self) -> int:
        return self.choices.index(self.answer)

    @property
    def wrong_choices(self) -> tuple[str, ...]:
        return tuple(choice for choice in self.choices if choice != self.answer)


@dataclass(frozen=True)
class TeacherExplanations:
    """The teacher's cleaned outputs for one example, as the students are trained on them.

    ``None`` marks a step whose output is missing or failed; trainers skip it and count it.
    ``counterfactuals`` maps a wrong choice to the teacher's explanation of that choice.
    ``gold`` is the counterfactual prompt asked about the gold answer itself: a factual
    explanation, which the paper's MT+CF students learn in their factual view.
    """

    example_id: str
    original: str | None = None
    critique: str | None = None
    revised: str | None = None
    counterfactuals: dict[str, str] = field(default_factory=dict)
    gold: str | None = None
