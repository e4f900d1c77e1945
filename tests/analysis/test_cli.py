from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.__main__ import main
from analysis.simulate import ratings_simulate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ratings_csv(tmp_path) -> Path:
    path = tmp_path / "ratings.csv"
    ratings_simulate(12, seed=6, covariates=True).to_csv(path, index=False)
    return path


def test_it_writes_the_report_directory(ratings_csv, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        [
            str(ratings_csv),
            "--out",
            str(out),
            "--reference",
            "MT:original",
            "--drop-outliers",
            "--covariates",
            "age, gender",
            "--min-seconds-per-item",
            "3",
            "--attention-fail-threshold",
            "1",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["covariates"] == ["age", "gender"]
    assert summary["options"]["min_seconds_per_item"] == 3
    assert summary["options"]["attention_fail_threshold"] == 1
    assert summary["reference"] == "MT:original"
    assert (out / "report.html").is_file()
    assert f"wrote {out / 'report.html'}: " in capsys.readouterr().out


def test_it_analyses_the_pipelines_accuracy_runs_when_given(ratings_csv, tmp_path):
    # The distillation pipeline's accuracy_runs.csv: one row per student, seed and data variant.
    accuracy = tmp_path / "accuracy_runs.csv"
    lines = ["model,size,method,data_variant,seed,accuracy,correct,total"]
    for i, (method, variant, size, seed) in enumerate(
        (m, v, s, seed)
        for m in ("mt", "cf")
        for v in ("original", "revised")
        for s in ("small", "base")
        for seed in (1, 2)
    ):
        lines.append(f"t5-{size},{size},{method},{variant},{seed},{0.5 + 0.01 * (i % 5)},1,2")
    accuracy.write_text("\n".join(lines) + "\n")
    assert main([str(ratings_csv), "--out", str(tmp_path / "r"), "--accuracy", str(accuracy)]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    sources = [row["source"] for row in summary["accuracy"]["anova"]]
    assert sources == ["method", "size", "method:size", "Residual"]
    methods = {row["a"] for row in summary["accuracy"]["tukey"]} | {
        row["b"] for row in summary["accuracy"]["tukey"]
    }
    assert methods == {"cf:original", "cf:revised", "mt:original", "mt:revised"}
    assert (tmp_path / "r" / "figures" / "interaction.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference", "XX"], "error: reference condition 'XX' is not in the data"),
        (["--covariates", "income"], "error: covariate 'income' is not a column of the ratings"),
    ],
)
def test_bad_options_exit_non_zero_with_one_line(ratings_csv, tmp_path, capsys, args, message):
    assert main([str(ratings_csv), "--out", str(tmp_path / "r"), *args]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_argument_errors_are_one_line(ratings_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(ratings_csv), "--out", str(tmp_path), "--min-seconds-per-item", "-2"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (
        err
        == "python -m analysis: error: argument --min-seconds-per-item: must be a number ≥ 0, got '-2' (see --help)\n"
    )


def test_a_broken_file_gives_a_message_not_a_traceback(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("participant,condition\np1,CF:original\n")
    result = subprocess.run(
        [sys.executable, "-m", "analysis", str(path), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "python -m analysis: error: the ratings are missing the column(s): study, position"
    )
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
