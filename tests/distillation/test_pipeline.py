from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from distillation.config import run_config_from_dict, run_config_load
from distillation.errors import ConfigError
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
        **training,
    }
    return replace(config, output_dir=output_dir, training=replace(config.training, **settings))


@pytest.fixture
def demo(tmp_path):
    return _quick(run_config_load(ROOT / "configs" / "demo.toml", base_dir=ROOT), tmp_path / "demo")


def test_the_demo_runs_end_to_end_and_resumes_as_complete(demo):
    messages: list[str] = []
    created: list[tuple[Path, str]] = []

    def study_create(path, study):
        created.append((path, study.slug))
        return study.slug

    summary = pipeline_run(demo, log=messages.append, study_create=study_create, command=["test"])
    assert summary.stages_run == ["data", "teacher", "train", "evaluate", "explain", "study"]
    out = demo.output_dir
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
    assert created == [(out / "explanations.jsonl", "demo")]
    metrics = json.loads(
        (out / "students" / "tiny-t5-mt-original" / "seed-0" / "metrics.json").read_text()
    )
    assert metrics["split"] == "test"
    assert metrics["total"] == 16
    # The demo's teacher file has an empty revision: it is skipped and said so, not trained on.
    assert any("no factual target" in m for m in messages if "revised" in m)

    again = pipeline_run(demo, log=messages.append, study_create=study_create, command=["test"])
    assert again.stages_run == []
    assert len(created) == 1
    assert all(step.done for step in pipeline_plan(demo))


def test_a_run_folder_refuses_a_different_configuration(demo):
    pipeline_run(demo, stages=["data"], log=lambda message: None, command=["test"])
    changed = replace(demo, seed=5, source={**demo.source, "run": {"name": "demo", "seed": 5}})
    with pytest.raises(ConfigError, match="different configuration"):
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
