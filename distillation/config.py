"""The run configuration (TOML) of ``run_distillation``, validated in one place.

A run file has the tables ``[run]``, ``[data]``, ``[teacher]``, ``[training]`` (with an
optional ``[training.tiny_t5]``), ``[[students]]``, ``[study]`` and ``[analysis]``. Each table
is a frozen pydantic dataclass that refuses unknown keys (``[data]`` and ``[teacher]`` live in
:mod:`distillation.teacher_config`); every key is declared once, with its type, bounds and
default, and the rules between keys are validators that run when the file is read. A wrong key
or value raises :class:`ConfigError` with one line naming the key and what it accepts.
Training settings left out take the paper's values (``distillation.recipe``).

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

import dataclasses
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs

from distillation.errors import ConfigError
from distillation.objectives import (
    DATA_VARIANTS,
    FACTUAL_EXPLANATIONS,
    METHODS,
    ObjectiveWeights,
)
from distillation.students import TINY_T5, TinyT5Config
from distillation.teacher_config import (
    TABLE,
    DataConfig,
    TeacherConfig,
    path_resolve,
    table_validate,
)
from studyformats.config_messages import Choices, SettingError

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
SELECTIONS = ("last", "best_validation")
# A run's name is a folder name.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_SEEDS = "integers from 0 to 2**32 - 1, in a non-empty list without repeats"
_STUDENTS = "a non-empty array of [[students]] tables"
_SLUG = r"^[-a-zA-Z0-9_]+$"
# The study importer reads a condition as METHOD:variant.
_CONDITION = re.compile(r"[A-Za-z0-9+_.\-]+:[A-Za-z0-9+_.\-]+")


@dataclasses.dataclass(frozen=True)
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


def _tiny_t5_table() -> type[BaseModel]:
    """The ``[training.tiny_t5]`` table: TinyT5Config's keys, each of exactly its type."""
    hints = typing.get_type_hints(TinyT5Config)
    keys: dict[str, Any] = {
        item.name: (Annotated[hints[item.name], Strict()], item.default)
        for item in dataclasses.fields(TinyT5Config)
    }
    return create_model("TinyT5Table", __config__=ConfigDict(extra="forbid"), **keys)


_TINY_T5_TABLE = _tiny_t5_table()


def _tiny_t5_build(value: Any) -> Any:
    # TinyT5Config is a plain dataclass, which pydantic would fill from "64" or 64.0 as well;
    # the table is checked against a strict model of the same keys first.
    if not isinstance(value, Mapping):
        return value
    try:
        return TinyT5Config(**_TINY_T5_TABLE.model_validate(value).model_dump())
    except ConfigError as error:
        raise ValueError(str(error)) from None


