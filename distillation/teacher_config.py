"""The ``[data]`` and ``[teacher]`` tables of a run configuration (TOML), parsed and checked.

Each parser reads only its own table and ignores the rest of the file, so that other stages
can add their tables freely. Every wrong key or value raises :class:`ConfigError` naming the
key (as ``table.key``) and what is accepted.

Example::

    [data]
    train = "../shared/data/cqa/train.jsonl"
    test = "../shared/data/cqa/validation.jsonl"
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from distillation.data import FORMATS
from distillation.errors import ConfigError

STEPS = ("explain", "critique", "revise", "counterfactual")
BACKENDS = ("hf", "openai", "import")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ENDPOINTS = ("completions", "chat")
MODEL_ENV = "OPENAI_MODEL"  # the openai backend's model when teacher.model is not set

T = TypeVar("T")


@dataclass(frozen=True)
class DataConfig:
    """Where the CommonsenseQA splits are and how the training split is divided."""

    train: Path  # the training questions; teacher outputs are generated for these
    test: Path | None = None  # held-out questions for the final evaluation, never for selection
    format: str = "auto"  # one of data.FORMATS
    train_limit: int | None = None  # keep only the first N training questions (demo, smoke runs)
    test_limit: int | None = None
    validation_fraction: float = 0.1  # share of the training questions kept for model selection
    split_seed: int = 0


@dataclass(frozen=True)
class TeacherConfig:
    """Which teacher writes the explanations, with which prompts and decoding settings."""

    backend: str = "hf"  # "hf" (local model), "openai" (compatible server), "import" (published)
    model: str = ""  # hf: path or hub name; openai: the served model name (or $OPENAI_MODEL)
    source: Path | None = None  # import: shards folder or native JSON Lines of teacher outputs
    steps: tuple[str, ...] = STEPS  # which steps to run, in pipeline order
    counterfactuals: int | None = None  # wrong choices explained per question (None: all)
    max_new_tokens: Mapping[str, int] = field(
        default_factory=lambda: {"explain": 96, "critique": 96, "revise": 128, "counterfactual": 96}
    )
    # Prompts generated and saved together: one forward pass (hf), or requests sent together,
    # `concurrency` at a time (openai: make it at least `concurrency`).
    batch_size: int = 8
    do_sample: bool = False  # greedy by default: reruns reproduce the same text
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0  # sampling seed and the seed that draws each question's critique request
    stop: tuple[str, ...] = ("\n\n", "\nQuestion:")  # generation ends at the first of these
    prompts_dir: Path | None = None  # template folder; None uses distillation/prompts
    # hf backend
    dtype: str = "auto"  # "auto" picks bfloat16 on a GPU and float32 on CPU
    device_map: str | None = None  # e.g. "auto" to spread a large teacher over the GPUs
    contrastive_lambda: float = 0.0  # > 0 turns on contrastive decoding for the explain step
    contrastive_alpha: float = 0.1  # plausibility cut-off of contrastive decoding (0: none)
    # openai backend
    base_url: str | None = None  # None: $OPENAI_BASE_URL, read when the backend is built
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable that holds the key (never the key)
    endpoint: str = "completions"  # "completions" (plain prompt) or "chat"
    concurrency: int = 4  # requests in flight at once
    timeout_s: float = 120.0
    max_retries: int = 5  # retries on 429, 5xx and timeouts, with exponential backoff
    backoff_s: float = 1.0  # first wait; doubles on each retry

    def max_new_tokens_for(self, step: str) -> int:
        return int(self.max_new_tokens.get(step, 96))


def data_config_from_toml(table: Mapping[str, Any]) -> DataConfig:
    """Build a :class:`DataConfig` from the ``[data]`` table (or a whole parsed TOML file)."""
    section = _section(table, "data")
    _reject_unknown(section, DataConfig, "data")
    reader = _Reader(section, "data")
    config = DataConfig(
        train=reader.path("train"),
        test=reader.optional_path("test"),
        format=reader.choice("format", FORMATS, "auto"),
        train_limit=reader.optional_int("train_limit", minimum=1),
        test_limit=reader.optional_int("test_limit", minimum=1),
        validation_fraction=reader.number("validation_fraction", 0.1),
        split_seed=reader.integer("split_seed", 0),
    )
    if not 0.0 < config.validation_fraction < 1.0:
        raise ConfigError(
            f"data.validation_fraction must be between 0 and 1 (exclusive), not "
            f"{config.validation_fraction}"
        )
    return config


def teacher_config_from_toml(table: Mapping[str, Any]) -> TeacherConfig:
    """Build a :class:`TeacherConfig` from the ``[teacher]`` table (or a whole parsed TOML file)."""
    section = _section(table, "teacher")
    _reject_unknown(section, TeacherConfig, "teacher")
    reader = _Reader(section, "teacher")
    defaults = TeacherConfig()
    backend = reader.choice("backend", BACKENDS, defaults.backend)
    steps = reader.steps()
    max_new_tokens = dict(defaults.max_new_tokens)
    max_new_tokens.update(reader.step_ints("max_new_tokens"))
    model = reader.string("model", defaults.model)
    if backend == "openai" and not model:
        # The served model's name often comes with the server, like its address.
        model = os.environ.get(MODEL_ENV, "")
    config = TeacherConfig(
        backend=backend,
        model=model,
        source=reader.optional_path("source"),
        steps=steps,
        counterfactuals=reader.optional_int("counterfactuals", minimum=0),
        max_new_tokens=max_new_tokens,
        batch_size=reader.integer("batch_size", defaults.batch_size, minimum=1),
        do_sample=reader.boolean("do_sample", defaults.do_sample),
        temperature=reader.number("temperature", defaults.temperature, minimum=0.0),
        top_p=reader.number("top_p", defaults.top_p, minimum=0.0),
        seed=reader.integer("seed", defaults.seed),
        stop=reader.strings("stop", defaults.stop),
        prompts_dir=reader.optional_path("prompts_dir"),
        dtype=reader.choice("dtype", DTYPES, defaults.dtype),
        device_map=reader.optional_string("device_map"),
        contrastive_lambda=reader.number(
            "contrastive_lambda", defaults.contrastive_lambda, minimum=0.0
        ),
        contrastive_alpha=reader.number(
            "contrastive_alpha", defaults.contrastive_alpha, minimum=0.0
        ),
        base_url=reader.optional_string("base_url"),
        api_key_env=reader.string("api_key_env", defaults.api_key_env),
        endpoint=reader.choice("endpoint", ENDPOINTS, defaults.endpoint),
        concurrency=reader.integer("concurrency", defaults.concurrency, minimum=1),
        timeout_s=reader.number("timeout_s", defaults.timeout_s, minimum=0.001),
        max_retries=reader.integer("max_retries", defaults.max_retries, minimum=0),
        backoff_s=reader.number("backoff_s", defaults.backoff_s, minimum=0.0),
    )
    if config.backend == "import" and config.source is None:
        raise ConfigError("teacher.source is required when teacher.backend is 'import'")
    if config.backend == "hf" and not config.model:
        raise ConfigError("teacher.model is required when teacher.backend is 'hf'")
    if config.backend == "openai" and not config.model:
        raise ConfigError(
            f"teacher.model (or ${MODEL_ENV}) is required when teacher.backend is 'openai'"
        )
    if config.top_p > 1.0:
        raise ConfigError(f"teacher.top_p must be at most 1, not {config.top_p}")
    if config.backend == "hf" and config.do_sample and config.temperature == 0.0:
        # transformers refuses it only when generating, after the model has loaded.
        raise ConfigError(
            "teacher.temperature must be above 0 when do_sample = true "
            "(for greedy decoding set do_sample = false)"
        )
    if config.contrastive_alpha >= 1.0:
        raise ConfigError(
            f"teacher.contrastive_alpha must be below 1, not {config.contrastive_alpha}"
        )
    return config


def _section(table: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    # Accept both the whole parsed file and the table itself, so callers need not care.
    if name in table and isinstance(table[name], Mapping):
        return table[name]
    if name in table:
        raise ConfigError(f"[{name}] must be a table")
    return table


def _reject_unknown(section: Mapping[str, Any], cls: type, table: str) -> None:
    known = {item.name for item in fields(cls)}
    for key in section:
        if key not in known:
            raise ConfigError(
                f"unknown key {table}.{key}; accepted keys: {', '.join(sorted(known))}"
            )


class _Reader:
    """Typed access to one TOML table; every error names ``table.key``."""

    def __init__(self, section: Mapping[str, Any], table: str) -> None:
        self.section = section
        self.table = table

    def _name(self, key: str) -> str:
        return f"{self.table}.{key}"

    def _typed(self, key: str, default: T, check: Callable[[Any], bool], what: str) -> T:
        if key not in self.section:
            return default
        value = self.section[key]
        if not check(value):
            raise ConfigError(f"{self._name(key)} must be {what}, not {value!r}")
        return value

    def string(self, key: str, default: str) -> str:
        return self._typed(key, default, lambda v: isinstance(v, str), "a string")

    def optional_string(self, key: str) -> str | None:
        value = self._typed(key, None, lambda v: isinstance(v, str) and v != "", "a string")
        return value if value is None else str(value)

    def path(self, key: str) -> Path:
        value = self.optional_path(key)
        if value is None:
            raise ConfigError(f"{self._name(key)} is required (a file path)")
        return value

    def optional_path(self, key: str) -> Path | None:
        value = self.optional_string(key)
        return Path(value) if value is not None else None

    def boolean(self, key: str, default: bool) -> bool:
        return self._typed(key, default, lambda v: isinstance(v, bool), "true or false")

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = self._typed(
            key, default, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"
        )
        if minimum is not None and value < minimum:
            raise ConfigError(f"{self._name(key)} must be at least {minimum}, not {value}")
        return value

    def optional_int(self, key: str, *, minimum: int) -> int | None:
        if key not in self.section:
            return None
        return self.integer(key, 0, minimum=minimum)

    def number(self, key: str, default: float, *, minimum: float | None = None) -> float:
        value = self._typed(
            key,
            default,
            lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "a number",
        )
        if minimum is not None and value < minimum:
            raise ConfigError(f"{self._name(key)} must be at least {minimum}, not {value}")
        return float(value)

    def choice(self, key: str, accepted: tuple[str, ...], default: str) -> str:
        value = self.section.get(key, default)
        if value not in accepted:
            raise ConfigError(
                f"{self._name(key)} must be one of {', '.join(accepted)}; found {value!r}"
            )
        return str(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._typed(
            key,
            default,
            lambda v: isinstance(v, list | tuple) and all(isinstance(s, str) and s for s in v),
            "a list of non-empty strings",
        )
        return tuple(value)

    def steps(self) -> tuple[str, ...]:
        steps = self.strings("steps", STEPS)
        for step in steps:
            if step not in STEPS:
                raise ConfigError(
                    f"{self._name('steps')} has unknown step {step!r}; accepted: {', '.join(STEPS)}"
                )
        if len(set(steps)) != len(steps):
            raise ConfigError(f"{self._name('steps')} lists a step twice: {list(steps)}")
        # Each step consumes the output of the one before it.
        if "revise" in steps and "critique" not in steps:
            raise ConfigError(f"{self._name('steps')}: 'revise' needs 'critique'")
        if "critique" in steps and "explain" not in steps:
            raise ConfigError(f"{self._name('steps')}: 'critique' needs 'explain'")
        return tuple(step for step in STEPS if step in steps)

    def step_ints(self, key: str) -> dict[str, int]:
        value = self.section.get(key, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self._name(key)} must be a table of step = integer")
        result: dict[str, int] = {}
        for step, tokens in value.items():
            if step not in STEPS:
                raise ConfigError(
                    f"{self._name(key)}.{step} is not a step; accepted: {', '.join(STEPS)}"
                )
            if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
                raise ConfigError(f"{self._name(key)}.{step} must be a positive integer")
            result[step] = tokens
        return result
