from __future__ import annotations

import doctest
import tomllib
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest
from pydantic import ValidationError

import distillation.config
import distillation.teacher_config
import studyformats.config_messages
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
    with pytest.raises(
        ConfigError, match=r"unknown key 'analysis\.plans'; accepted keys in \[analysis\]: plan$"
    ):
        _load(_minimal(analysis={"plans": "paper"}))


def test_an_unknown_training_key_is_named_with_the_accepted_keys():
    with pytest.raises(
        ConfigError, match=r"unknown key 'training\.stepz'; accepted keys in \[training\]: steps, "
    ):
        _load(_minimal(training={"stepz": 10}))


def test_a_bad_method_names_the_entry_and_the_accepted_values():
    students = [{"model": "tiny-t5", "method": "multitask", "data_variant": "original"}]
    with pytest.raises(
        ConfigError,
        match=r"students\[1\]\.method must be one of 'mt', 'cf', 'mt\+cf'; got 'multitask'$",
    ):
        _load(_minimal(students=students))


def test_a_bad_data_variant_names_the_accepted_values():
    students = [{"model": "tiny-t5", "method": "mt", "data_variant": "fixed"}]
    with pytest.raises(
        ConfigError, match=r"students\[1\]\.data_variant must be .*'original', 'revised'"
    ):
        _load(_minimal(students=students))


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"students": []}, r"\[\[students\]\]"),
        ({"run": {"name": "a b"}}, r"run\.name"),
        ({"training": {"steps": 0}}, r"training\.steps must be a whole number ≥ 1; got 0"),
        ({"training": {"alpha": 2}}, r"training\.alpha"),
        ({"training": {"beta": 1.0}}, r"training\.beta must be strictly between 0 and 1"),
        (
            {"training": {"selection": "best"}},
            r"training\.selection must be one of 'last', 'best_validation'; got 'best'",
        ),
        (
            {"training": {"factual_explanation": "gold"}},
            r"training\.factual_explanation must be one of 'variant', 'counterfactual_prompt'",
        ),
        (
            {"training": {"max_truncated_fraction": 2}},
            r"max_truncated_fraction must be a number ≥ 0 and ≤ 1",
        ),
        (
            {"training": {"per_device_batch_size": 0}},
            r"per_device_batch_size must be a whole number ≥ 1",
        ),
        ({"training": {"mixed_precision": "fp8"}}, r"'no', 'bf16', 'fp16'; got 'fp8'"),
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
        ({"extra": {}}, r"unknown key 'extra'; accepted keys: run, data, teacher"),
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


QUESTIONNAIRE_TOML = """\
name = "faith-7"
[scale]
points = 7
labels = {"1" = "Not at all", "7" = "Completely"}
[[dimensions]]
key = "faithfulness"
label = "Faithfulness"
statement = "The explanation reflects how the answer was reached."
"""


