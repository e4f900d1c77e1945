"""The distillation run, stage by stage: data → teacher → train → evaluate → explain → study.

Everything a stage produces lives in the run folder, and a stage whose outputs are all there
is skipped, so rerunning the same command resumes an interrupted run (training itself resumes
from its last checkpoint). ``pipeline_plan`` says what would run without running it.

Run folder::

    config.json                 the resolved configuration and the command line
    data/{train,validation,test}.jsonl
    teacher/                    the teacher-output store (teacher/DONE.json when complete)
    tokenizer/                  the Unigram tokenizer of tiny-t5 students
    features/                   token-id caches
    students/<student>/seed-<n>/  checkpoint/, best/, metrics.jsonl, training.json, metrics.json
    students/<student>/explanations.jsonl
    accuracy_runs.csv           test accuracy of every student and seed
    accuracy.csv                mean ± sd over seeds per model × method × data variant
    accuracy_anova/             method × size ANOVA and Tukey HSD (when the design allows)
    explanations.jsonl          the study's item pool (students with in_study = true)

The study stage needs the database, so the caller passes it in as ``study_create``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distillation.config import RunConfig, StudentSpec, StudyConfig
from distillation.errors import ConfigError, DataError
from distillation.evaluation import accuracy_evaluate, metrics_write
from distillation.explain import explanations_generate, jsonl_read, jsonl_write
from distillation.features import FeatureSet, features_cached, view_texts
from distillation.students import (
    TINY_T5,
    pretrained_load,
    student_load,
    tiny_t5_build,
    tokenizer_train,
)
from distillation.training import (
    BEST_DIR,
    TRAINING_FILE,
    accelerator_create,
    student_train,
    training_complete,
    validation_loss,
)
from distillation.types import Example, TeacherExplanations

STAGES = ("data", "teacher", "train", "evaluate", "explain", "study")
SPLITS = ("train", "validation", "test")
ACCURACY_COLUMNS = (
    "model",
    "size",
    "method",
    "data_variant",
    "seeds",
    "accuracy_mean",
    "accuracy_sd",
)
RUN_COLUMNS = ("model", "size", "method", "data_variant", "seed", "accuracy", "correct", "total")

Log = Callable[[str], None]
StudyCreate = Callable[[Path, StudyConfig], str]


@dataclass(frozen=True)
class PlanStep:
    stage: str
    item: str
    done: bool

    def line(self) -> str:
        return f"{'done   ' if self.done else 'to do  '} {self.stage:<9} {self.item}"


@dataclass
class RunSummary:
    """What a pipeline run did; the Django command stores it with the run record."""

    output_dir: str
    stages_run: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    explanations: int = 0
    study: str | None = None
    notes: list[str] = field(default_factory=list)


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


# -- completion checks, shared by the plan and the run ------------------------------------------
def _trained(layout: RunLayout, spec: StudentSpec, seed: int) -> bool:
    return training_complete(layout.seed(spec, seed))


def _evaluated(layout: RunLayout, spec: StudentSpec, seed: int) -> bool:
    return (layout.seed(spec, seed) / "metrics.json").is_file()


def _study_marker(config: RunConfig, layout: RunLayout) -> dict[str, str] | None:
    if not layout.explanations.is_file():
        return None
    digest = hashlib.sha256(layout.explanations.read_bytes()).hexdigest()
    return {"slug": config.study.slug, "explanations_sha256": digest}


def _study_done(config: RunConfig, layout: RunLayout) -> bool:
    if not layout.study_done.is_file():
        return False
    marker = _study_marker(config, layout)
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
    if "train" in stages:
        for spec, seed in runs:
            detail = f"{spec.slug} seed {seed}: {spec.model}, {spec.method}, {spec.data_variant}, {steps} steps"
            plan.append(PlanStep("train", detail, _trained(layout, spec, seed)))
    if "evaluate" in stages:
        for spec, seed in runs:
            detail = f"{spec.slug} seed {seed}: test accuracy"
            plan.append(PlanStep("evaluate", detail, _evaluated(layout, spec, seed)))
    if "explain" in stages:
        for spec in config.students:
            done = layout.student_explanations(spec).is_file()
            plan.append(PlanStep("explain", f"{spec.slug}: as condition {spec.condition}", done))
    if "study" in stages:
        plan.append(
            PlanStep(
                "study",
                f"create or update study {config.study.slug!r}",
                _study_done(config, layout),
            )
        )
    return plan


def stages_check(stages: Sequence[str]) -> list[str]:
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage {unknown[0]!r}; accepted stages: {', '.join(STAGES)}")
    return [stage for stage in STAGES if stage in stages]


# -- the run ---------------------------------------------------------------------------------
class _Run:
    def __init__(
        self,
        config: RunConfig,
        *,
        log: Log,
        progress: bool,
        study_create: StudyCreate | None,
        command: Sequence[str],
    ) -> None:
        self.config = config
        self.layout = RunLayout(config.output_dir)
        self.log = log
        self.progress = progress
        self.study_create = study_create
        self.command = list(command)
        self.summary = RunSummary(output_dir=str(config.output_dir))
        self._accelerator: Any = None
        self._teacher: dict[str, TeacherExplanations] | None = None
        self._splits: dict[str, list[Example]] = {}

    # -- shared inputs ----------------------------------------------------------------------
    @property
    def accelerator(self) -> Any:
        if self._accelerator is None:
            self._accelerator = accelerator_create(self.config.training)
        return self._accelerator

    def split(self, name: str) -> list[Example]:
        if name not in self._splits:
            path = self.layout.split(name)
            if not path.is_file():
                raise DataError(f"{path} is missing; run the data stage first")
            from distillation.data import examples_load

            self._splits[name] = examples_load(path, format="cos_e") if path.stat().st_size else []
        return self._splits[name]

    def teacher(self) -> dict[str, TeacherExplanations]:
        if self._teacher is None:
            from distillation.store import teacher_explanations_load

            if not self.layout.teacher_done.is_file():
                raise DataError(
                    f"{self.layout.teacher} has no complete teacher outputs; run the teacher stage first"
                )
            self._teacher = teacher_explanations_load(self.layout.teacher)
        return self._teacher

    def config_record(self) -> None:
        """Keep the configuration beside the outputs; refuse to mix two configurations."""
        record = {"config": json.loads(json.dumps(self.config.source, default=str))}
        if self.layout.config.is_file():
            previous = json.loads(self.layout.config.read_text(encoding="utf-8"))
            if previous.get("config") != record["config"]:
                raise ConfigError(
                    f"{self.layout.root} holds a run made with a different configuration; "
                    "give this configuration another [run] name or output_dir, or delete "
                    "that folder to start over"
                )
            return
        record["command"] = self.command
        record["seed"] = self.config.seed
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.layout.config.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    # -- stages -----------------------------------------------------------------------------
    def data(self) -> None:
        from distillation.data import examples_load, train_validation_split

        data = self.config.data
        examples = examples_load(data.train, format=data.format, limit=data.train_limit)
        train, validation = train_validation_split(
            examples, validation_fraction=data.validation_fraction, seed=data.split_seed
        )
        test: list[Example] = []
        if data.test is not None:
            # Never test on a training question: a test file that is (or overlaps) the
            # training file keeps only the questions the training selection left out.
            used = {example.id for example in examples}
            test = [
                example
                for example in examples_load(data.test, format=data.format)
                if example.id not in used
            ]
            if data.test_limit is not None:
                test = test[: data.test_limit]
        if not test:
            raise ConfigError(
                "the data has no test questions: set data.test (it may be the training file "
                "with data.train_limit leaving questions out)"
            )
        for name, split in zip(SPLITS, (train, validation, test), strict=True):
            jsonl_write((_example_dict(example) for example in split), self.layout.split(name))
            self._splits[name] = split
        counts = {name: len(self._splits[name]) for name in SPLITS}
        self.layout.data_done.write_text(json.dumps(counts) + "\n", encoding="utf-8")
        self.log(
            f"data: {counts['train']} train, {counts['validation']} validation, "
            f"{counts['test']} test questions"
        )

    def teacher_stage(self) -> None:
        teacher = self.config.teacher
        store = self.layout.teacher
        store.mkdir(parents=True, exist_ok=True)
        if teacher.backend == "import":
            from distillation.importing import teacher_outputs_import

            if teacher.source is None:
                raise ConfigError("teacher.source is required when teacher.backend is 'import'")
            summary = teacher_outputs_import(teacher.source, store)
            for line in summary.lines():
                self.log(f"teacher: {line}")
            report: dict[str, Any] = {"imported": str(teacher.source), "written": summary.written}
        else:
            from distillation import generation

            examples = self.split("train") + self.split("validation")
            result = generation.teacher_outputs_generate(
                examples=examples, teacher=teacher, store_dir=store, progress=self.progress
            )
            for line in result.lines():
                self.log(f"teacher: {line}")
            report = {"generated": teacher.model}
        self.layout.teacher_done.write_text(json.dumps(report) + "\n", encoding="utf-8")

    def tokenizer(self) -> Any:
        from transformers import PreTrainedTokenizerFast

        if (self.layout.tokenizer / "tokenizer.json").is_file():
            return PreTrainedTokenizerFast.from_pretrained(str(self.layout.tokenizer))
        texts: list[str] = []
        for variant in ("original", "revised"):
            views, _ = view_texts(
                self.split("train"),
                self.teacher(),
                method="mt+cf",
                data_variant=variant,
                seed=self.config.seed,
            )
            for items in views.values():
                for item in items:
                    if item is not None:
                        texts.append(item[0])
                        texts.append(" ".join(part for part, _ in item[1]))
        tokenizer = tokenizer_train(texts, vocab_size=self.config.training.tiny_t5.vocab_size)
        tokenizer.save_pretrained(str(self.layout.tokenizer))
        return tokenizer

    def features(self, spec: StudentSpec, tokenizer: Any, split: str) -> FeatureSet:
        training = self.config.training
        return features_cached(
            self.layout.features,
            self.split(split),
            self.teacher(),
            tokenizer=tokenizer,
            method=spec.method,
            data_variant=spec.data_variant,
            seed=self.config.seed,
            max_input_length=training.max_input_length,
            max_target_length=training.max_target_length,
            counterfactual_answer_only=training.counterfactual_answer_only,
        )

    def student_new(self, spec: StudentSpec, seed: int) -> tuple[Any, Any]:
        if spec.model == TINY_T5:
            tokenizer = self.tokenizer()
            return tiny_t5_build(tokenizer, self.config.training.tiny_t5, seed=seed), tokenizer
        return pretrained_load(spec.model)

    def train_one(self, spec: StudentSpec, seed: int) -> None:
        training = self.config.training
        model, tokenizer = self.student_new(spec, seed)
        train_features = self.features(spec, tokenizer, "train")
        validation_features = self.features(spec, tokenizer, "validation")
        for view, count in train_features.skipped.items():
            if count:
                self.log(f"train: {spec.slug}: {count} examples have no {view} target (skipped)")
        validation = self.split("validation")[: training.validation_limit]
        device = self.accelerator.device

        def validate(model: Any) -> dict[str, float]:
            result = accuracy_evaluate(
                model,
                tokenizer,
                validation,
                method=spec.method,
                batch_size=training.eval_batch_size,
                answer_max_new_tokens=training.answer_max_new_tokens,
                explanation_max_new_tokens=training.explanation_max_new_tokens,
                max_input_length=training.max_input_length,
            )
            loss = validation_loss(
                model,
                validation_features,
                method=spec.method,
                training=training,
                tokenizer=tokenizer,
                device=device,
            )
            return {"accuracy": result.accuracy, "loss": loss}

        started = time.monotonic()
        result = student_train(
            model=model,
            tokenizer=tokenizer,
            features=train_features,
            method=spec.method,
            training=training,
            seed=seed,
            output_dir=self.layout.seed(spec, seed),
            validate=validate,
            accelerator=self.accelerator,
            progress=self.progress,
        )
        self.log(
            f"train: {spec.slug} seed {seed}: {result.steps} steps in "
            f"{time.monotonic() - started:.0f}s, loss {result.final_loss:.3f}, best validation "
            f"accuracy {result.best_validation_accuracy:.3f} at step {result.best_step}"
            + (f" (resumed at step {result.resumed_from})" if result.resumed_from else "")
        )

    def best_model(self, spec: StudentSpec, seed: int) -> tuple[Any, Any]:
        model, tokenizer = student_load(self.layout.seed(spec, seed) / BEST_DIR)
        return model.to(self.accelerator.device), tokenizer

    def evaluate_one(self, spec: StudentSpec, seed: int) -> None:
        training = self.config.training
        model, tokenizer = self.best_model(spec, seed)
        result = accuracy_evaluate(
            model,
            tokenizer,
            self.split("test"),
            method=spec.method,
            batch_size=training.eval_batch_size,
            answer_max_new_tokens=training.answer_max_new_tokens,
            explanation_max_new_tokens=training.explanation_max_new_tokens,
            max_input_length=training.max_input_length,
        )
        trained = json.loads((self.layout.seed(spec, seed) / TRAINING_FILE).read_text())
        metrics = {
            **_spec_columns(spec),
            "seed": seed,
            **result.as_dict(),
            "split": "test",
            "best_step": trained["best_step"],
            "validation_accuracy": trained["best_validation_accuracy"],
        }
        metrics_write(self.layout.seed(spec, seed) / "metrics.json", metrics)
        self.log(f"evaluate: {spec.slug} seed {seed}: test accuracy {result.accuracy:.3f}")

    def accuracy_tables(self) -> None:
        rows = []
        for spec in self.config.students:
            for seed in spec.seeds:
                path = self.layout.seed(spec, seed) / "metrics.json"
                if path.is_file():
                    rows.append(json.loads(path.read_text()))
        _csv_write(self.layout.accuracy_runs, RUN_COLUMNS, rows)
        table = accuracy_table(rows)
        _csv_write(self.layout.accuracy, ACCURACY_COLUMNS, table)
        self.summary.accuracy = table
        self.summary.notes.extend(accuracy_anova_write(rows, self.layout.accuracy_anova))

    def best_seed(self, spec: StudentSpec) -> int:
        """The seed whose model scored best on validation (the lowest seed on ties)."""

        def score(seed: int) -> tuple[float, float, int]:
            trained = json.loads((self.layout.seed(spec, seed) / TRAINING_FILE).read_text())
            return (trained["best_validation_accuracy"], -trained["best_validation_loss"], -seed)

        return max(spec.seeds, key=score)

    def explain_one(self, spec: StudentSpec) -> None:
        training = self.config.training
        seed = self.best_seed(spec)
        model, tokenizer = self.best_model(spec, seed)
        batch = explanations_generate(
            model,
            tokenizer,
            self.split("test"),
            method=spec.method,
            condition=spec.condition,
            student=spec.size,
            data_variant=spec.data_variant,
            run=f"{self.config.name}/{spec.slug}/seed-{seed}",
            batch_size=training.eval_batch_size,
            answer_max_new_tokens=training.answer_max_new_tokens,
            explanation_max_new_tokens=training.explanation_max_new_tokens,
            max_input_length=training.max_input_length,
        )
        jsonl_write(batch.records, self.layout.student_explanations(spec))
        self.log(
            f"explain: {spec.slug} (seed {seed}): {len(batch.records)} explanations"
            + (f", {batch.empty} empty ones left out" if batch.empty else "")
        )

    def explanations_combine(self) -> None:
        records = []
        for spec in self.config.students:
            if spec.in_study:
                records.extend(jsonl_read(self.layout.student_explanations(spec)))
        self.summary.explanations = jsonl_write(records, self.layout.explanations)

    def study(self) -> None:
        if self.study_create is None:
            self.summary.notes.append("study stage skipped: no study service was given")
            return
        if not self.layout.explanations.is_file():
            raise DataError(f"{self.layout.explanations} is missing; run the explain stage first")
        slug = self.study_create(self.layout.explanations, self.config.study)
        self.summary.study = slug
        self.layout.study_done.write_text(
            json.dumps(_study_marker(self.config, self.layout)) + "\n"
        )
        self.log(f"study: {slug!r} created or updated from {self.layout.explanations}")

    # -- driver -----------------------------------------------------------------------------
    def run(self, stages: Sequence[str]) -> RunSummary:
        self.config_record()
        main = self.accelerator.is_main_process
        for stage in stages:
            ran = self._stage(stage, main)
            (self.summary.stages_run if ran else self.summary.stages_skipped).append(stage)
            self.accelerator.wait_for_everyone()
        return self.summary

    def _stage(self, stage: str, main: bool) -> bool:
        """Run ``stage``'s missing work; True when anything ran."""
        layout, students = self.layout, self.config.students
        if stage == "data":
            if layout.data_done.is_file():
                return False
            if main:
                self.data()
            return True
        if stage == "teacher":
            if layout.teacher_done.is_file():
                return False
            if main:
                self.teacher_stage()
            return True
        if stage == "train":
            runs_left = [
                (s, seed) for s in students for seed in s.seeds if not _trained(layout, s, seed)
            ]
            if runs_left and main and any(s.model == TINY_T5 for s, _ in runs_left):
                self.tokenizer()
            self.accelerator.wait_for_everyone()
            for spec, seed in runs_left:  # every process trains: each takes its share of a batch
                self.train_one(spec, seed)
            return bool(runs_left)
        if not main:
            return False
        if stage == "evaluate":
            runs_left = [
                (s, seed) for s in students for seed in s.seeds if not _evaluated(layout, s, seed)
            ]
            for spec, seed in runs_left:
                self.evaluate_one(spec, seed)
            if runs_left or not layout.accuracy.is_file():
                self.accuracy_tables()
                return True
            return False
        if stage == "explain":
            pending = [s for s in students if not layout.student_explanations(s).is_file()]
            for spec in pending:
                self.explain_one(spec)
            if pending or not layout.explanations.is_file():
                self.explanations_combine()
                return True
            return False
        if _study_done(self.config, layout):
            self.summary.study = self.config.study.slug
            return False
        self.study()
        return True