@dataclass(frozen=True, config=TABLE)
class TrainingConfig:
    """How every student of the run is trained and evaluated (paper values as defaults)."""

    steps: StrictInt = Field(default=5000, ge=1)  # optimizer steps per student and seed
    # Examples per optimiser step, over all devices and accumulation steps.
    batch_size: StrictInt = Field(default=64, ge=1)
    # Examples per forward/backward pass on one device (each brings all its views); the
    # accumulation steps follow. None: the whole batch at once, shared by the devices.
    per_device_batch_size: StrictInt | None = Field(default=None, ge=1)
    learning_rate: StrictFloat = Field(default=5e-5, gt=0)
    weight_decay: StrictFloat = Field(default=0.0, ge=0)
    # Then the learning rate falls linearly to 0 at the last step.
    warmup_steps: StrictInt = Field(default=0, ge=0)
    max_grad_norm: StrictFloat = Field(default=1.0, ge=0)  # 0 turns clipping off
    # "auto": bf16 on GPUs that have it, else fp16; fp32 on CPU.
    mixed_precision: Annotated[str, Choices(MIXED_PRECISION)] = "auto"
    eval_every: StrictInt = Field(default=500, ge=1)  # validation every N steps and at the end
    checkpoint_every: StrictInt = Field(default=500, ge=1)  # resumable checkpoint every N steps
    log_every: StrictInt = Field(default=10, ge=1)  # training loss to metrics.jsonl every N steps
    max_input_length: StrictInt = Field(default=300, ge=8)  # tokens, end-of-sequence included
    max_target_length: StrictInt = Field(default=300, ge=8)
    alpha: StrictFloat = 0.5  # MT: alpha·L_predict + (1 − alpha)·L_explain
    beta: StrictFloat = 0.5  # CF: beta·L_factual + (1 − beta)·L_counterfactual
    gamma: StrictFloat = 0.5  # MT+CF: gamma·L_MT + (1 − gamma)·L_CF
    # What MT+CF's factual view learns.
    factual_explanation: Annotated[str, Choices(FACTUAL_EXPLANATIONS)] = "counterfactual_prompt"
    counterfactual_answer_only: StrictBool = False  # CF loss on the answer tokens only
    # Weights evaluated: after the last step, or best on validation.
    selection: Annotated[str, Choices(SELECTIONS)] = "last"
    eval_batch_size: StrictInt = Field(default=32, ge=1)
    # Generation cap when only an answer is expected.
    answer_max_new_tokens: StrictInt = Field(default=16, ge=1)
    explanation_max_new_tokens: StrictInt = Field(default=512, ge=1)  # cap for explanations
    # A run fails when more than this share of a generation's outputs hit their cap.
    max_truncated_fraction: StrictFloat = Field(default=0.01, ge=0, le=1)
    # Validate on at most N validation questions.
    validation_limit: StrictInt | None = Field(default=None, ge=1)
    tiny_t5: Annotated[TinyT5Config, BeforeValidator(_tiny_t5_build)] = Field(
        default_factory=TinyT5Config
    )

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

    @model_validator(mode="before")
    @classmethod
    def _former_batch_keys(cls, data: Any) -> Any:
        """Configurations of the former batch keys get told how to say the same thing now."""
        table = data.kwargs if isinstance(data, ArgsKwargs) else data
        if not isinstance(table, Mapping) or "gradient_accumulation_steps" not in table:
            return data
        accumulation = table["gradient_accumulation_steps"]
        per_device = table.get("batch_size", 8)
        same = ""
        if all(isinstance(n, int) and not isinstance(n, bool) for n in (accumulation, per_device)):
            same = (
                f"; for one device, batch_size = {per_device} with gradient_accumulation_steps "
                f"= {accumulation} is batch_size = {per_device * accumulation} with "
                f"per_device_batch_size = {per_device}"
            )
        raise ValueError(
            "training.gradient_accumulation_steps is no longer set: training.batch_size now "
            "counts the examples of one optimiser step over all devices and accumulation "
            "steps, and training.per_device_batch_size what one device takes per pass (the "
            f"accumulation follows){same}"
        )

    @model_validator(mode="after")
    def _weights_and_batch(self) -> TrainingConfig:
        try:
            self.objective  # noqa: B018 - alpha, beta and gamma now, not at the first step
            self.batch_split()  # one process at least must be able to run the batch
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self


@dataclass(frozen=True, config=TABLE)
class StudentSpec:
    """One student to train: a model, an objective, the explanations it learns from, seeds."""

    # "tiny-t5", a Hugging Face hub name, or a local folder.
    model: Annotated[
        StrictStr,
        Field(
            min_length=1, description=f"{TINY_T5!r}, a Hugging Face model name or a local folder"
        ),
    ]
    method: Annotated[str, Choices(METHODS)]
    data_variant: Annotated[str, Choices(DATA_VARIANTS)]
    # numpy and torch take no other seeds; refused here, not at the train stage.
    seeds: tuple[Annotated[StrictInt, Field(ge=0, lt=2**32)], ...] = Field(
        default=(0,), description=_SEEDS
    )
    # Label for the accuracy table and ANOVA; default: the model's name.
    size: StrictStr = Field(default="", validate_default=True)
    # Study condition name; default like "MT+CF:revised".
    condition: StrictStr = Field(default="", validate_default=True)
    in_study: StrictBool = True  # its explanations go into the study's item pool
    # The seed whose model writes the explanations, named before training (default: the first
    # seed listed), never the best seed picked afterwards.
    study_seed: StrictInt = Field(default=None, validate_default=True)

    @property
    def slug(self) -> str:
        """A folder name unique within the run."""
        model = re.sub(r"[^A-Za-z0-9._-]+", "-", self.size or self.model).strip("-")
        return f"{model}-{self.method.replace('+', '_')}-{self.data_variant}"

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        # Checked here rather than with min_length, which pydantic also reports when only an
        # item is wrong.
        if not seeds:
            raise SettingError(f"must be {_SEEDS}; got []")
        if len(set(seeds)) != len(seeds):
            raise SettingError(f"lists a seed twice: {list(seeds)}")
        return seeds

    @field_validator("size")
    @classmethod
    def _size_named(cls, size: str, info: ValidationInfo) -> str:
        model = info.data.get("model", "")
        return size or model.rstrip("/").rsplit("/", 1)[-1]

    @field_validator("condition")
    @classmethod
    def _condition_named(cls, condition: str, info: ValidationInfo) -> str:
        method, variant = info.data.get("method"), info.data.get("data_variant")
        if not condition:
            # Left empty when the method or variant is wrong; that error is reported.
            return f"{method.upper()}:{variant}" if method and variant else ""
        if not _CONDITION.fullmatch(condition):
            raise SettingError(
                f"must look like METHOD:variant (e.g. 'MT+CF:revised'), got {condition!r}"
            )
        return condition

    @field_validator("study_seed", mode="before")
    @classmethod
    def _first_seed(cls, study_seed: Any, info: ValidationInfo) -> Any:
        if study_seed is not None:
            return study_seed
        # Without valid seeds there is no first one; the seeds' error is reported.
        seeds = info.data.get("seeds")
        return seeds[0] if seeds else 0

    @model_validator(mode="after")
    def _study_seed_trained(self) -> StudentSpec:
        if self.study_seed not in self.seeds:
            raise SettingError(
                f"= {self.study_seed} is not one of its seeds; accepted values: "
                f"{', '.join(map(str, self.seeds))}",
                key="study_seed",
            )
        return self


