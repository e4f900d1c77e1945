"""The GPU smoke test: its answer without a GPU, its token count, and its CPU check run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_smoke


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys) -> None:
    monkeypatch.setattr(gpu_smoke, "cuda_name", lambda: None)

    assert gpu_smoke.main([]) == 0

    output = capsys.readouterr().out
    assert output.startswith("No CUDA device")
    assert _last_json(output) == {"benchmark": "gpu_smoke", "cuda": False, "ran": False}


def test_the_token_count_covers_inputs_and_labels_of_training_passes() -> None:
    counter = gpu_smoke.TokenCounter(pad_token_id=0)
    module = torch.nn.Linear(1, 1)
    batch = {
        "attention_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
        # Start token (the pad id), then the labels shifted right: 3 and 1 label tokens.
        "decoder_input_ids": torch.tensor([[0, 7, 8], [0, 0, 0]]),
    }

    counter(module, (), batch)
    module.eval()
    counter(module, (), batch)  # evaluation passes are not training throughput

    assert counter.tokens == 4 + 4


def test_the_clock_ticks_at_whole_warm_ups(capsys) -> None:
    with pytest.raises(SystemExit):
        gpu_smoke.arguments(["--steps", "15", "--warmup-steps", "10"])
    assert "multiple of --warmup-steps" in capsys.readouterr().err


@pytest.mark.slow
def test_the_tiny_cpu_run_goes_through_both_measurements(shared_data: Path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_smoke, "cuda_name", lambda: None)
    data = shared_data / "teacher" / "llama2-13b" / "cqa-train"

    assert gpu_smoke.main(["--allow-cpu", "--tiny", "--data", str(data)]) == 0

    figures = _last_json(capsys.readouterr().out)
    assert (figures["ran"], figures["cuda"]) == (True, False)
    train = figures["train"]
    assert train["batch"].startswith("64 examples per optimiser step")
    assert train["examples"] == 200
    assert train["tokens_per_s"] > 0
    assert figures["teacher"]["new_tokens"] > 0
