"""The distillation run, stage by stage: data → teacher → train → evaluate → explain → study.

Everything a stage produces lives in the run folder, and a stage whose outputs are all there
is skipped, so rerunning the same command resumes an interrupted run (training itself resumes
from its last checkpoint). ``pipeline_plan`` says what would run without running it.

The run folder's layout, the completion checks and ``pipeline_plan`` live in
:mod:`distillation.run_folder`. The study stage needs the database, so the caller passes it in
as ``study_create``.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distillation.config import RunConfig, StudentSpec, StudyConfig
from distillation.errors import ConfigError, DataError
from distillation.evaluation import (
    GenerationSettings,
    accuracy_evaluate,
    metrics_write,
    truncation_check,
)
from distillation.explain import explanations_generate, jsonl_read, jsonl_write
from distillation.features import FeatureSet, features_cached, view_texts
from distillation.run_folder import (
    RERUNNABLE_KEYS,
    STAGES,
    PlanStep,
    RunLayout,
    config_identity,
    evaluated,
    explained,
    generation_settings,
    pipeline_plan,
    stages_check,
    study_done,
    study_marker,
    trained,
)
from distillation.students import (
    TINY_T5,
    pretrained_load,
    student_load,
    tiny_t5_build,
    tokenizer_train,
)
from distillation.training import (
    TRAINING_FILE,
    accelerator_create,
    selected_dir,
    student_train,
    validation_loss,
)
from distillation.types import Example, TeacherExplanations

__all__ = [
    "STAGES",
    "PlanStep",
    "RunLayout",
    "RunSummary",
    "accuracy_anova_write",
    "accuracy_table",
    "pipeline_plan",
    "pipeline_run",
    "stages_check",
    "summary_dict",
]

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
    # Wall-clock seconds of each stage that ran, in the order run.
    stage_seconds: dict[str, float] = field(default_factory=dict)


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
        """Keep the configuration beside the outputs; refuse to mix two configurations.

        Only the ``RERUNNABLE_KEYS`` may differ from the recorded configuration; the record
        then takes the new values.
        """
        record = {"config": json.loads(json.dumps(self.config.source, default=str))}
        if self.layout.config.is_file():
            previous = json.loads(self.layout.config.read_text(encoding="utf-8"))
            if previous.get("config") == record["config"]:
                return
            if config_identity(previous.get("config")) != config_identity(record["config"]):
                raise ConfigError(
                    f"{self.layout.root} holds a run made with a different configuration; "
                    "give this configuration another [run] name or output_dir, or delete "
                    "that folder to start over (only training."
                    f"{', training.'.join(RERUNNABLE_KEYS)} may change within a run)"
                )
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
                factual_explanation=self.config.training.factual_explanation,
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
            factual_explanation=training.factual_explanation,
        )

    def gold_check(self, specs: Sequence[StudentSpec]) -> None:
        """MT+CF on the gold-answer explanations needs a store that kept them; say so early."""
        needed = self.config.training.factual_explanation == "counterfactual_prompt" and any(
            spec.method == "mt+cf" for spec in specs
        )
        if not needed or any(record.gold for record in self.teacher().values()):
            return
        raise DataError(
            f"the teacher outputs in {self.layout.teacher} hold no explanation of the gold "
            "answer written with the counterfactual prompt (step 'gold'), which MT+CF students "
            "learn with training.factual_explanation = 'counterfactual_prompt' (accepted "
            "values: counterfactual_prompt, variant); a store imported before they were kept "
            f"lacks them: delete {self.layout.teacher_done} and run the teacher stage again "
            "(it adds only what the store lacks), or train with factual_explanation = 'variant'"
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
                generation=GenerationSettings.from_training(training),
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
            progress=self.progress,
            log=self.log,
            label=f"{spec.slug} seed {seed}",
        )
        self.log(
            f"train: {spec.slug} seed {seed}: {result.steps} steps in "
            f"{time.monotonic() - started:.0f}s, loss {result.final_loss:.3f}, best validation "
            f"accuracy {result.best_validation_accuracy:.3f} at step {result.best_step}; "
            f"kept the weights of step {result.selected_step} ({result.selection})"
            + (f" (resumed at step {result.resumed_from})" if result.resumed_from else "")
        )

    def selected_model(self, spec: StudentSpec, seed: int) -> tuple[Any, Any]:
        """The weights ``training.selection`` kept for this student and seed."""
        model, tokenizer = student_load(selected_dir(self.layout.seed(spec, seed)))
        return model.to(self.accelerator.device), tokenizer

    def evaluate_one(self, spec: StudentSpec, seed: int) -> None:
        training = self.config.training
        model, tokenizer = self.selected_model(spec, seed)
        result = accuracy_evaluate(
            model,
            tokenizer,
            self.split("test"),
            method=spec.method,
            generation=GenerationSettings.from_training(training),
        )
        truncation_check(
            [result.truncation],
            limit=training.max_truncated_fraction,
            what=f"evaluate: {spec.slug} seed {seed}",
        )
        trained = json.loads((self.layout.seed(spec, seed) / TRAINING_FILE).read_text())
        metrics = {
            **_spec_columns(spec),
            "seed": seed,
            **result.as_dict(),
            "split": "test",
            "selection": trained.get("selection", "best_validation"),
            "selected_step": trained.get("selected_step", trained["best_step"]),
            "best_step": trained["best_step"],
            "validation_accuracy": trained["best_validation_accuracy"],
            "generation": generation_settings(self.config),
        }
        metrics_write(self.layout.seed(spec, seed) / "metrics.json", metrics)
        cut = result.truncation
        self.log(
            f"evaluate: {spec.slug} seed {seed}: test accuracy {result.accuracy:.3f}, "
            f"{cut.truncated} of {cut.total} outputs hit {cut.key} = {cut.cap}"
        )

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
        self.summary.notes.extend(
            accuracy_anova_write(rows, self.layout.accuracy_anova, plan=self.config.analysis.plan)
        )

    def explain_one(self, spec: StudentSpec) -> None:
        training = self.config.training
        # Named in the configuration before training, never the best seed found afterwards.
        seed = spec.study_seed
        model, tokenizer = self.selected_model(spec, seed)
        batch = explanations_generate(
            model,
            tokenizer,
            self.split("test"),
            method=spec.method,
            condition=spec.condition,
            student=spec.size,
            data_variant=spec.data_variant,
            run=f"{self.config.name}/{spec.slug}/seed-{seed}",
            generation=GenerationSettings.from_training(training),
        )
        truncation_check(
            batch.truncation, limit=training.max_truncated_fraction, what=f"explain: {spec.slug}"
        )
        jsonl_write(batch.records, self.layout.student_explanations(spec))
        record = {
            "seed": seed,
            "explanations": len(batch.records),
            "empty": batch.empty,
            "truncation": [count.as_dict() for count in batch.truncation],
            "generation": generation_settings(self.config),
        }
        metrics_write(self.layout.student_explain_record(spec), record)
        cut = ", ".join(f"{c.truncated} of {c.total} hit {c.key}" for c in batch.truncation)
        self.log(
            f"explain: {spec.slug} (seed {seed}): {len(batch.records)} explanations"
            + (f", {batch.empty} empty ones left out" if batch.empty else "")
            + f"; {cut}"
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
        self.layout.study_done.write_text(json.dumps(study_marker(self.config, self.layout)) + "\n")
        self.log(f"study: {slug!r} created or updated from {self.layout.explanations}")

    # -- driver -----------------------------------------------------------------------------
    def run(self, stages: Sequence[str]) -> RunSummary:
        self.config_record()
        main = self.accelerator.is_main_process
        for stage in stages:
            started = time.perf_counter()
            ran = self._stage(stage, main)
            (self.summary.stages_run if ran else self.summary.stages_skipped).append(stage)
            if ran:
                self.summary.stage_seconds[stage] = round(time.perf_counter() - started, 3)
            self.accelerator.wait_for_everyone()
        return self.summary

    @contextmanager
    def threads(self, spec: StudentSpec) -> Iterator[None]:
        """At most two torch threads for a tiny student on a CPU.

        A tiny model gains little from more: torch's default of one thread a core spins
        against other processes on a many-core or shared machine. Two threads beat one on a
        quiet two-core machine (the demo's run: 91 s against 124 s).
        """
        if spec.model != TINY_T5 or self.accelerator.device.type != "cpu":
            with nullcontext():
                yield
            return
        import torch

        from distillation.teachers.tiny import torch_threads

        with torch_threads(min(2, torch.get_num_threads())):
            yield

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
                (s, seed) for s in students for seed in s.seeds if not trained(layout, s, seed)
            ]
            if runs_left:
                self.gold_check([spec for spec, _ in runs_left])
                split = self.config.training.batch_split(self.accelerator.num_processes)
                self.log(f"train: batch: {split.line()}")
            if runs_left and main and any(s.model == TINY_T5 for s, _ in runs_left):
                self.tokenizer()
            self.accelerator.wait_for_everyone()
            for spec, seed in runs_left:  # every process trains: each takes its share of a batch
                with self.threads(spec):
                    self.train_one(spec, seed)
            return bool(runs_left)
        if not main:
            return False
        if stage == "evaluate":
            runs_left = [
                (s, seed)
                for s in students
                for seed in s.seeds
                if not evaluated(self.config, layout, s, seed)
            ]
            for spec, seed in runs_left:
                with self.threads(spec):
                    self.evaluate_one(spec, seed)
            if runs_left or not layout.accuracy.is_file():
                self.accuracy_tables()
                return True
            return False
        if stage == "explain":
            pending = [s for s in students if not explained(self.config, layout, s)]
            for spec in pending:
                with self.threads(spec):
                    self.explain_one(spec)
            if pending or not layout.explanations.is_file():
                self.explanations_combine()
                return True
            return False
        if study_done(self.config, layout):
            self.summary.study = self.config.study.slug
            return False
        self.study()
        return True


@contextmanager
def library_progress_bars_off() -> Iterator[None]:
    """Silence transformers' own bars (weight loading, shard writing) for the block.

    A run loads and saves students many times; those bars say nothing a user can act on and
    bury the run's own progress. The previous setting is restored afterwards.

    Examples
    --------
    >>> from transformers.utils import logging as hf_logging
    >>> with library_progress_bars_off():
    ...     hf_logging.is_progress_bar_enabled()
    False
    """
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


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
    with library_progress_bars_off():
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


def accuracy_anova_write(
    rows: Sequence[dict[str, Any]], out_dir: Path, plan: str | Path = "standard"
) -> list[str]:
    """The accuracy analysis of an analysis plan (the run config's ``[analysis] plan``).

    It is the code path of ``python -m analysis --accuracy``: the plan's ``[accuracy]``
    settings choose the runs, the scale and the outlier trim, then a type II method × size
    ANOVA and Tukey HSD within each size (``analysis.accuracy.accuracy_analyse``). Writes
    ``anova.csv``, ``tukey.csv``, ``runs.csv`` (the runs as analysed) and ``summary.json``
    (summary.json's ``accuracy`` block with the plan's name and hash) to ``out_dir``.

    Returns notes on what was written or why it was not (a design the ANOVA cannot use,
    such as a single student size, is a note, not an error).

    Raises
    ------
    ConfigError
        The plan is neither a shipped plan nor a readable, valid plan file.
    """
    try:
        from analysis.accuracy import accuracy_analyse, accuracy_summary
        from analysis.errors import AnalysisError
        from analysis.plan import plan_load
        from analysis.summary import clean
    except ImportError:
        return ["accuracy ANOVA skipped: the analysis package is not installed"]
    import pandas as pd

    try:
        loaded = plan_load(plan)
    except AnalysisError as error:
        raise ConfigError(f"[analysis] plan: {error}") from None
    label = f"accuracy ANOVA (plan {loaded.name})"
    frame = pd.DataFrame(list(rows), columns=list(RUN_COLUMNS))
    try:
        result = accuracy_analyse(frame, loaded.accuracy)
    except AnalysisError as error:
        return [f"{label}: {error}; skipped"]
    out_dir.mkdir(parents=True, exist_ok=True)
    result.anova.to_csv(out_dir / "anova.csv", index=False)
    result.tukey.to_csv(out_dir / "tukey.csv", index=False)
    result.runs.to_csv(out_dir / "runs.csv", index=False)
    summary = {"plan": {"name": loaded.name, "sha256": loaded.sha256}, **accuracy_summary(result)}
    (out_dir / "summary.json").write_text(
        json.dumps(clean(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return [f"{label} written to {out_dir}", *(f"{label}: {note}" for note in result.notes)]


def _csv_write(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    return asdict(summary)
