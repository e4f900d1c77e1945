"""The run configuration (TOML) of ``run_distillation``, parsed and checked in one place.

A run file has the tables ``[run]``, ``[data]``, ``[teacher]``, ``[training]`` (with an
optional ``[training.tiny_t5]``), ``[[students]]`` and ``[study]``. ``[data]`` and ``[teacher]``
are parsed by :mod:`distillation.teacher_config`; this module parses the rest and composes
them. Every wrong key or value raises :class:`ConfigError` naming the key and what is accepted.

Example::

    [run]
    name = "demo"
    seed = 0

    [training]
    steps = 300
    batch_size = 8

    [[students]]
    model = "tiny-t5"
    method = "mt+cf"
    data_variant = "revised"
    seeds = [0, 1]
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from distillation.errors import ConfigError
from distillation.objectives import DATA_VARIANTS, METHODS, ObjectiveWeights
from distillation.students import TINY_T5, TinyT5Config
from distillation.teacher_config import (
    DataConfig,
    TeacherConfig,
    data_config_from_toml,
    teacher_config_from_toml,
)

TABLES = ("run", "data", "teacher", "training", "students", "study")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# The study importer reads a condition as METHOD:variant.
_CONDITION = re.compile(r"^[A-Za-z0-9+_.\-]+:[A-Za-z0-9+_.\-]+$")


@dataclass(frozen=True)
class TrainingConfig:
    """How every student of the run is trained and evaluated (paper values as defaults)."""

    steps: int = 5000  # optimizer steps per student and seed
    batch_size: int = 8  # examples per step on each device; every example brings all its views
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0  # then the learning rate falls linearly to 0 at the last step
    max_grad_norm: float = 1.0  # 0 turns clipping off
    mixed_precision: str = "auto"  # "auto": bf16 on GPUs that have it, else fp16; fp32 on CPU
    eval_every: int = 500  # validation (model selection) every N steps and at the end
    checkpoint_every: int = 500  # resumable checkpoint every N steps
    log_every: int = 10  # training loss to metrics.jsonl every N steps
    max_input_length: int = 512
    max_target_length: int = 256
    alpha: float = 0.5  # MT: weight of the predict loss
    beta: float = 1.0  # CF: weight of the counterfactual loss
    gamma: float = 0.5  # MT+CF: weight of the MT loss
    counterfactual_answer_only: bool = False  # CF loss on the answer tokens only
    eval_batch_size: int = 32
    answer_max_new_tokens: int = 16  # generation limit when only an answer is expected
    explanation_max_new_tokens: int = 128  # generation limit for explanations
    validation_limit: int | None = None  # validate on at most N validation questions
    tiny_t5: TinyT5Config = field(default_factory=TinyT5Config)

    @property
    def objective(self) -> ObjectiveWeights:
        return ObjectiveWeights(alpha=self.alpha, beta=self.beta, gamma=self.gamma)


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
    run = _Table(table.get("run", {}), "run")
    run.only("name", "output_dir", "seed")
    name = run.string("name", "")
    if not _NAME.match(name):
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
        study=study_config_from_toml(table.get("study", {})),
        source=dict(table),
    )


def training_config_from_toml(section: Any) -> TrainingConfig:
    t = _Table(section, "training")
    accepted = [item.name for item in fields(TrainingConfig)]
    t.only(*accepted)
    defaults = TrainingConfig()
    tiny = _Table(t.section.get("tiny_t5", {}), "training.tiny_t5")
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
    validation_limit = t.section.get("validation_limit")
    config = TrainingConfig(
        steps=t.integer("steps", defaults.steps, minimum=1),
        batch_size=t.integer("batch_size", defaults.batch_size, minimum=1),
        gradient_accumulation_steps=t.integer(
            "gradient_accumulation_steps", defaults.gradient_accumulation_steps, minimum=1
        ),
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
        counterfactual_answer_only=t.boolean(
            "counterfactual_answer_only", defaults.counterfactual_answer_only
        ),
        eval_batch_size=t.integer("eval_batch_size", defaults.eval_batch_size, minimum=1),
        answer_max_new_tokens=t.integer(
            "answer_max_new_tokens", defaults.answer_max_new_tokens, minimum=1
        ),
        explanation_max_new_tokens=t.integer(
            "explanation_max_new_tokens", defaults.explanation_max_new_tokens, minimum=1
        ),
        validation_limit=(
            None if validation_limit is None else t.integer("validation_limit", 0, minimum=1)
        ),
        tiny_t5=tiny_config,
    )
    config.objective  # noqa: B018 - checks alpha, beta and gamma now, not at the first step
    return config


def students_from_toml(value: Any) -> tuple[StudentSpec, ...]:
    if value is None:
        raise ConfigError("the run configuration needs at least one [[students]] entry")
    if not isinstance(value, list) or not value:
        raise ConfigError("[[students]] must be a non-empty array of tables")
    accepted = [item.name for item in fields(StudentSpec)]
    students = []
    for number, item in enumerate(value, start=1):
        s = _Table(item, f"students[{number}]")
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
        size = s.string("size", "") or model.rstrip("/").rsplit("/", 1)[-1]
        condition = s.string("condition", "") or f"{method.upper()}:{variant}"
        if not _CONDITION.match(condition):
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


def study_config_from_toml(section: Any) -> StudyConfig:
    s = _Table(section, "study")
    s.only("slug", "title", "completion_code", "per_condition", "live")
    slug = s.string("slug", "demo")
    if not re.match(r"^[-a-zA-Z0-9_]+$", slug):
        raise ConfigError(f"study.slug must be letters, digits, '-' or '_', got {slug!r}")
    per_condition = s.section.get("per_condition")
    return StudyConfig(
        slug=slug,
        title=s.string("title", "") or None,
        completion_code=s.string("completion_code", "") or None,
        per_condition=(None if per_condition is None else s.integer("per_condition", 0, minimum=1)),
        live=s.boolean("live", True),
    )


def _resolve(base_dir: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base_dir / path)


class _Table:
    """Typed access to one TOML table; every error names ``table.key``."""

    def __init__(self, section: Any, name: str) -> None:
        if not isinstance(section, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        self.section = section
        self.name = name

    def only(self, *accepted: str) -> None:
        for key in self.section:
            if key not in accepted:
                raise ConfigError(
                    f"unknown key {self.name}.{key}; accepted keys: {', '.join(sorted(accepted))}"
                )

    def _value(self, key: str, default: Any, ok: bool, what: str) -> Any:
        if key not in self.section:
            return default
        if not ok:
            raise ConfigError(f"{self.name}.{key} must be {what}, got {self.section[key]!r}")
        return self.section[key]

    def string(self, key: str, default: str) -> str:
        value = self.section.get(key)
        return str(self._value(key, default, isinstance(value, str), "a string"))

    def boolean(self, key: str, default: bool) -> bool:
        value = self.section.get(key)
        return bool(self._value(key, default, isinstance(value, bool), "true or false"))

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = self.section.get(key)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        result = int(self._value(key, default, is_int, "an integer"))
        if minimum is not None and result < minimum:
            raise ConfigError(f"{self.name}.{key} must be at least {minimum}, got {result}")
        return result

    def number(self, key: str, default: float, *, positive: bool = False) -> float:
        value = self.section.get(key)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        result = float(self._value(key, default, is_number, "a number"))
        if result < 0 or (positive and result == 0):
            raise ConfigError(
                f"{self.name}.{key} must be {'above' if positive else 'at least'} 0, got {result}"
            )
        return result

    def choice(self, key: str, accepted: tuple[str, ...], default: str | None) -> str:
        if key not in self.section and default is None:
            raise ConfigError(
                f"{self.name}.{key} is required; accepted values: {', '.join(accepted)}"
            )
        value = self.section.get(key, default)
        if value not in accepted:
            raise ConfigError(
                f"{self.name}.{key} = {value!r} is not accepted; accepted values: "
                f"{', '.join(accepted)}"
            )
        return str(value)

    def integers(self, key: str, default: list[int]) -> list[int]:
        value = self.section.get(key, default)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise ConfigError(
                f"{self.name}.{key} must be a non-empty list of integers, got {value!r}"
            )
        return list(value)