@dataclass(frozen=True, config=TABLE)
class StudyConfig:
    """The human-evaluation study created from the students' explanations."""

    slug: StrictStr = Field(
        default="demo", pattern=_SLUG, description="letters, digits, '-' or '_'"
    )
    title: StrictStr | None = None  # "" in the file: the study's default title
    completion_code: StrictStr | None = None  # "" in the file: none
    per_condition: StrictInt | None = Field(default=None, ge=1)
    live: StrictBool = True
    # The analysis plan registered on the study (a shipped name or a plan file); None: none.
    plan: StrictStr | None = None
    # What participants rate: a stored questionnaire's NAME or NAME@VERSION, or a .toml/.json
    # questionnaire file (checked here, stored when the study is created); None: plain-5 for
    # a new study, and an existing study keeps its own.
    questionnaire: StrictStr | None = None

    @field_validator("title", "completion_code")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("plan")
    @classmethod
    def _plan_found(cls, plan: str | None, info: ValidationInfo) -> str | None:
        return _plan_resolve(plan, "study.plan", info) if plan else None

    @field_validator("questionnaire")
    @classmethod
    def _questionnaire_found(cls, questionnaire: str | None, info: ValidationInfo) -> str | None:
        return _questionnaire_resolve(questionnaire, info) if questionnaire else None


@dataclass(frozen=True, config=TABLE)
class AnalysisConfig:
    """The analysis plan the run's accuracy analysis follows: a shipped name or a file path."""

    plan: StrictStr = Field(default="standard", validate_default=True)

    @field_validator("plan")
    @classmethod
    def _plan_found(cls, plan: str, info: ValidationInfo) -> str:
        return _plan_resolve(plan, "analysis.plan", info)


@dataclass(frozen=True, config=TABLE)
class RunTable:
    """The ``[run]`` table: the run's name, where it writes, its seed."""

    name: Annotated[
        StrictStr,
        Field(pattern=_NAME, description="1-100 letters, digits, '.', '_' or '-' (a folder name)"),
    ]
    output_dir: Path = Field(default=None, validate_default=True)  # left out or "": runs/<name>
    seed: StrictInt = 0

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir_named(cls, output_dir: Any, info: ValidationInfo) -> Any:
        if output_dir is not None and output_dir != "":
            return output_dir
        context = info.context or {}
        runs = context.get("runs_dir") or Path(context.get("base_dir") or Path.cwd()) / "runs"
        return Path(runs) / info.data.get("name", "")

    @field_validator("output_dir")
    @classmethod
    def _output_dir_resolved(cls, output_dir: Path, info: ValidationInfo) -> Path:
        return path_resolve(output_dir, info)


