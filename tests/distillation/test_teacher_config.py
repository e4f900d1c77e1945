from __future__ import annotations

import tomllib
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from pydantic import ValidationError

from distillation.errors import ConfigError
from distillation.teacher_config import (
    MAX_NEW_TOKENS,
    STEPS,
    DataConfig,
    TeacherConfig,
    data_config_from_toml,
    teacher_config_from_toml,
)

RUN_TOML = """
[run]
name = "paper"

[data]
train = "../shared/data/cqa/train.jsonl"
test = "../shared/data/cqa/validation.jsonl"
validation_fraction = 0.2
split_seed = 3

[teacher]
backend = "openai"
model = "llama-2-13b-chat"
base_url = "http://127.0.0.1:8000/v1"
steps = ["counterfactual", "explain"]
counterfactuals = 2
concurrency = 8
[teacher.max_new_tokens]
explain = 64

[[students]]
model = "t5-base"
"""


def test_it_reads_its_tables_from_a_whole_run_file_and_ignores_the_others() -> None:
    table = tomllib.loads(RUN_TOML)

    data = data_config_from_toml(table)
    teacher = teacher_config_from_toml(table)

    assert data == DataConfig(
        train=Path("../shared/data/cqa/train.jsonl"),
        test=Path("../shared/data/cqa/validation.jsonl"),
        validation_fraction=0.2,
        split_seed=3,
    )
    assert teacher.backend == "openai"
    assert teacher.steps == ("explain", "counterfactual")  # pipeline order, whatever the file says
    assert teacher.counterfactuals == 2
    assert teacher.concurrency == 8
    assert teacher.max_new_tokens_for("explain") == 64
    assert teacher.max_new_tokens_for("revise") == MAX_NEW_TOKENS["revise"]


def test_it_accepts_the_table_itself() -> None:
    teacher = teacher_config_from_toml({"backend": "import", "source": "outputs.jsonl"})

    assert teacher.source == Path("outputs.jsonl")
    assert teacher.steps == STEPS


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"backend": "vllm", "model": "m"},
            r"teacher\.backend must be one of 'hf', 'openai', 'import'; got 'vllm'",
        ),
        (
            {"model": "m", "temprature": 0.5},
            r"unknown key 'teacher\.temprature'; accepted keys in \[teacher\]: backend, ",
        ),
        ({"model": "m", "batch_size": 0}, r"teacher\.batch_size must be a whole number ≥ 1; got 0"),
        (
            {"model": "m", "batch_size": "8"},
            r"teacher\.batch_size must be a whole number ≥ 1; got '8'",
        ),
        (
            {"model": "m", "steps": ["explain", "summarise"]},
            r"teacher\.steps must be a list of any of 'explain', .*; got 'summarise'",
        ),
        ({"model": "m", "steps": ["explain", "revise"]}, r"'revise' needs 'critique'"),
        ({"model": "m", "max_new_tokens": {"explain": -1}}, r"max_new_tokens.explain must be"),
        ({"model": "m", "dtype": "int8"}, r"teacher\.dtype must be one of 'auto', 'float32'"),
        ({"backend": "import"}, r"teacher.source is required"),
        ({"backend": "hf"}, r"teacher.model is required"),
        ({"backend": "openai"}, r"teacher.model \(or \$OPENAI_MODEL\) is required"),
        ({"model": "m", "top_p": 1.5}, r"teacher\.top_p must be a number ≥ 0 and ≤ 1; got 1\.5"),
        (
            {"model": "m", "do_sample": True, "temperature": 0.0},
            r"teacher.temperature must be above 0 when do_sample = true",
        ),
        (
            {"backend": "import", "source": ""},
            r"^teacher\.source must be a path \(a non-empty string\); got ''$",
        ),
        ({"model": "m", "base_url": ""}, r"^teacher\.base_url must be a non-empty string; got ''$"),
        (
            {"model": "m", "steps": ["explain", "explain"]},
            r"^teacher\.steps lists a step twice: \['explain', 'explain'\]$",
        ),
        ({"model": "m", "timeout_s": 0}, r"^teacher\.timeout_s must be a number ≥ 0\.001; got 0$"),
        (
            {"model": "m", "max_new_tokens": {"explain": 1.5}},
            r"^teacher\.max_new_tokens\.explain must be a whole number ≥ 1; got 1\.5$",
        ),
    ],
)
def test_a_bad_teacher_table_names_the_key_and_accepted_values(
    table: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(ConfigError, match=message):
        teacher_config_from_toml({"teacher": table})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, r"data.train is required"),
        ({"train": "t.jsonl", "format": "csv"}, r"data\.format must be one of 'auto', 'cos_e'"),
        ({"train": "t.jsonl", "validation_fraction": 1.0}, r"data.validation_fraction must be"),
        (
            {"train": "t.jsonl", "train_limit": 0},
            r"data\.train_limit must be a whole number ≥ 1; got 0",
        ),
        ({"train": "t.jsonl", "shuffle": True}, r"unknown key 'data\.shuffle'"),
        ({"train": ""}, r"^data\.train must be a path \(a non-empty string\); got ''$"),
        ({"train": 3}, r"^data\.train must be a path; got 3$"),
    ],
)
def test_a_bad_data_table_names_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        data_config_from_toml({"data": table})


def test_the_openai_model_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "served-llama")

    assert teacher_config_from_toml({"backend": "openai"}).model == "served-llama"
    assert teacher_config_from_toml({"backend": "openai", "model": "m"}).model == "m"


def test_an_import_teacher_does_not_build_a_generating_backend() -> None:
    from distillation.teachers import teacher_backend_build

    with pytest.raises(ConfigError, match="does not generate; use 'hf' or 'openai'"):
        teacher_backend_build(TeacherConfig(backend="import", source=Path("outputs.jsonl")))


def test_a_teacher_built_in_code_is_checked_like_one_read_from_a_file() -> None:
    with pytest.raises(ValidationError, match=r"teacher\.model is required"):
        TeacherConfig(backend="hf")
    teacher = TeacherConfig(model="m", steps=("counterfactual", "explain"))
    assert teacher.steps == ("explain", "counterfactual")
    with pytest.raises(FrozenInstanceError):
        teacher.model = "other"  # type: ignore[misc]


def test_a_table_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[teacher\] must be a table"):
        teacher_config_from_toml({"teacher": "hf"})