def test_the_study_questionnaire_is_a_stored_name_or_a_file_beside_the_config(tmp_path):
    assert _load(_minimal()).study.questionnaire is None
    assert _load(_minimal(study={"questionnaire": "faith-7"})).study.questionnaire == "faith-7"
    assert _load(_minimal(study={"questionnaire": "faith-7@2"})).study.questionnaire == (
        "faith-7@2"
    )
    (tmp_path / "instruments").mkdir()
    (tmp_path / "instruments" / "faith.toml").write_text(QUESTIONNAIRE_TOML, encoding="utf-8")
    config = run_config_from_dict(
        _minimal(study={"questionnaire": "instruments/faith.toml"}), base_dir=tmp_path
    )
    assert config.study.questionnaire == str(tmp_path / "instruments" / "faith.toml")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Faith 7", r"^study\.questionnaire = 'Faith 7' is neither a questionnaire's NAME"),
        ("faith-7@0", r"^study\.questionnaire = 'faith-7@0' is neither"),
        ("absent.toml", r"^study\.questionnaire: no questionnaire file .*absent\.toml$"),
        ("bad.toml", r"^study\.questionnaire .*bad\.toml: dimensions: the key 'x' is used more"),
    ],
)
def test_a_bad_study_questionnaire_is_named_in_one_line(tmp_path, value, message):
    dimension = '[[dimensions]]\nkey = "x"\nlabel = "X"\nstatement = "X."\n'
    (tmp_path / "bad.toml").write_text(
        QUESTIONNAIRE_TOML.replace('name = "faith-7"', 'name = "bad"') + dimension + dimension,
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=message) as caught:
        run_config_from_dict(_minimal(study={"questionnaire": value}), base_dir=tmp_path)
    assert "\n" not in str(caught.value)


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


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            {"run": {"name": "t", "colour": 1}},
            r"^unknown key 'run\.colour'; accepted keys in \[run\]: name, output_dir, seed$",
        ),
        (
            {"data": {"train": "q.jsonl", "colour": 1}},
            r"^unknown key 'data\.colour'; accepted keys in \[data\]: train, test, format, ",
        ),
        (
            {"teacher": {"backend": "import", "source": "t.jsonl", "colour": 1}},
            r"^unknown key 'teacher\.colour'; accepted keys in \[teacher\]: backend, model, ",
        ),
        (
            {"teacher": {"model": "m", "max_new_tokens": {"summarise": 64}}},
            r"^unknown key 'teacher\.max_new_tokens\.summarise'; accepted keys in "
            r"\[teacher\.max_new_tokens\]: explain, critique, revise, counterfactual$",
        ),
        (
            {"training": {"colour": 1}},
            r"^unknown key 'training\.colour'; accepted keys in \[training\]: steps, batch_size, ",
        ),
        (
            {"training": {"tiny_t5": {"colour": 1}}},
            r"^unknown key 'training\.tiny_t5\.colour'; accepted keys in \[training\.tiny_t5\]: "
            r"d_model, d_ff, num_layers, num_heads, d_kv, vocab_size, dropout_rate$",
        ),
        (
            {
                "students": [
                    {"model": "tiny-t5", "method": "mt", "data_variant": "original"},
                    {"model": "tiny-t5", "method": "cf", "data_variant": "original", "colour": 1},
                ]
            },
            r"^unknown key 'students\[2\]\.colour'; accepted keys in \[students\[2\]\]: model, ",
        ),
        (
            {"study": {"colour": 1}},
            r"^unknown key 'study\.colour'; accepted keys in \[study\]: slug, title, "
            r"completion_code, per_condition, live, plan, questionnaire$",
        ),
        (
            {"analysis": {"colour": 1}},
            r"^unknown key 'analysis\.colour'; accepted keys in \[analysis\]: plan$",
        ),
        (
            {"colour": {}},
            r"^unknown key 'colour'; accepted keys: run, data, teacher, students, training, "
            r"study, analysis$",
        ),
    ],
)
def test_an_unknown_key_in_any_table_is_named_with_that_tables_keys(tables, message):
    with pytest.raises(ConfigError, match=message):
        _load(_minimal(**tables))


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"run": {"name": "t", "seed": "0"}}, r"^run\.seed must be a whole number; got '0'$"),
        (
            {"data": {"train": "q.jsonl", "split_seed": 1.5}},
            r"^data\.split_seed must be a whole number; got 1\.5$",
        ),
        (
            {"teacher": {"model": "m", "do_sample": "yes"}},
            r"^teacher\.do_sample must be true or false; got 'yes'$",
        ),
        (
            {"teacher": {"model": "m", "stop": "\n"}},
            r"^teacher\.stop must be a list of non-empty strings; got '\\n'$",
        ),
        (
            {"training": {"learning_rate": "fast"}},
            r"^training\.learning_rate must be a number > 0; got 'fast'$",
        ),
        ({"training": {"steps": True}}, r"^training\.steps must be a whole number ≥ 1; got true$"),
        (
            {"training": {"tiny_t5": {"d_model": "64"}}},
            r"^training\.tiny_t5\.d_model must be a whole number; got '64'$",
        ),
        ({"training": 3}, r"^training must be a table; got 3$"),
        (
            {
                "students": [
                    {"model": "tiny-t5", "method": "mt", "data_variant": "original"},
                    {"model": "tiny-t5", "method": "cf", "data_variant": "original", "in_study": 1},
                ]
            },
            r"^students\[2\]\.in_study must be true or false; got 1$",
        ),
        ({"study": {"live": "true"}}, r"^study\.live must be true or false; got 'true'$"),
        ({"analysis": {"plan": 3}}, r"^analysis\.plan must be a string; got 3$"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_with_the_type_the_key_takes(tables, message):
    with pytest.raises(ConfigError, match=message):
        _load(_minimal(**tables))


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            {"training": {"warmup_steps": -1}},
            r"^training\.warmup_steps must be a whole number ≥ 0; got -1$",
        ),
        (
            {"training": {"max_input_length": 4}},
            r"^training\.max_input_length must be a whole number ≥ 8; got 4$",
        ),
        (
            {"teacher": {"model": "m", "concurrency": 0}},
            r"^teacher\.concurrency must be a whole number ≥ 1; got 0$",
        ),
        (
            {"teacher": {"model": "m", "contrastive_alpha": 1}},
            r"^teacher\.contrastive_alpha must be a number ≥ 0 and < 1; got 1$",
        ),
        (
            {"data": {"train": "q.jsonl", "validation_fraction": 0}},
            r"^data\.validation_fraction must be a number > 0 and < 1; got 0$",
        ),
        ({"study": {"per_condition": 0}}, r"^study\.per_condition must be a whole number ≥ 1"),
        (
            {"students": [{"model": "m", "method": "mt", "data_variant": "original", "seeds": []}]},
            r"^students\[1\]\.seeds must be integers from 0 to 2\*\*32 - 1, in a non-empty list",
        ),
        (
            {"training": {"tiny_t5": {"vocab_size": 50}}},
            r"^training\.tiny_t5\.vocab_size must be at least 100, got 50$",
        ),
    ],
)
def test_a_value_out_of_range_is_named_with_the_range(tables, message):
    with pytest.raises(ConfigError, match=message):
        _load(_minimal(**tables))