def pipeline_run(
    config: RunConfig,
    *,
    stages: Sequence[str] = STAGES,
    log: Log = print,
    progress: bool = False,
    study_create: StudyCreate | None = None,
    command: Sequence[str] | None = None,
) -> RunSummary:
    """Run the requested stages of ``config`` in pipeline order, skipping completed work."""
    ordered = stages_check(stages)
    run = _Run(
        config,
        log=log,
        progress=progress,
        study_create=study_create,
        command=command if command is not None else sys.argv,
    )
    return run.run(ordered)


# -- tables ------------------------------------------------------------------------------------
def _spec_columns(spec: StudentSpec) -> dict[str, str]:
    return {
        "model": spec.model,
        "size": spec.size,
        "method": spec.method,
        "data_variant": spec.data_variant,
    }


def _example_dict(example: Example) -> dict[str, Any]:
    return {
        "id": example.id,
        "question": example.question,
        "choices": list(example.choices),
        "answer": example.answer,
    }


def accuracy_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation of test accuracy over seeds, per student."""
    groups: dict[tuple[str, str, str, str], list[float]] = {}
    for row in rows:
        key = (row["model"], row["size"], row["method"], row["data_variant"])
        groups.setdefault(key, []).append(float(row["accuracy"]))
    table = []
    for (model, size, method, variant), values in groups.items():
        table.append(
            {
                "model": model,
                "size": size,
                "method": method,
                "data_variant": variant,
                "seeds": len(values),
                "accuracy_mean": round(statistics.fmean(values), 6),
                # One seed has no spread to report; an empty cell says so honestly.
                "accuracy_sd": round(statistics.stdev(values), 6) if len(values) > 1 else "",
            }
        )
    return table


def accuracy_anova_write(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """The method × size ANOVA with Tukey HSD per data variant, where the design allows it.

    Returns notes on what was written or why it was not.
    """
    try:
        from analysis.accuracy import accuracy_anova
        from analysis.errors import AnalysisError
    except ImportError:
        return ["accuracy ANOVA skipped: the analysis package is not installed"]
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(RUN_COLUMNS))
    notes = []
    for variant, group in frame.groupby("data_variant", sort=True):
        if group["method"].nunique() < 2 or group["size"].nunique() < 2:
            notes.append(
                f"accuracy ANOVA ({variant}): needs at least two methods and two sizes; skipped"
            )
            continue
        try:
            result = accuracy_anova(group)
        except AnalysisError as error:
            notes.append(f"accuracy ANOVA ({variant}): {error}")
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        result.anova.to_csv(out_dir / f"anova_{variant}.csv", index=False)
        result.tukey.to_csv(out_dir / f"tukey_{variant}.csv", index=False)
        notes.append(f"accuracy ANOVA ({variant}) written to {out_dir}")
        notes.extend(f"accuracy ANOVA ({variant}): {note}" for note in result.notes)
    return notes


def _csv_write(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    return asdict(summary)