@dataclass(frozen=True, config=TABLE)
class RunFile:
    """The tables of a run file, each validated; :func:`run_config_load` reads it."""

    run: RunTable
    data: DataConfig
    teacher: TeacherConfig
    students: Annotated[tuple[StudentSpec, ...], Field(description=_STUDENTS)]
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)

    @field_validator("students")
    @classmethod
    def _students_distinct(cls, students: tuple[StudentSpec, ...]) -> tuple[StudentSpec, ...]:
        if not students:
            raise ValueError(f"students must be {_STUDENTS}; got []")
        slugs: dict[str, int] = {}
        conditions: dict[str, int] = {}
        for number, student in enumerate(students, start=1):
            if student.slug in slugs:
                raise ValueError(
                    f"students[{number}] repeats students[{slugs[student.slug]}] (same model, "
                    "method and data_variant); list more seeds in one entry, or set a different "
                    "size label"
                )
            slugs[student.slug] = number
            if student.in_study:
                if student.condition in conditions:
                    raise ValueError(
                        f"students[{number}] and students[{conditions[student.condition]}] both "
                        f"enter the study as condition {student.condition!r}; give one a "
                        "'condition' name of its own or set in_study = false"
                    )
                conditions[student.condition] = number
        return students


TABLES = tuple(item.name for item in dataclasses.fields(RunFile))


@dataclass(frozen=True)
class RunConfig:
    """A checked run file with its paths resolved: what the pipeline runs."""

    name: str
    output_dir: Path
    seed: int
    data: DataConfig
    teacher: TeacherConfig
    training: TrainingConfig
    students: tuple[StudentSpec, ...]
    study: StudyConfig
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    # The file as read, for the run folder's record; not part of the comparison.
    source: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)


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
    """Check a parsed run file; relative paths resolve against ``base_dir``.

    Examples
    --------
    >>> config = run_config_from_dict(
    ...     {
    ...         "run": {"name": "t"},
    ...         "data": {"train": "questions.jsonl"},
    ...         "teacher": {"backend": "import", "source": "outputs.jsonl"},
    ...         "students": [{"model": "tiny-t5", "method": "mt", "data_variant": "original"}],
    ...     },
    ...     base_dir=Path("/project"),
    ... )
    >>> config.output_dir, config.data.train, config.students[0].condition
    (PosixPath('/project/runs/t'), PosixPath('/project/questions.jsonl'), 'MT:original')
    """
    context = {"base_dir": base_dir, "runs_dir": runs_dir}
    parsed = table_validate(RunFile, table, context=context)
    return RunConfig(
        name=parsed.run.name,
        output_dir=parsed.run.output_dir,
        seed=parsed.run.seed,
        data=parsed.data,
        teacher=parsed.teacher,
        training=parsed.training,
        students=parsed.students,
        study=parsed.study,
        analysis=parsed.analysis,
        source=dict(table),
    )


def _plan_resolve(plan: str, key: str, info: ValidationInfo) -> str:
    """A shipped plan's name as it is, a plan file as its checked path."""
    names = _analysis_plan_names()
    if plan in names:
        return plan
    path = path_resolve(Path(plan), info)
    if path.suffix != ".toml" or not path.is_file():
        raise ValueError(
            f"{key} = {plan!r} is neither a shipped plan nor a plan file; accepted "
            f"values: {', '.join(names)}, or the path of an existing .toml plan file"
        )
    _analysis_plan_check(path, key)
    return str(path)


# A stored questionnaire: its name (a slug), optionally "@" and a version number.
_QUESTIONNAIRE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,59}(@[1-9][0-9]{0,8})?")


def _questionnaire_resolve(questionnaire: str, info: ValidationInfo) -> str:
    """A stored questionnaire's NAME[@VERSION] as it is (the study stage looks it up), a
    questionnaire file as its checked path."""
    if not questionnaire.lower().endswith((".toml", ".json")):
        if _QUESTIONNAIRE_NAME.fullmatch(questionnaire):
            return questionnaire
        raise ValueError(
            f"study.questionnaire = {questionnaire!r} is neither a questionnaire's NAME or "
            "NAME@VERSION (lowercase letters, digits and '-', then '@' and a version number) "
            "nor the path of a .toml or .json questionnaire file"
        )
    from studyformats.questionnaire import QuestionnaireError, questionnaire_read

    path = path_resolve(Path(questionnaire), info)
    if not path.is_file():
        raise ValueError(f"study.questionnaire: no questionnaire file {path}")
    try:
        questionnaire_read(path)
    except QuestionnaireError as error:
        raise ValueError(f"study.questionnaire {error}") from None
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
        raise ValueError(f"{key} {path}: {error}") from None
