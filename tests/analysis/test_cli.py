from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

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
    assert list(summary["accuracy"]["anova"]) == ["method", "size", "method:size"]
    pairs = [pair for size in summary["accuracy"]["tukey"].values() for pair in size]
    methods = {pair["a"] for pair in pairs} | {pair["b"] for pair in pairs}
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


@pytest.mark.parametrize(
    ("plan_text", "message"),
    [
        (
            "[tests]\nanvoa = true\n",
            "unknown key 'tests.anvoa'; accepted keys in [tests]: alpha, anova, kruskal",
        ),
        (
            '[regression]\nmixed = "no"\n',
            "regression.mixed must be true or false; got 'no'",
        ),
        (
            '[regression]\nreference = "GPT-4:original"\n',
            "regression.reference 'GPT-4:original' of plan 'bad' is not in the data; conditions "
            "are: CF:original, MT+CF:original, MT+CF:revised, MT:original (or 'auto')",
        ),
        (
            '[regression]\ncovariates = ["income"]\n',
            "covariate 'income' is not a column of the ratings; extra columns are: age, gender",
        ),
    ],
)
def test_a_bad_plan_exits_with_one_line_and_writes_nothing(
    ratings_csv, tmp_path, capsys, plan_text, message
):
    plan = tmp_path / "bad.toml"
    plan.write_text(plan_text, encoding="utf-8")
    out = tmp_path / "r"
    assert main([str(ratings_csv), "--out", str(out), "--plan", str(plan)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m analysis: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_an_unknown_plan_name_is_refused(ratings_csv, tmp_path, capsys):
    assert main([str(ratings_csv), "--out", str(tmp_path / "r"), "--plan", "papr"]) == 1
    assert capsys.readouterr().err == (
        "python -m analysis: error: plan 'papr' is neither a shipped plan (paper, standard) "
        "nor an existing TOML file\n"
    )
    assert not (tmp_path / "r").exists()


def test_the_paper_plan_report_states_plan_hash_and_no_deviations(ratings_csv, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([str(ratings_csv), "--out", str(out), "--plan", "paper"]) == 0
    sha256 = hashlib.sha256((ROOT / "analysis" / "plans" / "paper.toml").read_bytes()).hexdigest()
    assert f"plan paper (sha256 {sha256}): no deviations" in capsys.readouterr().out
    soup = BeautifulSoup((out / "report.html").read_text(encoding="utf-8"), "html.parser")
    section = soup.find("h2", string="Analysis plan").find_next("p")
    assert section.get_text() == f"Plan paper · SHA-256 {sha256}"
    assert "No deviations from the plan." in soup.get_text()
    settings = {
        row.find_all("td")[0].get_text(): row.find_all("td")[1].get_text()
        for row in soup.find("h3", string="Settings").find_next("table").find_all("tr")[1:]
    }
    assert settings["regression.length"] == "chars"
    assert settings["outliers.applies_to"] == "regression"
    # The report lists the plan in full: every setting of every table of summary.json's plan.
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    tables = summary["plan"]["settings"]
    assert set(settings) == {
        f"{table}.{key}"
        for table, values in tables.items()
        if isinstance(values, dict)
        for key in values
    }


def test_each_flag_that_changes_the_plan_is_a_listed_deviation(ratings_csv, tmp_path, capsys):
    out = tmp_path / "r"
    code = main(
        [
            str(ratings_csv),
            "--out",
            str(out),
            "--plan",
            "paper",
            "--no-drop-outliers",
            "--reference",
            "CF:original",  # the plan's own value: not a deviation
            "--min-seconds-per-item",
            "3",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 deviation(s)" in printed
    assert "deviation: outliers.enabled = False (plan: True; from drop_outliers)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert [d["setting"] for d in summary["plan"]["deviations"]] == [
        "outliers.enabled",
        "exclusions.too_fast",
        "exclusions.min_seconds_per_item",
    ]
    rows = [
        [td.get_text() for td in tr.find_all("td")]
        for tr in BeautifulSoup((out / "report.html").read_text(), "html.parser")
        .find(string="3 deviation(s) from the plan")
        .find_next("table")
        .find_all("tr")[1:]
    ]
    assert rows[0] == ["outliers.enabled", "true", "false", "drop_outliers"]
    assert rows[2] == ["exclusions.min_seconds_per_item", "not set", "3", "min_seconds_per_item"]
