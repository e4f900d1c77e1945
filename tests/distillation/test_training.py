from __future__ import annotations

import doctest
import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file

import distillation.training
from distillation.errors import ConfigError, DataError
from distillation.features import features_build
from distillation.students import student_load
from distillation.training import (
    BEST_DIR,
    CHECKPOINT_DIR,
    LAST_DIR,
    LOOP_STATE_FILE,
    TRAINING_FILE,
    LoopState,
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


def _train(
    setup, directory, *, seed=0, stop_after=None, validate=None, accelerator=None, **overrides
):
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
        accelerator=accelerator,
        stop_after=stop_after,
    )


def _weights(directory) -> dict[str, torch.Tensor]:
    model, _ = student_load(directory)
    return model.state_dict()


def _loop_state(directory) -> LoopState:
    return LoopState.from_json((directory / CHECKPOINT_DIR / LOOP_STATE_FILE).read_text())


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
    straight, after_resume = (
        _weights(tmp_path / "straight" / LAST_DIR),
        _weights(tmp_path / "resumed" / LAST_DIR),
    )
    for name, tensor in straight.items():
        assert torch.equal(tensor, after_resume[name]), name


def test_a_resume_with_accumulation_continues_at_the_next_micro_batch(tmp_path, setup):
    # Three passes of two examples a step: the resumed loop must pick up the data position,
    # the schedule and accelerate's count of passes where the interrupted one stopped.
    settings = {"steps": 4, "batch_size": 6, "per_device_batch_size": 2, "checkpoint_every": 2}
    _train(setup, tmp_path / "straight", warmup_steps=1, **settings)
    _train(setup, tmp_path / "resumed", warmup_steps=1, stop_after=2, **settings)
    resumed = _train(setup, tmp_path / "resumed", warmup_steps=1, **settings)
    assert resumed.resumed_from == 2
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    lrs = [
        json.loads(line)["lr"]
        for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
        if '"lr"' in line
    ]
    assert lrs == pytest.approx([1e-3, 2e-3 / 3, 1e-3 / 3, 0.0])


def test_runs_one_after_another_in_one_process_share_no_state(tmp_path, setup):
    _train(setup, tmp_path / "alone", seed=2, steps=3, checkpoint_every=3)
    # A run with accumulation in between: its setting and its model must not carry over.
    _train(setup, tmp_path / "between", seed=1, steps=3, batch_size=6, per_device_batch_size=2)
    _train(setup, tmp_path / "after", seed=2, steps=3, checkpoint_every=3)
    assert _losses(tmp_path / "after") == _losses(tmp_path / "alone")
    # The checkpoint holds this run's model only, its tied embeddings stored once.
    saved = sorted(path.name for path in (tmp_path / "after" / CHECKPOINT_DIR).iterdir())
    assert [name for name in saved if name.startswith("model")] == ["model.safetensors"]
    assert LOOP_STATE_FILE in saved


def test_a_checkpoint_of_the_earlier_format_is_refused_with_what_to_do(tmp_path, setup):
    old = tmp_path / "run" / CHECKPOINT_DIR
    old.mkdir(parents=True)
    (old / "state.pt").write_bytes(b"not read")
    with pytest.raises(DataError, match="earlier version") as caught:
        _train(setup, tmp_path / "run")
    message = str(caught.value)
    assert "\n" not in message
    assert str(old) in message
    assert "delete that folder" in message
    assert "new run folder" in message


def test_a_checkpoint_swap_cut_short_is_finished_on_resume(tmp_path, setup):
    _train(setup, tmp_path / "straight", steps=4, checkpoint_every=2)
    _train(setup, tmp_path / "run", steps=4, checkpoint_every=2, stop_after=2)
    # A crash between the two renames of a checkpoint swap leaves only the previous folder.
    checkpoint = tmp_path / "run" / CHECKPOINT_DIR
    checkpoint.rename(checkpoint.with_name(f"{CHECKPOINT_DIR}.previous"))
    resumed = _train(setup, tmp_path / "run", steps=4, checkpoint_every=2)
    assert resumed.resumed_from == 2
    assert _losses(tmp_path / "run") == _losses(tmp_path / "straight")
    assert not checkpoint.with_name(f"{CHECKPOINT_DIR}.previous").exists()


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
    kept = _weights(tmp_path / "run" / LAST_DIR)
    checkpoint = load_file(tmp_path / "run" / CHECKPOINT_DIR / "model.safetensors")
    assert checkpoint
    for name, tensor in checkpoint.items():
        assert torch.equal(tensor, kept[name]), name


def test_gradient_accumulation_consumes_several_batches_per_step(tmp_path, setup):
    # 6 examples a step in passes of 2 on one device: 3 accumulation steps.
    result = _train(
        setup, tmp_path / "run", steps=2, batch_size=6, per_device_batch_size=2, eval_every=2
    )
    assert result.steps == 2
    state = _loop_state(tmp_path / "run")
    # six examples in batches of two: three batches an epoch, so two steps of three span two epochs
    assert (state.step, state.epoch, state.position) == (2, 1, 3)


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


def test_the_examples_in_the_docstrings_hold():
    result = doctest.testmod(distillation.training)
    assert result.attempted > 0
    assert result.failed == 0
