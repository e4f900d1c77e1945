"""A run folder: where each output lives, which work is done, and what a run would do.

Run folder::

    config.json                 the resolved configuration and the command line
    data/{train,validation,test}.jsonl
    teacher/                    the teacher-output store (teacher/DONE.json when complete)
    tokenizer/                  the Unigram tokenizer of tiny-t5 students
    features/                   token-id caches
    students/<student>/seed-<n>/  checkpoint/, last/ or best/ (the selected weights),
                                metrics.jsonl, training.json, metrics.json (test accuracy and
                                how many outputs hit their generation cap)
    students/<student>/explanations.jsonl   by the model of the student's study_seed
    students/<student>/explain.json         the seed, the caps and the cut outputs behind it
    accuracy_runs.csv           test accuracy of every student and seed
    accuracy.csv                mean ± sd over seeds per model × method × data variant
    accuracy_anova/             method × size ANOVA and Tukey HSD (when the design allows)
    explanations.jsonl          the study's item pool (students with in_study = true)

The generation caps (``training.answer_max_new_tokens``, ``training.explanation_max_new_tokens``)
and ``training.max_truncated_fraction`` may change between invocations of one run: raising a cap
that cut too many outputs keeps the trained weights and redoes only the generation made under
another cap. Any other change of the configuration needs a run folder of its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillation.config import RunConfig, StudentSpec
from distillation.errors import ConfigError
from distillation.training import training_complete

STAGES = ("data", "teacher", "train", "evaluate", "explain", "study")
# Settings that may change within one run folder: they shape generation, not the weights.
GENERATION_KEYS = ("answer_max_new_tokens", "explanation_max_new_tokens")
RERUNNABLE_KEYS = (*GENERATION_KEYS, "max_truncated_fraction")
EXPLAIN_FILE = "explain.json"


@dataclass(frozen=True)
class PlanStep:
    stage: str
    item: str
    done: bool

    def line(self) -> str:
        return f"{'done   ' if self.done else 'to do  '} {self.stage:<9} {self.item}"


class RunLayout:
    """Where each output of a run lives."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.json"
        self.data = root / "data"
        self.data_done = self.data / "DONE.json"
        self.teacher = root / "teacher"
        self.teacher_done = self.teacher / "DONE.json"
        self.tokenizer = root / "tokenizer"
        self.features = root / "features"
        self.students = root / "students"
        self.accuracy = root / "accuracy.csv"
        self.accuracy_runs = root / "accuracy_runs.csv"
        self.accuracy_anova = root / "accuracy_anova"
        self.explanations = root / "explanations.jsonl"
        self.study_done = root / "study.json"

    def split(self, name: str) -> Path:
        return self.data / f"{name}.jsonl"

    def student(self, spec: StudentSpec) -> Path:
        return self.students / spec.slug

    def seed(self, spec: StudentSpec, seed: int) -> Path:
        return self.student(spec) / f"seed-{seed}"

    def student_explanations(self, spec: StudentSpec) -> Path:
        return self.student(spec) / "explanations.jsonl"

    def student_explain_record(self, spec: StudentSpec) -> Path:
        return self.student(spec) / EXPLAIN_FILE


# -- completion checks, shared by the plan and the run ------------------------------------------
def trained(layout: RunLayout, spec: StudentSpec, seed: int) -> bool:
    return training_complete(layout.seed(spec, seed))


def generation_settings(config: RunConfig) -> dict[str, int]:
    return {key: getattr(config.training, key) for key in GENERATION_KEYS}


def _json_file(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def evaluated(config: RunConfig, layout: RunLayout, spec: StudentSpec, seed: int) -> bool:
    """Tested, and under the generation caps the configuration gives now."""
    metrics = _json_file(layout.seed(spec, seed) / "metrics.json")
    return metrics is not None and metrics.get("generation") == generation_settings(config)


def explained(config: RunConfig, layout: RunLayout, spec: StudentSpec) -> bool:
    """Explained by the study seed's model, under the generation caps of the configuration."""
    record = _json_file(layout.student_explain_record(spec))
    return (
        layout.student_explanations(spec).is_file()
        and record is not None
        and record.get("generation") == generation_settings(config)
        and record.get("seed") == spec.study_seed
    )


def study_marker(config: RunConfig, layout: RunLayout) -> dict[str, str] | None:
    if not layout.explanations.is_file():
        return None
    digest = hashlib.sha256(layout.explanations.read_bytes()).hexdigest()
    return {"slug": config.study.slug, "explanations_sha256": digest}


def study_done(config: RunConfig, layout: RunLayout) -> bool:
    if not layout.study_done.is_file():
        return False
    marker = study_marker(config, layout)
    return marker is not None and json.loads(layout.study_done.read_text()) == marker


def pipeline_plan(config: RunConfig, *, stages: Sequence[str] = STAGES) -> list[PlanStep]:
    """Every unit of work of the requested stages, with whether it is already done."""
    stages_check(stages)
    layout = RunLayout(config.output_dir)
    plan: list[PlanStep] = []
    if "data" in stages:
        source = f"{config.data.train}" + (
            f" + test {config.data.test}" if config.data.test else ""
        )
        plan.append(PlanStep("data", f"load and split {source}", layout.data_done.is_file()))
    if "teacher" in stages:
        teacher = config.teacher
        what = (
            f"import {teacher.source}"
            if teacher.backend == "import"
            else f"generate with {teacher.backend} model {teacher.model} ({', '.join(teacher.steps)})"
        )
        plan.append(PlanStep("teacher", what, layout.teacher_done.is_file()))
    steps = config.training.steps
    runs = [(spec, seed) for spec in config.students for seed in spec.seeds]
    selection = config.training.selection
    if "train" in stages:
        for spec, seed in runs:
            detail = (
                f"{spec.slug} seed {seed}: {spec.model}, {spec.method}, {spec.data_variant}, "
                f"{steps} steps, weights: {selection}"
            )
            plan.append(PlanStep("train", detail, trained(layout, spec, seed)))
    if "evaluate" in stages:
        for spec, seed in runs:
            detail = f"{spec.slug} seed {seed}: test accuracy"
            plan.append(PlanStep("evaluate", detail, evaluated(config, layout, spec, seed)))
    if "explain" in stages:
        for spec in config.students:
            done = explained(config, layout, spec)
            detail = f"{spec.slug}: seed {spec.study_seed}, as condition {spec.condition}"
            plan.append(PlanStep("explain", detail, done))
    if "study" in stages:
        plan.append(
            PlanStep(
                "study",
                f"create or update study {config.study.slug!r}",
                study_done(config, layout),
            )
        )
    return plan


def stages_check(stages: Sequence[str]) -> list[str]:
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage {unknown[0]!r}; accepted stages: {', '.join(STAGES)}")
    return [stage for stage in STAGES if stage in stages]


def config_identity(source: Any) -> Any:
    """A recorded configuration without the settings that may change within a run."""
    if not isinstance(source, dict):
        return source
    training = {
        key: value
        for key, value in source.get("training", {}).items()
        if key not in RERUNNABLE_KEYS
    }
    return {**source, "training": training}
