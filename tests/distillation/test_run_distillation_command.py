from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from distillation.models import DistillationRun
from studyapp.models import Study
from tests.distillation.demo_support import demo_config_write

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs_dir(tmp_path, settings):
    settings.RUNS_DIR = tmp_path / "runs"
    return settings.RUNS_DIR


@pytest.mark.django_db
def test_the_demo_config_ends_with_a_live_study_and_a_recorded_run(runs_dir, demo_run):
    # The students come trained, tested and explained from the session's demo run; the command
    # makes the accuracy tables, records the run and opens the study in the database.
    demo_run.copy(runs_dir / "demo", without=["accuracy.csv", "study.json"])
    out = StringIO()
    call_command("run_distillation", "--config", str(demo_run.config_path), stdout=out)
    study = Study.objects.get(slug="demo")
    assert study.status == Study.Status.LIVE
    assert sorted(study.conditions.values_list("name", flat=True)) == [
        "CF:original",
        "MT+CF:original",
        "MT+CF:revised",
        "MT:original",
    ]
    run = DistillationRun.objects.get()
    assert run.status == DistillationRun.Status.SUCCEEDED
    assert run.output_dir == str(runs_dir / "demo")
    assert run.metrics["stages_run"] == ["evaluate", "study"]
    assert len(run.metrics["accuracy"]) == 4
    assert run.finished_at is not None
    assert (runs_dir / "demo" / "accuracy.csv").is_file()
    assert "study 'demo' is ready at /s/demo/" in out.getvalue()

    # A second invocation finds everything done: nothing is redone, the study is unchanged, and
    # no empty record is added; the output says so.
    out = StringIO()
    call_command("run_distillation", "--config", str(demo_run.config_path), stdout=out)
    assert list(DistillationRun.objects.values_list("pk", flat=True)) == [run.pk]
    assert "was already complete" in out.getvalue()
    assert "no run record was added" in out.getvalue()
    assert Study.objects.count() == 1

    # A rerun that does some work (here the study stage under a new slug) is recorded, with the
    # stages it skipped.
    call_command("run_distillation", "--config", str(demo_run.config_path), "--study", "demo-2")
    resumed = DistillationRun.objects.order_by("-id").first()
    assert resumed.pk != run.pk
    assert resumed.metrics["stages_run"] == ["study"]
    assert "train" in resumed.metrics["stages_skipped"]


@pytest.mark.django_db
def test_the_study_option_names_the_study(runs_dir, demo_run):
    demo_run.copy(runs_dir / "demo")
    call_command(
        "run_distillation",
        "--config",
        str(demo_run.config_path),
        "--study",
        "pilot-1",
        stdout=StringIO(),
    )
    assert Study.objects.filter(slug="pilot-1").exists()


@pytest.mark.django_db
def test_the_paper_config_passes_a_dry_run_without_running_anything(runs_dir):
    out = StringIO()
    call_command(
        "run_distillation",
        "--config",
        str(ROOT / "configs" / "paper-cqa.toml"),
        "--dry-run",
        stdout=out,
    )
    text = out.getvalue()
    assert (
        len(re.findall(r"to do\s+train\s+", text)) == 72
    )  # 2 sizes x 3 methods x 2 variants x 6 seeds
    assert "base-mt_cf-revised seed 5" in text
    assert "create or update study 'paper-cqa'" in text
    assert "Differences from the paper's recipe: none" in text
    assert (
        "batch: 64 examples per optimiser step = 8 per device × 8 accumulation step(s) "
        "× 1 process(es)"
    ) in text
    assert "mt+cf (predict 0.25, explain 0.25, factual 0.25, counterfactual 0.25)" in text
    assert "base-mt_cf-revised: seed 0, as condition MT+CF:revised" in text
    assert not DistillationRun.objects.exists()
    assert not (runs_dir / "paper-cqa").exists()


@pytest.mark.django_db
def test_the_demo_dry_run_lists_its_differences_from_the_paper(runs_dir):
    out = StringIO()
    call_command("run_distillation", "--dry-run", stdout=out)
    text = out.getvalue()
    listed = text.split("Differences from the paper's recipe (", 1)[1].split("Run 'demo'")[0]
    for expected in (
        "students.model: missing google/t5-v1_1-base, google/t5-v1_1-large; not in the paper "
        "tiny-t5",
        "students.seeds = [[0]] (paper: [[0, 1, 2, 3, 4, 5]]",
        "training.steps = 240 (paper: 5000",
        "training.batch_size = 8 (paper: 64",
        "training.factual_explanation = 'variant' (paper: 'counterfactual_prompt'",
        "training.max_truncated_fraction = 0.25 (paper: at most 0.01",
        "data.train_limit = 48 (paper: none",
    ):
        assert expected in listed, expected
    assert not runs_dir.exists()


@pytest.mark.django_db
def test_a_batch_the_launch_cannot_split_is_a_command_error(tmp_path, runs_dir, monkeypatch):
    monkeypatch.setattr("distillation.management.commands.run_distillation._processes", lambda: 3)
    with pytest.raises(
        CommandError, match=r"training\.batch_size = 8 cannot be shared equally by 3"
    ):
        call_command("run_distillation", "--dry-run", stdout=StringIO())


@pytest.mark.django_db
def test_a_bad_config_key_is_a_command_error_naming_it(tmp_path, runs_dir):
    path = demo_config_write(tmp_path, **{"batch_size = 8": "batchsize = 8"})
    with pytest.raises(CommandError, match=r"training\.batchsize.*accepted keys"):
        call_command("run_distillation", "--config", str(path), stdout=StringIO())
    assert not DistillationRun.objects.exists()


@pytest.mark.django_db
def test_a_failing_run_is_recorded_as_failed_with_its_error(tmp_path, runs_dir):
    path = demo_config_write(
        tmp_path,
        **{
            'source = "distillation/demo_data/teacher_outputs.jsonl"': (
                f'source = "{tmp_path / "missing.jsonl"}"'
            )
        },
    )
    with pytest.raises(CommandError, match=r"missing\.jsonl"):
        call_command("run_distillation", "--config", str(path), stdout=StringIO())
    run = DistillationRun.objects.get()
    assert run.status == DistillationRun.Status.FAILED
    assert "missing.jsonl" in run.error


@pytest.mark.django_db
def test_a_bad_study_slug_is_refused_before_any_work(runs_dir):
    with pytest.raises(CommandError, match="--study must be letters, digits, '-' or '_'"):
        call_command("run_distillation", "--study", "my study", stdout=StringIO())
    assert not DistillationRun.objects.exists()
    assert not runs_dir.exists()


@pytest.mark.django_db
def test_an_unknown_stage_is_a_command_error(runs_dir):
    with pytest.raises(CommandError, match="accepted stages"):
        call_command("run_distillation", "--stages", "data", "fit", stdout=StringIO())
