"""The ``[data]`` and ``[teacher]`` tables of a run configuration (TOML), as validated models.

Each table is a frozen pydantic dataclass that refuses unknown keys; every key is declared
once, with its type, its bounds and its default, and the rules between keys are validators
that run when the table is read. A wrong key or value raises :class:`ConfigError` with one line
that names the key (as ``table.key``) and what it accepts
(:func:`studyformats.config_messages.validation_message`).

Each loader reads only its own table and ignores the rest of the file, so that other stages
can add their tables freely.

Example::

    [data]
    train = "data/cqa/train.jsonl"
    test = "data/cqa/validation.jsonl"
    validation_fraction = 0.1
    split_seed = 13

    [teacher]
    backend = "openai"              # "hf", "openai" or "import"
    model = "meta-llama/Llama-2-13b-chat-hf"
    base_url = "http://127.0.0.1:8000/v1"
    counterfactuals = 4             # wrong choices explained per question; omit for all
    [teacher.max_new_tokens]
    explain = 96
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from distillation.data import FORMATS
from distillation.errors import ConfigError
from studyformats.config_messages import Choices, SettingError, validation_message

STEPS = ("explain", "critique", "revise", "counterfactual")
BACKENDS = ("hf", "openai", "import")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ENDPOINTS = ("completions", "chat")
MODEL_ENV = "OPENAI_MODEL"  # the openai backend's model when teacher.model is not set
MAX_NEW_TOKENS = {"explain": 96, "critique": 96, "revise": 128, "counterfactual": 96}

# What every table of a run configuration shares: read once, unknown keys refused.
TABLE = ConfigDict(extra="forbid")

Step = Annotated[str, Choices(STEPS)]
Text = Annotated[StrictStr, Field(min_length=1)]

T = TypeVar("T")


@dataclass(frozen=True, config=TABLE)
class DataConfig:
    """Where the CommonsenseQA splits are and how the training split is divided."""

    # The training questions; teacher outputs are generated for these.
    train: Path
    # Held-out questions for the final evaluation, never for selection.
    test: Path | None = None
    format: Annotated[str, Choices(FORMATS)] = "auto"
    # Keep only the first N training questions (demo, smoke runs).
    train_limit: StrictInt | None = Field(default=None, ge=1)
    test_limit: StrictInt | None = Field(default=None, ge=1)
    # Share of the training questions kept for model selection.
    validation_fraction: StrictFloat = Field(default=0.1, gt=0, lt=1)
    split_seed: StrictInt = 0

    @field_validator("train", "test", mode="before")
    @classmethod
    def _path_given(cls, value: Any) -> Any:
        return _path_text(value)

    @field_validator("train", "test")
    @classmethod
    def _path_resolved(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else path_resolve(value, info)


@dataclass(frozen=True, config=TABLE)
class TeacherConfig:
    """Which teacher writes the explanations, with which prompts and decoding settings."""

    # "hf" (local model), "openai" (compatible server), "import" (published outputs).
    backend: Annotated[str, Choices(BACKENDS)] = "hf"
    # hf: path or hub name; openai: the served model name (or $OPENAI_MODEL).
    model: StrictStr = Field(default="", validate_default=True)
    # import: shards folder or native JSON Lines of teacher outputs.
    source: Path | None = None
    # Which steps to run; kept in pipeline order whatever order the file lists them in.
    steps: tuple[Step, ...] = STEPS
    # Wrong choices explained per question (None: all).
    counterfactuals: StrictInt | None = Field(default=None, ge=0)
    # Per step; steps the file leaves out keep MAX_NEW_TOKENS.
    max_new_tokens: Mapping[Step, Annotated[StrictInt, Field(ge=1)]] = Field(
        default_factory=lambda: dict(MAX_NEW_TOKENS)
    )
    # Prompts generated and saved together: one forward pass (hf), or requests sent together,
    # `concurrency` at a time (openai: make it at least `concurrency`).
    batch_size: StrictInt = Field(default=8, ge=1)
    do_sample: StrictBool = False  # greedy by default: reruns reproduce the same text
    temperature: StrictFloat = Field(default=0.7, ge=0)
    top_p: StrictFloat = Field(default=0.95, ge=0, le=1)
    seed: StrictInt = 0  # sampling seed and the seed that draws each question's critique request
    stop: tuple[Text, ...] = ("\n\n", "\nQuestion:")  # generation ends at the first of these
    prompts_dir: Path | None = None  # template folder; None uses distillation/prompts
    # hf backend
    dtype: Annotated[str, Choices(DTYPES)] = "auto"  # "auto": bfloat16 on a GPU, else float32
    device_map: Text | None = None  # e.g. "auto" to spread a large teacher over the GPUs
    contrastive_lambda: StrictFloat = Field(default=0.0, ge=0)  # > 0: contrastive decoding
    # Plausibility cut-off of contrastive decoding (0: none).
    contrastive_alpha: StrictFloat = Field(default=0.1, ge=0, lt=1)
    # openai backend
    base_url: Text | None = None  # None: $OPENAI_BASE_URL, read when the backend is built
    api_key_env: StrictStr = "OPENAI_API_KEY"  # the variable that holds the key (never the key)
    endpoint: Annotated[str, Choices(ENDPOINTS)] = "completions"  # plain prompt, or "chat"
    concurrency: StrictInt = Field(default=4, ge=1)  # requests in flight at once
    timeout_s: StrictFloat = Field(default=120.0, ge=0.001)
    max_retries: StrictInt = Field(default=5, ge=0)  # on 429, 5xx and timeouts, with backoff
    backoff_s: StrictFloat = Field(default=1.0, ge=0)  # first wait; doubles on each retry

    def max_new_tokens_for(self, step: str) -> int:
        return int(self.max_new_tokens.get(step, MAX_NEW_TOKENS["explain"]))

    @field_validator("model")
    @classmethod
    def _served_model(cls, model: str, info: ValidationInfo) -> str:
        if not model and info.data.get("backend") == "openai":
            # The served model's name often comes with the server, like its address.
            return os.environ.get(MODEL_ENV, "")
        return model

    @field_validator("source", "prompts_dir", mode="before")
    @classmethod
    def _path_given(cls, value: Any) -> Any:
        return _path_text(value)

    @field_validator("source", "prompts_dir")
    @classmethod
    def _path_resolved(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else path_resolve(value, info)

    @field_validator("steps")
    @classmethod
    def _steps_in_order(cls, steps: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(steps)) != len(steps):
            raise ValueError(f"teacher.steps lists a step twice: {list(steps)}")
        # Each step consumes the output of the one before it.
        if "revise" in steps and "critique" not in steps:
            raise ValueError("teacher.steps: 'revise' needs 'critique'")
        if "critique" in steps and "explain" not in steps:
            raise ValueError("teacher.steps: 'critique' needs 'explain'")
        return tuple(step for step in STEPS if step in steps)

    @field_validator("max_new_tokens")
    @classmethod
    def _max_new_tokens_defaults(cls, caps: Mapping[str, int]) -> dict[str, int]:
        return {**MAX_NEW_TOKENS, **caps}

    @model_validator(mode="after")
    def _backend_complete(self) -> TeacherConfig:
        if self.backend == "import" and self.source is None:
            raise ValueError("teacher.source is required when teacher.backend is 'import'")
        if self.backend == "hf" and not self.model:
            raise ValueError("teacher.model is required when teacher.backend is 'hf'")
        if self.backend == "openai" and not self.model:
            raise ValueError(
                f"teacher.model (or ${MODEL_ENV}) is required when teacher.backend is 'openai'"
            )
        if self.backend == "hf" and self.do_sample and self.temperature == 0.0:
            # transformers refuses it only when generating, after the model has loaded.
            raise ValueError(
                "teacher.temperature must be above 0 when do_sample = true "
                "(for greedy decoding set do_sample = false)"
            )
        return self


def data_config_from_toml(table: Mapping[str, Any]) -> DataConfig:
    """Build a :class:`DataConfig` from the ``[data]`` table (or a whole parsed TOML file)."""
    return table_validate(DataConfig, _section(table, "data"), "data")


def teacher_config_from_toml(table: Mapping[str, Any]) -> TeacherConfig:
    """Build a :class:`TeacherConfig` from the ``[teacher]`` table (or a whole parsed TOML file)."""
    return table_validate(TeacherConfig, _section(table, "teacher"), "teacher")


def table_validate(
    model: type[T], data: Any, prefix: str = "", *, context: Mapping[str, Any] | None = None
) -> T:
    """``data`` validated as ``model``; a problem is a :class:`ConfigError` naming the key.

    ``context`` carries ``base_dir`` (relative paths resolve against it) and ``runs_dir``.

    Examples
    --------
    >>> table_validate(DataConfig, {"train": "q.jsonl", "train_limit": 8}, "data").train_limit
    8
    >>> table_validate(DataConfig, {"train": "q.jsonl", "train_limit": 0}, "data")
    Traceback (most recent call last):
    ...
    distillation.errors.ConfigError: data.train_limit must be a whole number ≥ 1; got 0
    """
    try:
        return TypeAdapter(model).validate_python(data, context=context)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, model, prefix=prefix)) from None


def path_resolve(path: Path, info: ValidationInfo) -> Path:
    """``path`` against the ``base_dir`` the reader passed, when it passed one."""
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is None or path.is_absolute():
        return path
    return Path(base_dir) / path


def _path_text(value: Any) -> Any:
    # An empty string would become the working folder; it is refused like a missing value.
    if value == "":
        raise SettingError("must be a path (a non-empty string); got ''")
    return value


def _section(table: Mapping[str, Any], name: str) -> Any:
    # Accept both the whole parsed file and the table itself, so callers need not care.
    if name in table and isinstance(table[name], Mapping):
        return table[name]
    if name in table:
        raise ConfigError(f"[{name}] must be a table")
    return table
