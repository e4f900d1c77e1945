from __future__ import annotations

import csv
import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from distillation.config import run_config_from_dict, run_config_load
from distillation.errors import ConfigError, DataError
from distillation.pipeline import accuracy_table, pipeline_plan, pipeline_run
from studyapp.importing import explanations_read
from tests.distillation.students_support import TINY

ROOT = Path(__file__).resolve().parents[2]


def _quick(config, output_dir: Path, **training):
    """The configuration cut down to a few steps of a 1-layer model, in a temporary folder."""
    settings = {
        "steps": 2,
        "eval_every": 2,
        "checkpoint_every": 2,
        "tiny_t5": replace(TINY, vocab_size=600),
        "explanation_max_new_tokens": 12,
        "max_truncated_fraction": 1.0,  # a model trained for two steps seldom stops by itself
        **training,
    }
    return replace(config, output_dir=output_dir, training=replace(config.training, **settings))


@pytest.fixture
def demo(tmp_path):
    return _quick(run_config_load(ROOT / "configs" / "demo.toml", base_dir=ROOT), tmp_path / "demo")


def test_the_demo_runs_end_to_end_and_resumes_as_complete(demo_run, tmp_path):
    # The session's demo run is this test's first run: every stage ran, from an empty folder.
    summary, messages, created = demo_run.summary, demo_run.messages, demo_run.created
    assert summary.stages_run == ["data", "teacher", "train", "evaluate", "explain", "study"]
    out = demo_run.output_dir
    counts = json.loads((out / "data" / "DONE.json").read_text())
    assert counts["test"] == 16
    assert counts["train"] + counts["validation"] == 48
    test_ids = {json.loads(line)["id"] for line in (out / "data" / "test.jsonl").open()}
    train_ids = {json.loads(line)["id"] for line in (out / "data" / "train.jsonl").open()}
    assert not test_ids & train_ids
    with (out / "accuracy.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["data_variant"]) for r in rows] == [
        ("mt", "original"),
        ("cf", "original"),
        ("mt+cf", "original"),
        ("mt+cf", "revised"),
    ]
    records = explanations_read((out / "explanations.jsonl").read_text().splitlines())
    assert {r.question_id for r in records} <= test_ids
    assert created == ((out / "explanations.jsonl", "demo"),)
    metrics = json.loads(
        (out / "students" / "tiny-t5-mt-original" / "seed-0" / "metrics.json").read_text()
    )
    assert metrics["split"] == "test"
    assert metrics["total"] == 16
    assert (metrics["selection"], metrics["selected_step"]) == ("last", 2)
    assert metrics["truncation"]["cap"] == "training.answer_max_new_tokens"
    assert metrics["truncated"] == metrics["truncation"]["truncated"]
    assert all(isinstance(r["truncated"], bool) for r in _records(out / "explanations.jsonl"))
    # The demo's teacher file has an empty revision: it is skipped and said so, not trained on.
    assert any("no factual target" in m for m in messages if "revised" in m)

    # The second run, on a copy of the folder, finds every stage done.
    demo = replace(demo_run.config, output_dir=demo_run.copy(tmp_path / "demo"))
    created_again: list[tuple[Path, str]] = []

    def study_create(path, study):
        created_again.append((path, study.slug))
        return study.slug

    again = pipeline_run(demo, log=lambda m: None, study_create=study_create, command=["test"])
    assert again.stages_run == []
    assert created_again == []
    assert all(step.done for step in pipeline_plan(demo))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _demo_table(output_dir: Path, students: list[str], **training) -> dict:
    """configs/demo.toml as a table, cut to two steps of a 1-layer model and a few students."""
    table = tomllib.loads((ROOT / "configs" / "demo.toml").read_text())
    table["run"]["output_dir"] = str(output_dir)
    table["training"].update(
        {
            "steps": 2,
            "eval_every": 2,
            "checkpoint_every": 2,
            "tiny_t5": {**table["training"]["tiny_t5"], "d_model": 32, "num_layers": 1},
            "explanation_max_new_tokens": 12,
            "max_truncated_fraction": 1.0,  # a model trained for two steps seldom stops
            **training,
        }
    )
    table["students"] = [s for s in table["students"] if s["method"] in students]
    return table


def _from_table(table: dict):
    return run_config_from_dict(table, base_dir=ROOT)


def test_too_many_cut_outputs_fail_the_run_and_a_raised_cap_reruns_only_generation(tmp_path):
    table = _demo_table(tmp_path / "run", ["mt"], answer_max_new_tokens=1)
    table["training"]["max_truncated_fraction"] = 0.0
    with pytest.raises(
        DataError, match=r"hit the cap of 1 new tokens.*raise training\.answer_max_new_tokens"
    ):
        pipeline_run(_from_table(table), log=lambda m: None, command=["test"])
    seed_dir = tmp_path / "run" / "students" / "tiny-t5-mt-original" / "seed-0"
    assert not (seed_dir / "metrics.json").exists()  # nothing is written for a failed check
    trained_at = (seed_dir / "training.json").stat().st_mtime_ns

    table["training"].update(answer_max_new_tokens=16, max_truncated_fraction=1.0)
    summary = pipeline_run(_from_table(table), log=lambda m: None, command=["test"])

    assert "train" in summary.stages_skipped  # the weights are kept
    assert (seed_dir / "training.json").stat().st_mtime_ns == trained_at
    metrics = json.loads((seed_dir / "metrics.json").read_text())
    assert metrics["generation"] == {
        "answer_max_new_tokens": 16,
        "explanation_max_new_tokens": table["training"]["explanation_max_new_tokens"],
    }
    assert 0 <= metrics["truncated"] <= 16
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["config"]["training"]["answer_max_new_tokens"] == 16


