from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from distillation.store import teacher_explanations_load


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_teacher_outputs", *args, stdout=out)
    return out.getvalue()


def test_it_imports_a_json_lines_file_and_reports_counts_and_empty_fields(tmp_path: Path) -> None:
    source = tmp_path / "outputs.jsonl"
    row = {
        "id": "q1",
        "question": "What keeps milk cold?",
        "choices": ["fridge", "stove", "bag", "box", "sun"],
        "answer": "fridge",
        "explanation": "It is cold inside.",
        "revision": "",
        "counterfactuals": {"stove": "A stove can be switched off."},
    }
    source.write_text(json.dumps(row) + "\n", encoding="utf-8")

    output = run(str(source), "--out", str(tmp_path / "store"), "--teacher", "demo-teacher")

    assert "Imported 1 rows" in output
    assert "teacher 'demo-teacher'" in output
    assert "empty fields: revision 1" in output
    assert teacher_explanations_load(tmp_path / "store")["q1"].original == "It is cold inside."


def test_a_missing_source_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file or folder"):
        run(str(tmp_path / "absent"), "--out", str(tmp_path / "store"))


def test_a_file_where_the_store_should_be_is_a_command_error(tmp_path: Path) -> None:
    source = tmp_path / "outputs.jsonl"
    source.write_text("", encoding="utf-8")
    (tmp_path / "store").write_text("not a folder", encoding="utf-8")

    with pytest.raises(CommandError, match="must be a folder"):
        run(str(source), "--out", str(tmp_path / "store"))


def test_the_shared_test_split_imports_with_its_critiques(
    shared_data: Path, tmp_path: Path
) -> None:
    teacher = shared_data / "teacher" / "llama2-13b"

    first = run(str(teacher / "cqa-test"), "--out", str(tmp_path / "store"))
    second = run(str(teacher / "cqa-test-critiques"), "--out", str(tmp_path / "store"))

    assert "Imported 1221 rows" in first
    assert "empty fields: few_shot_revision 2" in first
    assert "few_shot_critique 46" in second
