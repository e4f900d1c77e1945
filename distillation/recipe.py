"""The paper's training recipe, written down once as data, and a run's differences from it.

"Honey, I Shrunk the Language Model" (arXiv 2504.16056) trains T5-v1.1 base and large students
on LLaMA-2-13B explanations of CommonsenseQA with MT, CF and MT+CF, on original and revised
explanations, six runs a cell. ``PAPER_RECIPE`` lists every choice of that recipe that a run
configuration can change; ``recipe_deviations`` compares a configuration with it, and
``recipe_lines`` prints the effective recipe (what ``run_distillation --dry-run`` shows).

Example::

    >>> from pathlib import Path
    >>> from distillation.config import run_config_load
    >>> config = run_config_load(Path("configs/paper-cqa.toml"))
    >>> recipe_deviations(config)
    []
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from distillation.config import RunConfig

PAPER_MODELS = ("google/t5-v1_1-base", "google/t5-v1_1-large")
PAPER_SEEDS = (0, 1, 2, 3, 4, 5)
PAPER_CELLS = tuple(
    f"{method} {variant}" for method in ("mt", "cf", "mt+cf") for variant in ("original", "revised")
)
COMPARISONS = ("equal", "at_least", "at_most", "same_set")


@dataclass(frozen=True)
class RecipeEntry:
    """One choice of the paper's recipe: where it lives in a run configuration and its value.

    ``comparison`` says what keeps a run on the recipe: the same value (``equal``), a value no
    lower (``at_least``, for limits that only must be high enough) or no higher (``at_most``),
    or the same set of values (``same_set``, for what the students cover).
    """

    key: str
    paper: Any
    why: str
    value: Callable[[RunConfig], Any]
    comparison: str = "equal"

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.comparison!r}")

    def follows(self, value: Any) -> bool:
        if self.comparison == "at_least":
            return bool(value >= self.paper)
        if self.comparison == "at_most":
            return bool(value <= self.paper)
        if self.comparison == "same_set":
            return set(value) == set(self.paper)
        return bool(value == self.paper)


@dataclass(frozen=True)
class Deviation:
    """A run's value of a recipe entry that the paper's recipe does not allow."""

    key: str
    value: Any
    paper: Any
    why: str
    comparison: str = "equal"

    def line(self) -> str:
        if self.comparison == "same_set":
            missing = [item for item in self.paper if item not in self.value]
            extra = [item for item in self.value if item not in self.paper]
            parts = [f"missing {', '.join(map(str, missing))}" if missing else ""]
            parts.append(f"not in the paper {', '.join(map(str, extra))}" if extra else "")
            found = "; ".join(part for part in parts if part)
            return f"{self.key}: {found} ({self.why})"
        bound = {"at_least": "at least ", "at_most": "at most "}.get(self.comparison, "")
        return f"{self.key} = {_shown(self.value)} (paper: {bound}{_shown(self.paper)}; {self.why})"


def _training(name: str) -> Callable[[RunConfig], Any]:
    return lambda config: getattr(config.training, name)


def _models(config: RunConfig) -> list[str]:
    return sorted({student.model for student in config.students})


def _cells(config: RunConfig) -> list[str]:
    return sorted({f"{student.method} {student.data_variant}" for student in config.students})


def _seeds(config: RunConfig) -> list[tuple[int, ...]]:
    return sorted({tuple(sorted(student.seeds)) for student in config.students})


PAPER_RECIPE: tuple[RecipeEntry, ...] = (
    RecipeEntry(
        "students.model",
        list(PAPER_MODELS),
        "T5-v1.1 base and large students",
        _models,
        "same_set",
    ),
    RecipeEntry(
        "students.method × data_variant",
        list(PAPER_CELLS),
        "MT, CF and MT+CF on original and revised explanations",
        _cells,
        "same_set",
    ),
    RecipeEntry("students.seeds", [PAPER_SEEDS], "six runs a cell", _seeds),
    RecipeEntry("training.steps", 5000, "optimiser steps per run", _training("steps")),
    RecipeEntry("training.batch_size", 64, "examples per optimiser step", _training("batch_size")),
    RecipeEntry("training.learning_rate", 5e-5, "AdamW step size", _training("learning_rate")),
    RecipeEntry(
        "training.max_input_length",
        300,
        "inputs tokenised to 300 tokens",
        _training("max_input_length"),
    ),
    RecipeEntry(
        "training.max_target_length",
        300,
        "targets tokenised to 300 tokens",
        _training("max_target_length"),
    ),
    RecipeEntry(
        "training.alpha", 0.5, "MT: answer and explanation weigh the same", _training("alpha")
    ),
    RecipeEntry(
        "training.beta",
        0.5,
        "CF: factual and counterfactual weigh the same",
        _training("beta"),
    ),
    RecipeEntry(
        "training.gamma", 0.5, "MT+CF: the MT and CF losses weigh the same", _training("gamma")
    ),
    RecipeEntry(
        "training.factual_explanation",
        "counterfactual_prompt",
        "MT+CF's factual view learns the counterfactual prompt's explanation of the gold answer",
        _training("factual_explanation"),
    ),
    RecipeEntry(
        "training.selection",
        "last",
        "the weights after the last step are evaluated",
        _training("selection"),
    ),
    RecipeEntry(
        "training.answer_max_new_tokens",
        16,
        "room for the longest answer choice",
        _training("answer_max_new_tokens"),
        "at_least",
    ),
    RecipeEntry(
        "training.explanation_max_new_tokens",
        512,
        "above the 300-token targets, so that no explanation is cut",
        _training("explanation_max_new_tokens"),
        "at_least",
    ),
    RecipeEntry(
        "training.max_truncated_fraction",
        0.01,
        "a run with more cut outputs fails",
        _training("max_truncated_fraction"),
        "at_most",
    ),
    RecipeEntry("data.train_limit", None, "every training question", lambda c: c.data.train_limit),
    RecipeEntry("data.test_limit", None, "every test question", lambda c: c.data.test_limit),
    RecipeEntry(
        "analysis.plan",
        "paper",
        "the authors' analysis of accuracy",
        lambda c: c.analysis.plan,
    ),
)


def recipe_deviations(
    config: RunConfig, recipe: Sequence[RecipeEntry] = PAPER_RECIPE
) -> list[Deviation]:
    """Every entry of ``recipe`` that ``config`` does not follow, in recipe order."""
    deviations = []
    for entry in recipe:
        value = entry.value(config)
        if not entry.follows(value):
            deviations.append(Deviation(entry.key, value, entry.paper, entry.why, entry.comparison))
    return deviations


def recipe_lines(config: RunConfig, *, processes: int = 1) -> list[str]:
    """The effective recipe of ``config`` and its differences from the paper's, for people."""
    training = config.training
    lines = ["Effective recipe:"]
    for item in fields(training):
        if item.name != "tiny_t5":
            lines.append(f"  training.{item.name} = {_shown(getattr(training, item.name))}")
    if any(student.model == "tiny-t5" for student in config.students):
        lines.append(f"  training.tiny_t5 = {training.tiny_t5}")
    lines.append(f"  batch: {training.batch_split(processes).line()}")
    weights = ", ".join(
        f"{method} {_weights_shown(method, config)}" for method in ("mt", "cf", "mt+cf")
    )
    lines.append(f"  view weights: {weights}")
    for student in config.students:
        study = f", study seed {student.study_seed}" if student.in_study else ", not in the study"
        lines.append(
            f"  student {student.slug}: {student.model}, {student.method}, "
            f"{student.data_variant}, seeds {list(student.seeds)}{study}"
        )
    lines.append(f"  analysis.plan = {config.analysis.plan}")
    deviations = recipe_deviations(config)
    if not deviations:
        lines.append("Differences from the paper's recipe: none")
    else:
        lines.append(f"Differences from the paper's recipe ({len(deviations)}):")
        lines.extend(f"  {deviation.line()}" for deviation in deviations)
    return lines


def _weights_shown(method: str, config: RunConfig) -> str:
    from distillation.objectives import view_weights

    weights = view_weights(method, config.training.objective)
    return "(" + ", ".join(f"{view} {weight:g}" for view, weight in weights.items()) + ")"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
