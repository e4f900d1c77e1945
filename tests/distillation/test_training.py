from __future__ import annotations

import json
import math
import re

import pytest
import torch

from distillation.errors import ConfigError
from distillation.features import features_build
from distillation.students import student_load
from distillation.training import (
    BEST_DIR,
    LAST_DIR,
    TRAINING_FILE,
    ProgressLines,
    accelerator_create,
    duration_text,
    mixed_precision_resolve,
    selected_dir,
    student_train,
    training_complete,
)
from tests.distillation.students_support import (
    examples_make,
    model_make,
    teacher_make,
    tokenizer_make,
    training_make,
)


@pytest.fixture(scope="module")
def setup():
    examples = examples_make(6)
    teacher = teacher_make(examples)
    tokenizer = tokenizer_make(examples, teacher)
    features = features_build(
        examples, teacher, tokenizer=tokenizer, method="mt+cf", data_variant="original", seed=0
    )
    return tokenizer, features


def _losses(directory) -> list[float]:
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def _train(setup, directory, *, seed=0, stop_after=None, validate=None, **overrides):
    tokenizer, features = setup
    return student_train(
        model=model_make(tokenizer, seed=seed),
        tokenizer=tokenizer,
        features=features,
        method="mt+cf",
        training=training_make(**overrides),
        seed=seed,
        output_dir=directory,
        validate=validate or (lambda model: {"accuracy": 0.0, "loss": 1.0}),
        stop_after=stop_after,
    )


def test_two_runs_with_one_seed_give_identical_losses(tmp_path, setup):
    _train(setup, tmp_path / "a", seed=3)
    _train(setup, tmp_path / "b", seed=3)
    _train(setup, tmp_path / "c", seed=4)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert len(_losses(tmp_path / "a")) == 4
    assert _losses(tmp_path / "a") != _losses(tmp_path / "c")


def test_a_resumed_run_continues_with_the_identical_next_step_loss(tmp_path, setup):
    """Dropout is on, so this also checks that the random generators are restored."""
    _train(setup, tmp_path / "straight", steps=6, checkpoint_every=3)
    interrupted = _train(setup, tmp_path / "resumed", steps=6, checkpoint_every=3, stop_after=3)
    assert interrupted.steps == 3
    assert not training_complete(tmp_path / "resumed")
    resumed = _train(setup, tmp_path / "resumed", steps=6, checkpoint_every=3)
    assert resumed.resumed_from == 3
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    assert training_complete(tmp_path / "resumed")


def test_the_loss_falls_when_training_on_a_few_examples(tmp_path, setup):
    result = _train(setup, tmp_path / "run", steps=30, learning_rate=3e-3, eval_every=30)
    losses = _losses(tmp_path / "run")
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert math.isfinite(result.final_loss)


def test_the_best_validation_score_picks_the_saved_model(tmp_path, setup):
    scores = iter([0.2, 0.6, 0.4])
    seen_steps = []

    def validate(model):
        seen_steps.append(model.training)
        return {"accuracy": next(scores), "loss": 1.0}

    result = _train(
        setup,
        tmp_path / "run",
        steps=6,
        eval_every=2,
        validate=validate,
        selection="best_validation",
    )
    assert result.best_step == 4
    assert (result.selection, result.selected_step) == ("best_validation", 4)
    assert selected_dir(tmp_path / "run") == tmp_path / "run" / BEST_DIR
    assert not (tmp_path / "run" / LAST_DIR).exists()
    assert result.best_validation_accuracy == pytest.approx(0.6)
    assert seen_steps == [False, False, False]  # validation runs without dropout
    record = json.loads((tmp_path / "run" / TRAINING_FILE).read_text())
    assert record["best_step"] == 4
    assert (tmp_path / "run" / BEST_DIR / "config.json").is_file()
    validations = [
        json.loads(line)
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if "validation_accuracy" in line
    ]
    assert [v["step"] for v in validations] == [2, 4, 6]


