from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from distillation.store import TeacherStore
from distillation.teachers.tiny import tiny_causal_lm_build, tiny_tokenizer_train, torch_threads

QUESTIONS = [
    {
        "id": f"q{i}",
        "question": f"Where would a cat sleep on day {i}?",
        "choices": ["sofa", "oven", "lake", "road", "sky"],
        "answer": "sofa",
    }
    for i in range(3)
]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def run(*args: str) -> str:
    out = StringIO()
    call_command("generate_teacher_outputs", *args, "--no-progress", stdout=out)
    return out.getvalue()


def write_config(tmp_path: Path, teacher: str) -> Path:
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    config = tmp_path / "run.toml"
    config.write_text(
        f'[run]\nname = "smoke"\n\n[data]\ntrain = "{questions}"\n\n[teacher]\n{teacher}\n',
        encoding="utf-8",
    )
    return config


def test_it_generates_with_a_local_model_and_resumes(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer_train([q["question"] for q in QUESTIONS] * 3, vocab_size=120)
    tiny_causal_lm_build(tokenizer).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    config = write_config(
        tmp_path,
        f'backend = "hf"\nmodel = "{tmp_path / "model"}"\nsteps = ["explain"]\n'
        "[teacher.max_new_tokens]\nexplain = 4\n",
    )
    store = tmp_path / "store"

    first = run("--config", str(config), "--store", str(store), "--limit", "2")
    second = run("--config", str(config), "--store", str(store))

    assert f"Teacher outputs in {store}:" in first
    assert "skipped 0" in first
    assert len(TeacherStore(store).stored_keys()) == 3
    assert "skipped 2" in second  # only the third question was new


def test_the_default_store_is_in_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "outputs.jsonl"
    source.write_text(json.dumps({**QUESTIONS[0], "explanation": "Cats like it."}) + "\n", "utf-8")
    config = write_config(tmp_path, f'backend = "import"\nsource = "{source}"')
    monkeypatch.chdir(tmp_path)

    output = run("--config", str(config))

    assert "Teacher outputs in runs/smoke/teacher:" in output
    assert "done 1" in output
    assert (tmp_path / "runs" / "smoke" / "teacher").is_dir()


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ('backend = "tgi"', "teacher.backend must be one of 'hf', 'openai', 'import'"),
        ('model = "m"\nbatchsize = 4', "unknown key 'teacher.batchsize'"),
        ('backend = "hf"\nmodel = "/no/such/model"', "cannot load teacher model"),
        (
            'backend = "openai"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\nmax_retries = 0',
            "cannot reach the teacher server",
        ),
    ],
)
def test_a_bad_teacher_is_a_command_error(tmp_path: Path, teacher: str, message: str) -> None:
    config = write_config(tmp_path, teacher)

    with pytest.raises(CommandError, match=message):
        run("--config", str(config), "--store", str(tmp_path / "store"))


def test_bad_files_and_limits_are_command_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[data\n", encoding="utf-8")
    missing_data = write_config(tmp_path, 'model = "m"')
    (tmp_path / "questions.jsonl").unlink()

    with pytest.raises(CommandError, match="no such config file"):
        run("--config", str(tmp_path / "absent.toml"))
    with pytest.raises(CommandError, match="not valid TOML"):
        run("--config", str(broken))
    with pytest.raises(CommandError, match=r"questions\.jsonl: no such file"):
        run("--config", str(missing_data))
    with pytest.raises(CommandError, match="--limit must be a positive number"):
        run("--config", str(missing_data), "--limit", "0")
