"""The run configuration (TOML) of ``run_distillation``, parsed and checked in one place.

A run file has the tables ``[run]``, ``[data]``, ``[teacher]``, ``[training]`` (with an
optional ``[training.tiny_t5]``), ``[[students]]``, ``[study]`` and ``[analysis]``. ``[data]``
and ``[teacher]`` are parsed by :mod:`distillation.teacher_config`; this module parses the rest
and composes them. Every wrong key or value raises :class:`ConfigError` naming the key and what
is accepted. Training settings left out take the paper's values (``distillation.recipe``).

Example::

    [run]
    name = "demo"
    seed = 0

    [training]
    steps = 300
    batch_size = 64               # examples per optimiser step
    per_device_batch_size = 16    # what one device takes per pass; the rest is accumulation

    [[students]]
    model = "tiny-t5"
    method = "mt+cf"
    data_variant = "revised"
    seeds = [0, 1]
    study_seed = 0                # whose explanations go into the study

    [analysis]
    plan = "paper"                # or "standard", or the path of a plan file
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from distillation.errors import ConfigError
from distillation.objectives import (
    DATA_VARIANTS,
    FACTUAL_EXPLANATIONS,
    METHODS,
    ObjectiveWeights,
)
from distillation.students import TINY_T5, TinyT5Config
from distillation.teacher_config import (
    DataConfig,
    TeacherConfig,
    data_config_from_toml,
    teacher_config_from_toml,
)
from distillation.toml_table import TomlTable

TABLES = ("run", "data", "teacher", "training", "students", "study", "analysis")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
SELECTIONS = ("last", "best_validation")
# The plans the analysis package ships; a run may also name a plan file.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# The study importer reads a condition as METHOD:variant.
_CONDITION = re.compile(r"[A-Za-z0-9+_.\-]+:[A-Za-z0-9+_.\-]+")


@dataclass(frozen=True)
class BatchSplit:
    """How the examples of one optimiser step are spread over devices and accumulation."""

    batch_size: int  # examples per optimiser step (the effective batch)
    per_device: int  # examples per forward/backward pass on one device
    accumulation: int  # passes per device before each optimiser step
    processes: int  # devices (accelerate processes)

    def line(self) -> str:
        return (
            f"{self.batch_size} examples per optimiser step = {self.per_device} per device "
            f"× {self.accumulation} accumulation step(s) × {self.processes} process(es)"
        )


@dataclass(frozen=True)
class TrainingConfig:
    """How every student of the run is trained and evaluated (paper values as defaults)."""

    steps: int = 5000  # optimizer steps per student and seed
    batch_size: int = 64  # examples per optimiser step, over all devices and accumulation steps
    # Examples per forward/backward pass on one device (each brings all its views); the
    # accumulation steps follow. None: the whole batch at once, shared by the devices.
    per_device_batch_size: int | None = None
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0  # then the learning rate falls linearly to 0 at the last step
    max_grad_norm: float = 1.0  # 0 turns clipping off
    mixed_precision: str = "auto"  # "auto": bf16 on GPUs that have it, else fp16; fp32 on CPU
    eval_every: int = 500  # validation every N steps and at the end
    checkpoint_every: int = 500  # resumable checkpoint every N steps
    log_every: int = 10  # training loss to metrics.jsonl every N steps
    max_input_length: int = 300  # tokens, end-of-sequence included
    max_target_length: int = 300
    alpha: float = 0.5  # MT: alpha·L_predict + (1 − alpha)·L_explain
    beta: float = 0.5  # CF: beta·L_factual + (1 − beta)·L_counterfactual
    gamma: float = 0.5  # MT+CF: gamma·L_MT + (1 − gamma)·L_CF
    factual_explanation: str = "counterfactual_prompt"  # what MT+CF's factual view learns
    counterfactual_answer_only: bool = False  # CF loss on the answer tokens only
    selection: str = "last"  # weights evaluated: after the last step, or best on validation
    eval_batch_size: int = 32
    answer_max_new_tokens: int = 16  # generation cap when only an answer is expected
    explanation_max_new_tokens: int = 512  # generation cap for explanations
    # A run fails when more than this share of a generation's outputs hit their cap.
    max_truncated_fraction: float = 0.01
    validation_limit: int | None = None  # validate on at most N validation questions
    tiny_t5: TinyT5Config = field(default_factory=TinyT5Config)

    @property
    def objective(self) -> ObjectiveWeights:
        return ObjectiveWeights(alpha=self.alpha, beta=self.beta, gamma=self.gamma)

    def batch_split(self, processes: int = 1) -> BatchSplit:
        """Per-device batch and accumulation steps that give ``batch_size`` on ``processes``."""
        per_device = self.per_device_batch_size
        if per_device is None:
            if self.batch_size % processes:
                raise ConfigError(
                    f"training.batch_size = {self.batch_size} cannot be shared equally by "
                    f"{processes} processes; set a batch_size that {processes} divides, or "
                    "training.per_device_batch_size"
                )
            per_device = self.batch_size // processes
        pass_size = per_device * processes
        if self.batch_size % pass_size:
            accepted = [
                n for n in range(1, self.batch_size + 1) if self.batch_size % (n * processes) == 0
            ]
            raise ConfigError(
                f"training.batch_size = {self.batch_size} is not a whole number of passes of "
                f"training.per_device_batch_size = {per_device} on {processes} process(es); "
                f"accepted per_device_batch_size values here: "
                f"{', '.join(map(str, accepted)) or 'none (change batch_size)'}"
            )
        return BatchSplit(
            batch_size=self.batch_size,
            per_device=per_device,
            accumulation=self.batch_size // pass_size,
            processes=processes,
        )


@dataclass(frozen=True)
class StudentSpec:
    """One student to train: a model, an objective, the explanations it learns from, seeds."""

    model: str  # "tiny-t5", a Hugging Face hub name, or a local folder
    method: str  # "mt", "cf" or "mt+cf"
    data_variant: str  # "original" or "revised"
    seeds: tuple[int, ...] = (0,)
    size: str = ""  # label for the accuracy table and ANOVA; default: the model's name
    condition: str = ""  # study condition name; default like "MT+CF:revised"
    in_study: bool = True  # its explanations go into the study's item pool
    # The seed whose model writes the explanations, named before training (default: the first
    # seed listed), never the best seed picked afterwards.
    study_seed: int = 0

    @property
    def slug(self) -> str:
        """A folder name unique within the run."""
        model = re.sub(r"[^A-Za-z0-9._-]+", "-", self.size or self.model).strip("-")
        return f"{model}-{self.method.replace('+', '_')}-{self.data_variant}"


@dataclass(frozen=True)
class StudyConfig:
    """The human-evaluation study created from the students' explanations."""

    slug: str = "demo"
    title: str | None = None
    completion_code: str | None = None
    per_condition: int | None = None
    live: bool = True
    # The analysis plan registered on the study (a shipped name or a plan file); None: none.
    plan: str | None = None