def test_the_last_selection_keeps_the_final_weights_whatever_validation_says(tmp_path, setup):
    scores = iter([0.9, 0.1, 0.2])
    result = _train(
        setup,
        tmp_path / "run",
        steps=6,
        eval_every=2,
        validate=lambda model: {"accuracy": next(scores), "loss": 1.0},
        selection="last",
    )
    assert result.best_step == 2  # still recorded, but not what is evaluated
    assert (result.selection, result.selected_step) == ("last", 6)
    assert selected_dir(tmp_path / "run") == tmp_path / "run" / LAST_DIR
    assert not (tmp_path / "run" / BEST_DIR).exists()
    assert training_complete(tmp_path / "run")
    kept, _ = student_load(tmp_path / "run" / LAST_DIR)
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=False)
    for name, tensor in kept.state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name


def test_gradient_accumulation_consumes_several_batches_per_step(tmp_path, setup):
    # 6 examples a step in passes of 2 on one device: 3 accumulation steps.
    result = _train(
        setup, tmp_path / "run", steps=2, batch_size=6, per_device_batch_size=2, eval_every=2
    )
    assert result.steps == 2
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=False)
    # six examples in batches of two: three batches an epoch, so two steps of three span two epochs
    assert (state["epoch"], state["position"]) == (1, 3)


def test_cpu_training_runs_in_full_precision():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert mixed_precision_resolve("auto") == "no"
    assert mixed_precision_resolve("bf16") == "bf16"


def test_fp16_without_a_gpu_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="needs a GPU"):
        accelerator_create(training_make(mixed_precision="fp16"))


PROGRESS_LINE = re.compile(
    r"train: [\w .+-]+: step (\d+)/(\d+), loss \d+\.\d{4}, \d+\.\d{2} steps/s, "
    r"(about \d+ (s|min \d\d s|h \d\d min) left|done)"
)


def _train_logged(setup, directory, *, progress: bool, every: float, monkeypatch):
    import distillation.training as training_module

    monkeypatch.setattr(training_module, "PROGRESS_EVERY_SECONDS", every)
    tokenizer, features = setup
    lines: list[str] = []
    student_train(
        model=model_make(tokenizer, seed=0),
        tokenizer=tokenizer,
        features=features,
        method="mt+cf",
        training=training_make(steps=4, eval_every=4, checkpoint_every=4),
        seed=0,
        output_dir=directory,
        validate=lambda model: {"accuracy": 0.0, "loss": 1.0},
        progress=progress,
        log=lines.append,
        label="tiny mt+cf seed 0",
    )
    return lines


def test_without_a_terminal_progress_lines_give_step_loss_rate_and_time_left(
    tmp_path, setup, monkeypatch
):
    lines = _train_logged(
        setup, tmp_path / "run", progress=False, every=0.0, monkeypatch=monkeypatch
    )

    matches = [PROGRESS_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [(int(m[1]), int(m[2])) for m in matches] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert lines[0].startswith("train: tiny mt+cf seed 0: step 1/4")
    assert lines[-1].endswith("done")


def test_progress_lines_are_spaced_by_seconds_of_work(tmp_path, setup, monkeypatch):
    lines = _train_logged(
        setup, tmp_path / "run", progress=False, every=3600.0, monkeypatch=monkeypatch
    )

    assert len(lines) == 1  # only the last step's line within an hour
    assert lines[0].endswith("done")


def test_in_a_terminal_the_bar_replaces_the_lines(tmp_path, setup, monkeypatch):
    lines = _train_logged(
        setup, tmp_path / "run", progress=True, every=0.0, monkeypatch=monkeypatch
    )

    assert lines == []


def test_the_time_left_is_estimated_from_the_rate_so_far():
    ticks = iter([100.0, 110.0])
    lines: list[str] = []
    progress = ProgressLines(
        label="x", total=100, initial=50, log=lines.append, every=5, clock=lambda: next(ticks)
    )
    progress.update(60, 1.0)  # 10 steps in 10 s: 40 left at 1 step/s

    assert lines == ["train: x: step 60/100, loss 1.0000, 1.00 steps/s, about 40 s left"]
    assert [duration_text(s) for s in (0.4, 59, 60, 3599, 3600)] == [
        "0 s",
        "59 s",
        "1 min 00 s",
        "59 min 59 s",
        "1 h 00 min",
    ]