def test_the_study_seed_writes_the_explanations(tmp_path):
    table = _demo_table(tmp_path / "run", ["cf"])
    table["students"][0].update(seeds=[0, 1], study_seed=1)
    pipeline_run(
        _from_table(table),
        stages=["data", "teacher", "train", "evaluate", "explain"],
        log=lambda m: None,
        command=["test"],
    )
    student = tmp_path / "run" / "students" / "tiny-t5-cf-original"
    assert json.loads((student / "explain.json").read_text())["seed"] == 1
    assert {r["run"] for r in _records(student / "explanations.jsonl")} == {
        "demo/tiny-t5-cf-original/seed-1"
    }


def test_gold_answer_explanations_missing_from_the_store_are_named(tmp_path):
    table = _demo_table(tmp_path / "run", ["mt+cf"], factual_explanation="counterfactual_prompt")
    with pytest.raises(
        DataError, match=r"no explanation of the gold answer.*factual_explanation"
    ) as caught:
        pipeline_run(_from_table(table), log=lambda m: None, command=["test"])
    assert str(tmp_path / "run" / "teacher" / "DONE.json") in str(caught.value)
    assert not (tmp_path / "run" / "students").exists()


def test_a_run_folder_refuses_a_different_configuration(demo):
    pipeline_run(demo, stages=["data"], log=lambda message: None, command=["test"])
    changed = replace(demo, seed=5, source={**demo.source, "run": {"name": "demo", "seed": 5}})
    with pytest.raises(ConfigError, match="different configuration"):
        pipeline_run(changed, stages=["data"], log=lambda message: None, command=["test"])


def test_only_the_generation_settings_may_change_within_a_run(demo):
    pipeline_run(demo, stages=["data"], log=lambda message: None, command=["test"])
    training = {**demo.source["training"], "explanation_max_new_tokens": 64}
    raised = replace(demo, source={**demo.source, "training": training})
    pipeline_run(raised, stages=["data"], log=lambda message: None, command=["test"])
    training = {**training, "learning_rate": 1e-3}
    changed = replace(demo, source={**demo.source, "training": training})
    with pytest.raises(ConfigError, match=r"different configuration.*explanation_max_new_tokens"):
        pipeline_run(changed, stages=["data"], log=lambda message: None, command=["test"])


def test_the_plan_lists_every_unit_of_work_without_running_it(demo):
    plan = pipeline_plan(demo)
    assert [step.stage for step in plan].count("train") == 4
    assert not any(step.done for step in plan)
    assert not demo.output_dir.exists()


def test_an_unknown_stage_is_refused(demo):
    with pytest.raises(ConfigError, match="unknown stage 'fit'"):
        pipeline_plan(demo, stages=["fit"])


def test_the_accuracy_table_gives_mean_and_sample_sd_over_seeds():
    rows = [
        {"model": "m", "size": "s", "method": "mt", "data_variant": "original", "accuracy": a}
        for a in (0.5, 0.6, 0.7)
    ] + [{"model": "m", "size": "s", "method": "cf", "data_variant": "original", "accuracy": 0.4}]
    table = accuracy_table(rows)
    assert table[0]["seeds"] == 3
    assert table[0]["accuracy_mean"] == pytest.approx(0.6)
    assert table[0]["accuracy_sd"] == pytest.approx(0.1)
    assert table[1]["accuracy_sd"] == ""


@pytest.mark.slow
def test_a_short_run_on_real_teacher_outputs_trains_every_method_and_variant(tmp_path, shared_data):
    students = [
        {"model": "tiny-t5", "method": method, "data_variant": variant}
        for method in ("mt", "cf", "mt+cf")
        for variant in ("original", "revised")
    ]
    config = run_config_from_dict(
        {
            "run": {"name": "real"},
            "data": {
                "train": str(shared_data / "cqa" / "train.jsonl"),
                "test": str(shared_data / "cqa" / "validation.jsonl"),
                "train_limit": 200,
                "test_limit": 12,
            },
            "teacher": {
                "backend": "import",
                # The first shard holds the first 975 training questions, which covers 200.
                "source": str(shared_data / "teacher" / "llama2-13b" / "cqa-train" / "shard_0"),
            },
            "training": {"max_input_length": 128, "max_target_length": 64},
            "students": students,
        },
        base_dir=tmp_path,
    )
    config = _quick(config, tmp_path / "real", validation_limit=8)
    summary = pipeline_run(
        config,
        stages=["data", "teacher", "train", "evaluate", "explain"],
        log=lambda m: None,
        command=["test"],
    )
    assert len(summary.accuracy) == 6
    assert all(0.0 <= row["accuracy_mean"] <= 1.0 for row in summary.accuracy)
    for student in config.students:
        lines = (config.output_dir / "students" / student.slug / "explanations.jsonl").read_text()
        assert lines.strip(), student.slug
    records = explanations_read((config.output_dir / "explanations.jsonl").read_text().splitlines())
    assert {r.condition for r in records} <= {s.condition for s in config.students}


def test_transformers_bars_are_off_during_a_run_and_restored_after(demo, monkeypatch):
    from transformers.utils import logging as hf_logging

    from distillation import pipeline

    seen: list[bool] = []

    def run_recording(self, stages):
        seen.append(hf_logging.is_progress_bar_enabled())
        return pipeline.RunSummary(output_dir=str(demo.output_dir))

    monkeypatch.setattr(pipeline._Run, "run", run_recording)
    hf_logging.enable_progress_bar()
    pipeline_run(demo, stages=["data"], log=lambda _: None, command=["test"])
    assert seen == [False]
    assert hf_logging.is_progress_bar_enabled()