@dataclass(frozen=True)
class AnalysisConfig:
    """The analysis plan the run's accuracy analysis follows: a shipped name or a file path."""

    plan: str = "standard"


@dataclass(frozen=True)
class RunConfig:
    name: str
    output_dir: Path
    seed: int
    data: DataConfig
    teacher: TeacherConfig
    training: TrainingConfig
    students: tuple[StudentSpec, ...]
    study: StudyConfig
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    source: dict[str, Any] = field(default_factory=dict, compare=False)


def run_config_load(
    path: Path | str, *, base_dir: Path | None = None, runs_dir: Path | None = None
) -> RunConfig:
    """Read and check a run TOML file.

    Relative paths resolve against ``base_dir`` (default: the working directory); without
    ``run.output_dir`` the run goes to ``runs_dir/<name>`` (default: ``base_dir/runs``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the run configuration {path}: {error.strerror}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    base = base_dir if base_dir is not None else Path.cwd()
    return run_config_from_dict(table, base_dir=base, runs_dir=runs_dir)


def run_config_from_dict(
    table: Mapping[str, Any], *, base_dir: Path, runs_dir: Path | None = None
) -> RunConfig:
    for key in table:
        if key not in TABLES:
            raise ConfigError(f"unknown table [{key}]; accepted tables: {', '.join(TABLES)}")
    for key in ("data", "teacher"):
        if key not in table:
            raise ConfigError(f"the run configuration needs a [{key}] table")
    run = TomlTable(table.get("run", {}), "run")
    run.only("name", "output_dir", "seed")
    name = run.string("name", "")
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"run.name must be 1-100 letters, digits, '.', '_' or '-' (a folder name), got {name!r}"
        )
    output = run.string("output_dir", "")
    runs = runs_dir if runs_dir is not None else base_dir / "runs"
    output_dir = _resolve(base_dir, Path(output)) if output else runs / name
    data = data_config_from_toml(table)
    data = replace(
        data,
        train=_resolve(base_dir, data.train),
        test=_resolve(base_dir, data.test) if data.test else None,
    )
    teacher = teacher_config_from_toml(table)
    if teacher.source is not None:
        teacher = replace(teacher, source=_resolve(base_dir, teacher.source))
    if teacher.prompts_dir is not None:
        teacher = replace(teacher, prompts_dir=_resolve(base_dir, teacher.prompts_dir))
    return RunConfig(
        name=name,
        output_dir=output_dir,
        seed=run.integer("seed", 0),
        data=data,
        teacher=teacher,
        training=training_config_from_toml(table.get("training", {})),
        students=students_from_toml(table.get("students")),
        study=study_config_from_toml(table.get("study", {}), base_dir=base_dir),
        analysis=analysis_config_from_toml(table.get("analysis", {}), base_dir=base_dir),
        source=dict(table),
    )


def training_config_from_toml(section: Any) -> TrainingConfig:
    t = TomlTable(section, "training")
    _legacy_batch_check(t)
    accepted = [item.name for item in fields(TrainingConfig)]
    t.only(*accepted)
    defaults = TrainingConfig()
    tiny = TomlTable(t.section.get("tiny_t5", {}), "training.tiny_t5")
    tiny_accepted = [item.name for item in fields(TinyT5Config)]
    tiny.only(*tiny_accepted)
    tiny_defaults = TinyT5Config()
    tiny_settings: dict[str, Any] = {
        name: (
            tiny.number(name, getattr(tiny_defaults, name))
            if name == "dropout_rate"
            else tiny.integer(name, getattr(tiny_defaults, name), minimum=1)
        )
        for name in tiny_accepted
    }
    tiny_config = TinyT5Config(**tiny_settings)
    config = TrainingConfig(
        steps=t.integer("steps", defaults.steps, minimum=1),
        batch_size=t.integer("batch_size", defaults.batch_size, minimum=1),
        per_device_batch_size=t.optional_integer("per_device_batch_size", minimum=1),
        learning_rate=t.number("learning_rate", defaults.learning_rate, positive=True),
        weight_decay=t.number("weight_decay", defaults.weight_decay),
        warmup_steps=t.integer("warmup_steps", defaults.warmup_steps, minimum=0),
        max_grad_norm=t.number("max_grad_norm", defaults.max_grad_norm),
        mixed_precision=t.choice("mixed_precision", MIXED_PRECISION, defaults.mixed_precision),
        eval_every=t.integer("eval_every", defaults.eval_every, minimum=1),
        checkpoint_every=t.integer("checkpoint_every", defaults.checkpoint_every, minimum=1),
        log_every=t.integer("log_every", defaults.log_every, minimum=1),
        max_input_length=t.integer("max_input_length", defaults.max_input_length, minimum=8),
        max_target_length=t.integer("max_target_length", defaults.max_target_length, minimum=8),
        alpha=t.number("alpha", defaults.alpha),
        beta=t.number("beta", defaults.beta),
        gamma=t.number("gamma", defaults.gamma),
        factual_explanation=t.choice(
            "factual_explanation", FACTUAL_EXPLANATIONS, defaults.factual_explanation
        ),
        counterfactual_answer_only=t.boolean(
            "counterfactual_answer_only", defaults.counterfactual_answer_only
        ),
        selection=t.choice("selection", SELECTIONS, defaults.selection),
        eval_batch_size=t.integer("eval_batch_size", defaults.eval_batch_size, minimum=1),
        answer_max_new_tokens=t.integer(
            "answer_max_new_tokens", defaults.answer_max_new_tokens, minimum=1
        ),
        explanation_max_new_tokens=t.integer(
            "explanation_max_new_tokens", defaults.explanation_max_new_tokens, minimum=1
        ),
        max_truncated_fraction=t.fraction(
            "max_truncated_fraction", defaults.max_truncated_fraction
        ),
        validation_limit=t.optional_integer("validation_limit", minimum=1),
        tiny_t5=tiny_config,
    )
    config.objective  # noqa: B018 - checks alpha, beta and gamma now, not at the first step
    config.batch_split()  # one process at least must be able to run the batch
    return config


def _legacy_batch_check(t: TomlTable) -> None:
    """Configurations of the former batch keys get told how to say the same thing now."""
    if "gradient_accumulation_steps" not in t.section:
        return
    accumulation = t.integer("gradient_accumulation_steps", 1, minimum=1)
    per_device = t.integer("batch_size", 8, minimum=1)
    raise ConfigError(
        "training.gradient_accumulation_steps is no longer set: training.batch_size now counts "
        "the examples of one optimiser step over all devices and accumulation steps, and "
        "training.per_device_batch_size what one device takes per pass (the accumulation "
        f"follows); for one device, batch_size = {per_device} with gradient_accumulation_steps "
        f"= {accumulation} is batch_size = {per_device * accumulation} with "
        f"per_device_batch_size = {per_device}"
    )


def students_from_toml(value: Any) -> tuple[StudentSpec, ...]:
    if value is None:
        raise ConfigError("the run configuration needs at least one [[students]] entry")
    if not isinstance(value, list) or not value:
        raise ConfigError("[[students]] must be a non-empty array of tables")
    accepted = [item.name for item in fields(StudentSpec)]
    students = []
    for number, item in enumerate(value, start=1):
        s = TomlTable(item, f"students[{number}]")
        s.only(*accepted)
        model = s.string("model", "")
        if not model:
            raise ConfigError(
                f"students[{number}].model is required: {TINY_T5!r}, a Hugging Face model "
                "name or a local folder"
            )
        method = s.choice("method", METHODS, None)
        variant = s.choice("data_variant", DATA_VARIANTS, None)
        seeds = s.integers("seeds", [0])
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"students[{number}].seeds lists a seed twice: {seeds}")
        if any(not 0 <= seed < 2**32 for seed in seeds):
            # numpy and torch accept only this range; found here, not at the train stage.
            raise ConfigError(
                f"students[{number}].seeds must be integers from 0 to 2**32 - 1, got {seeds}"
            )
        study_seed = s.integer("study_seed", seeds[0])
        if study_seed not in seeds:
            raise ConfigError(
                f"students[{number}].study_seed = {study_seed} is not one of its seeds; "
                f"accepted values: {', '.join(map(str, seeds))}"
            )
        size = s.string("size", "") or model.rstrip("/").rsplit("/", 1)[-1]
        condition = s.string("condition", "") or f"{method.upper()}:{variant}"
        if not _CONDITION.fullmatch(condition):
            raise ConfigError(
                f"students[{number}].condition must look like METHOD:variant (e.g. "
                f"'MT+CF:revised'), got {condition!r}"
            )
        students.append(
            StudentSpec(
                model=model,
                method=method,
                data_variant=variant,
                seeds=tuple(seeds),
                size=size,
                condition=condition,
                in_study=s.boolean("in_study", True),
                study_seed=study_seed,
            )
        )
    _check_unique(students)
    return tuple(students)


def _check_unique(students: list[StudentSpec]) -> None:
    slugs: dict[str, int] = {}
    conditions: dict[str, int] = {}
    for number, student in enumerate(students, start=1):
        if student.slug in slugs:
            raise ConfigError(
                f"students[{number}] repeats students[{slugs[student.slug]}] (same model, method "
                "and data_variant); list more seeds in one entry, or set a different size label"
            )
        slugs[student.slug] = number
        if student.in_study:
            if student.condition in conditions:
                raise ConfigError(
                    f"students[{number}] and students[{conditions[student.condition]}] both "
                    f"enter the study as condition {student.condition!r}; give one a "
                    "'condition' name of its own or set in_study = false"
                )
            conditions[student.condition] = number


def study_config_from_toml(section: Any, *, base_dir: Path) -> StudyConfig:
    s = TomlTable(section, "study")
    s.only("slug", "title", "completion_code", "per_condition", "live", "plan")
    slug = s.string("slug", "demo")
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", slug):
        raise ConfigError(f"study.slug must be letters, digits, '-' or '_', got {slug!r}")
    return StudyConfig(
        slug=slug,
        title=s.string("title", "") or None,
        completion_code=s.string("completion_code", "") or None,
        per_condition=s.optional_integer("per_condition", minimum=1),
        live=s.boolean("live", True),
        plan=_plan_resolve(s.string("plan", ""), "study.plan", base_dir) or None,
    )


def analysis_config_from_toml(section: Any, *, base_dir: Path) -> AnalysisConfig:
    """``[analysis] plan``: a shipped plan's name or a plan file, checked now, not after training."""
    a = TomlTable(section, "analysis")
    a.only("plan")
    return AnalysisConfig(
        plan=_plan_resolve(a.string("plan", AnalysisConfig.plan), "analysis.plan", base_dir)
    )


def _plan_resolve(plan: str, key: str, base_dir: Path) -> str:
    """A shipped plan's name as it is, a plan file as its checked path; "" stays ""."""
    names = _analysis_plan_names()
    if not plan or plan in names:
        return plan
    path = _resolve(base_dir, Path(plan))
    if path.suffix != ".toml" or not path.is_file():
        raise ConfigError(
            f"{key} = {plan!r} is neither a shipped plan nor a plan file; accepted "
            f"values: {', '.join(names)}, or the path of an existing .toml plan file"
        )
    _analysis_plan_check(path, key)
    return str(path)


def _analysis_plan_names() -> tuple[str, ...]:
    from analysis.plan import PLAN_NAMES

    return tuple(PLAN_NAMES)


def _analysis_plan_check(path: Path, key: str) -> None:
    from analysis.errors import AnalysisError
    from analysis.plan import plan_load

    try:
        plan_load(path)
    except AnalysisError as error:
        raise ConfigError(f"{key} {path}: {error}") from None


def _resolve(base_dir: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base_dir / path)
