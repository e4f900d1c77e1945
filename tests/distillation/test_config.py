from __future__ import annotations

from pathlib import Path

import pytest

from distillation.config import run_config_from_dict, run_config_load
from distillation.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _minimal(**tables) -> dict:
    config = {
        "run": {"name": "t"},
        "data": {"train": "questions.jsonl"},
        "teacher": {"backend": "import", "source": "teacher.jsonl"},
        "students": [{"model": "tiny-t5", "method": "mt", "data_variant": "original"}],
    }
    config.update(tables)
    return config


def _load(table: dict):
    return run_config_from_dict(table, base_dir=Path("/project"))


def test_the_demo_config_has_the_four_study_conditions():
    config = run_config_load(ROOT / "configs" / "demo.toml", base_dir=ROOT)
    assert [s.condition for s in config.students] == [
        "MT:original",
        "CF:original",
        "MT+CF:original",
        "MT+CF:revised",
    ]
    assert config.output_dir == ROOT / "runs" / "demo"
    assert config.data.train == ROOT / "distillation" / "demo_data" / "questions.jsonl"
    assert config.study.slug == "demo"
    assert config.study.live


def test_the_paper_config_trains_two_sizes_three_methods_two_variants_five_seeds():
    config = run_config_load(ROOT / "configs" / "paper-cqa.toml", base_dir=ROOT)
    assert config.training.steps == 5000
    assert {(s.size, s.method, s.data_variant) for s in config.students} == {
        (size, method, variant)
        for size in ("base", "large")
        for method in ("mt", "cf", "mt+cf")
        for variant in ("original", "revised")
    }
    assert all(s.seeds == (0, 1, 2, 3, 4) for s in config.students)
    assert len([s for s in config.students if s.in_study]) == 4


def test_defaults_follow_the_paper():
    config = _load(_minimal())
    assert config.training.learning_rate == 5e-5
    assert (config.training.alpha, config.training.gamma) == (0.5, 0.5)
    assert config.students[0].seeds == (0,)
    assert config.output_dir == Path("/project/runs/t")
    assert config.data.train == Path("/project/questions.jsonl")


def test_an_unknown_training_key_is_named_with_the_accepted_keys():
    with pytest.raises(ConfigError, match=r"unknown key training\.stepz; accepted keys: .*steps"):
        _load(_minimal(training={"stepz": 10}))


def test_a_bad_method_names_the_entry_and_the_accepted_values():
    students = [{"model": "tiny-t5", "method": "multitask", "data_variant": "original"}]
    with pytest.raises(ConfigError, match=r"students\[1\]\.method = 'multitask'.*mt, cf, mt\+cf"):
        _load(_minimal(students=students))


def test_a_bad_data_variant_names_the_accepted_values():
    students = [{"model": "tiny-t5", "method": "mt", "data_variant": "fixed"}]
    with pytest.raises(ConfigError, match=r"data_variant.*original, revised"):
        _load(_minimal(students=students))


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"students": []}, r"\[\[students\]\]"),
        ({"run": {"name": "a b"}}, r"run\.name"),
        ({"training": {"steps": 0}}, r"training\.steps must be at least 1"),
        ({"training": {"alpha": 2}}, r"training\.alpha"),
        ({"training": {"mixed_precision": "fp8"}}, r"no, bf16, fp16"),
        ({"training": {"tiny_t5": {"layers": 2}}}, r"training\.tiny_t5\.layers.*num_layers"),
        ({"study": {"slug": "a/b"}}, r"study\.slug"),
        (
            {
                "students": [
                    {"model": "m", "method": "mt", "data_variant": "original", "condition": "MT"}
                ]
            },
            r"students\[1\]\.condition",
        ),
        ({"extra": {}}, r"unknown table \[extra\]"),
        ({"teacher": {"backend": "magic"}}, r"teacher\.backend"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(tables, message):
    with pytest.raises(ConfigError, match=message):
        _load(_minimal(**tables))


def test_two_students_entering_the_study_under_one_condition_are_refused():
    students = [
        {"model": "tiny-t5", "method": "mt", "data_variant": "original"},
        {"model": "other", "method": "mt", "data_variant": "original"},
    ]
    with pytest.raises(ConfigError, match="condition 'MT:original'"):
        _load(_minimal(students=students))


def test_seeds_must_be_distinct_integers():
    students = [{"model": "tiny-t5", "method": "mt", "data_variant": "original", "seeds": [1, 1]}]
    with pytest.raises(ConfigError, match="seed twice"):
        _load(_minimal(students=students))


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_numpy_and_torch_cannot_take_is_refused(seed):
    students = [{"model": "tiny-t5", "method": "mt", "data_variant": "original", "seeds": [seed]}]
    with pytest.raises(ConfigError, match=r"students\[1\]\.seeds must be integers from 0"):
        _load(_minimal(students=students))


def test_a_file_that_is_not_toml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[run\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        run_config_load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        run_config_load(tmp_path / "missing.toml")
