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


def test_the_paper_config_trains_two_sizes_three_methods_two_variants_six_seeds():
    config = run_config_load(ROOT / "configs" / "paper-cqa.toml", base_dir=ROOT)
    assert config.training.steps == 5000
    assert {(s.size, s.method, s.data_variant) for s in config.students} == {
        (size, method, variant)
        for size in ("base", "large")
        for method in ("mt", "cf", "mt+cf")
        for variant in ("original", "revised")
    }
    assert all(s.seeds == (0, 1, 2, 3, 4, 5) for s in config.students)
    assert [s.study_seed for s in config.students if s.in_study] == [0, 0, 0, 0]
    assert config.analysis.plan == "paper"
    assert config.training.batch_split(1).line() == (
        "64 examples per optimiser step = 8 per device × 8 accumulation step(s) × 1 process(es)"
    )
    assert config.training.batch_split(4).accumulation == 2


def test_defaults_follow_the_paper():
    config = _load(_minimal())
    training = config.training
    assert training.learning_rate == 5e-5
    assert (training.alpha, training.beta, training.gamma) == (0.5, 0.5, 0.5)
    assert (training.batch_size, training.max_input_length, training.max_target_length) == (
        64,
        300,
        300,
    )
    assert (training.selection, training.factual_explanation) == ("last", "counterfactual_prompt")
    assert config.analysis.plan == "standard"
    assert config.students[0].seeds == (0,)
    assert config.students[0].study_seed == 0
    assert config.output_dir == Path("/project/runs/t")
    assert config.data.train == Path("/project/questions.jsonl")


def test_the_batch_splits_into_per_device_passes_and_accumulation():
    training = _load(_minimal(training={"batch_size": 64, "per_device_batch_size": 16})).training
    assert [
        (split.per_device, split.accumulation) for split in map(training.batch_split, (1, 2, 4))
    ] == [(16, 4), (16, 2), (16, 1)]
    whole = _load(_minimal(training={"batch_size": 8})).training
    assert (whole.batch_split(1).per_device, whole.batch_split(2).per_device) == (8, 4)
    with pytest.raises(ConfigError, match=r"accepted per_device_batch_size values here: 1, 2, 4"):
        training.batch_split(8)


def test_a_batch_that_no_pass_divides_is_refused_with_the_sizes_that_fit():
    with pytest.raises(
        ConfigError, match=r"per_device_batch_size = 24.*accepted .* 1, 2, 4, 8, 16, 32, 64"
    ):
        _load(_minimal(training={"batch_size": 64, "per_device_batch_size": 24}))


def test_the_former_accumulation_key_is_explained_in_the_new_terms():
    old = {"batch_size": 8, "gradient_accumulation_steps": 4}
    with pytest.raises(
        ConfigError, match=r"batch_size = 32 with per_device_batch_size = 8"
    ) as caught:
        _load(_minimal(training=old))
    assert "training.gradient_accumulation_steps is no longer set" in str(caught.value)


def test_the_study_seed_is_one_of_the_students_seeds():
    student = {"model": "tiny-t5", "method": "mt", "data_variant": "original", "seeds": [3, 4]}
    assert _load(_minimal(students=[student])).students[0].study_seed == 3
    assert _load(_minimal(students=[{**student, "study_seed": 4}])).students[0].study_seed == 4
    with pytest.raises(ConfigError, match=r"students\[1\]\.study_seed = 5.*accepted values: 3, 4"):
        _load(_minimal(students=[{**student, "study_seed": 5}]))


def test_the_analysis_plan_is_a_shipped_name_or_a_plan_file(tmp_path):
    assert _load(_minimal(analysis={"plan": "paper"})).analysis.plan == "paper"
    with pytest.raises(
        ConfigError, match=r"analysis\.plan = 'papr'.*accepted values: paper, standard"
    ):
        _load(_minimal(analysis={"plan": "papr"}))
    with pytest.raises(ConfigError, match=r"unknown key analysis\.plans"):
        _load(_minimal(analysis={"plans": "paper"}))


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
        ({"training": {"beta": 1.0}}, r"training\.beta must be strictly between 0 and 1"),
        (
            {"training": {"selection": "best"}},
            r"training\.selection = 'best'.*accepted values: last, best_validation",
        ),
        (
            {"training": {"factual_explanation": "gold"}},
            r"training\.factual_explanation.*variant, counterfactual_prompt",
        ),
        ({"training": {"max_truncated_fraction": 2}}, r"max_truncated_fraction must be between"),
        ({"training": {"per_device_batch_size": 0}}, r"per_device_batch_size must be at least 1"),
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


def test_a_plan_file_is_checked_when_the_configuration_is_read(tmp_path):
    shipped = ROOT / "analysis" / "plans" / "paper.toml"
    mine = tmp_path / "mine.toml"
    mine.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    config = run_config_from_dict(_minimal(analysis={"plan": "mine.toml"}), base_dir=tmp_path)
    assert config.analysis.plan == str(mine)
    broken = tmp_path / "broken.toml"
    broken.write_text("colour = 'blue'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"analysis\.plan .*broken\.toml.*colour"):
        run_config_from_dict(_minimal(analysis={"plan": "broken.toml"}), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"neither a shipped plan nor a plan file"):
        run_config_from_dict(_minimal(analysis={"plan": "absent.toml"}), base_dir=tmp_path)


def test_the_study_plan_is_a_shipped_name_or_a_plan_file():
    assert _load(_minimal(study={"plan": "paper"})).study.plan == "paper"
    assert _load(_minimal()).study.plan is None
    with pytest.raises(ConfigError, match=r"study\.plan = 'papr' is neither .* paper, standard"):
        _load(_minimal(study={"plan": "papr"}))


def test_the_paper_config_registers_the_paper_plan_on_its_study():
    config = run_config_load(ROOT / "configs" / "paper-cqa.toml", base_dir=ROOT)
    assert config.study.plan == "paper"
    assert config.analysis.plan == "paper"


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"run": {"name": "t\n"}}, "run.name"),
        ({"study": {"slug": "demo\n"}}, "study.slug"),
    ],
)
def test_names_with_a_trailing_newline_are_refused(tables, message):
    with pytest.raises(ConfigError, match=message):
        _load(_minimal(**tables))


def test_a_condition_name_with_a_trailing_newline_is_refused():
    student = {"model": "tiny-t5", "method": "mt", "data_variant": "original"}
    with pytest.raises(ConfigError, match="condition"):
        _load(_minimal(students=[{**student, "condition": "MT:x\n"}]))