def test_a_missing_key_is_named_with_what_it_takes():
    with pytest.raises(ConfigError, match=r"^run\.name is required: 1-100 letters"):
        _load(_minimal(run={}))
    with pytest.raises(ConfigError, match=r"^students\[1\]\.method is required: one of 'mt', "):
        _load(_minimal(students=[{"model": "m", "data_variant": "original"}]))
    with pytest.raises(ConfigError, match=r"^teacher is required: a table$"):
        _load({key: value for key, value in _minimal().items() if key != "teacher"})


def test_one_mistake_is_one_problem_not_a_cascade_of_derived_ones():
    student = {"model": "tiny-t5", "method": "multitask", "data_variant": "original"}
    with pytest.raises(ConfigError) as caught:
        _load(_minimal(students=[{**student, "seeds": [-1]}]))
    assert str(caught.value).endswith("(and 1 more problem(s))")  # method and seeds, no more


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_reads_back_the_same(path):
    config = run_config_load(path, base_dir=ROOT)
    assert config.source == tomllib.loads(path.read_text(encoding="utf-8"))
    assert run_config_from_dict(config.source, base_dir=ROOT) == config
    # A checked config checks again as itself: its paths are resolved, its defaults filled in.
    assert replace(config) == config
    assert replace(config.training) == config.training
    assert [replace(student) for student in config.students] == list(config.students)


def test_the_config_is_checked_when_it_is_built_and_cannot_change_afterwards():
    config = _load(_minimal())
    with pytest.raises(ValidationError):
        replace(config.training, steps=0)
    with pytest.raises(ValidationError):
        replace(config.students[0], study_seed=7)
    with pytest.raises(FrozenInstanceError):
        config.training.steps = 10  # type: ignore[misc]


def test_a_toml_syntax_error_keeps_its_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[run]\nname = "t"\nseed = \n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML: .*line 3"):
        run_config_load(path)


def test_relative_paths_resolve_against_the_base_folder_and_absolute_ones_stay():
    config = _load(
        _minimal(
            run={"name": "t", "output_dir": "out"},
            data={"train": "/data/q.jsonl", "test": "held.jsonl"},
            teacher={"backend": "import", "source": "t.jsonl", "prompts_dir": "prompts"},
        )
    )
    assert config.output_dir == Path("/project/out")
    assert (config.data.train, config.data.test) == (
        Path("/data/q.jsonl"),
        Path("/project/held.jsonl"),
    )
    assert (config.teacher.source, config.teacher.prompts_dir) == (
        Path("/project/t.jsonl"),
        Path("/project/prompts"),
    )
    elsewhere = run_config_from_dict(_minimal(), base_dir=Path("/p"), runs_dir=Path("/runs"))
    assert elsewhere.output_dir == Path("/runs/t")


@pytest.mark.parametrize(
    "module",
    [distillation.config, distillation.teacher_config, studyformats.config_messages],
    ids=lambda module: module.__name__,
)
def test_the_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
