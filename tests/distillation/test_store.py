from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillation.errors import DataError
from distillation.store import TeacherRecord, TeacherStore, teacher_explanations_load


def record(example_id: str, step: str, text: str | None, *, status: str = "ok", **extra: str):
    return TeacherRecord(
        example_id=example_id,
        step=step,
        teacher=extra.pop("teacher", "llama"),
        template_hash=extra.pop("template_hash", "h1"),
        raw=text if text is not None else "",
        text=text,
        status=status,
        reason="" if text is not None else "the teacher returned no text",
        **extra,
    )


def test_records_survive_reopening_and_the_latest_record_of_a_key_wins(tmp_path: Path) -> None:
    with TeacherStore(tmp_path) as store:
        store.append([record("q1", "explain", "First."), record("q2", "explain", "Other.")])
    with TeacherStore(tmp_path) as store:
        store.append([record("q1", "explain", "Second.")])

    latest = TeacherStore(tmp_path).latest()

    assert len(TeacherStore(tmp_path).segments()) == 2
    assert {key.example_id: rec.text for key, rec in latest.items()} == {
        "q1": "Second.",
        "q2": "Other.",
    }


def test_a_torn_last_line_from_a_killed_writer_is_skipped_and_reported(tmp_path: Path) -> None:
    with TeacherStore(tmp_path) as store:
        store.append([record("q1", "explain", "Kept.")])
    segment = TeacherStore(tmp_path).segments()[0]
    with segment.open("a", encoding="utf-8") as handle:
        handle.write('{"example_id": "q2", "step": "expl')  # the crash hit mid-write

    store = TeacherStore(tmp_path)
    records = list(store.records())

    assert [r.example_id for r in records] == ["q1"]
    assert store.last_read.torn_lines == [f"{segment}:2"]


def test_damage_before_the_last_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    with TeacherStore(tmp_path) as store:
        store.append([record("q1", "explain", "A."), record("q2", "explain", "B.")])
    segment = TeacherStore(tmp_path).segments()[0]
    lines = segment.read_text(encoding="utf-8").splitlines(keepends=True)
    segment.write_text("garbage\n" + lines[1], encoding="utf-8")

    with pytest.raises(DataError, match=rf"{segment.name}:1: not a teacher-output record"):
        list(TeacherStore(tmp_path).records())


def test_a_record_keeps_raw_output_status_and_reason(tmp_path: Path) -> None:
    with TeacherStore(tmp_path) as store:
        store.append([record("q1", "revise", None, status="empty")])

    line = json.loads(TeacherStore(tmp_path).segments()[0].read_text(encoding="utf-8"))

    assert line["status"] == "empty"
    assert line["text"] is None
    assert line["reason"] == "the teacher returned no text"
    assert line["raw"] == ""


def test_a_record_whose_status_contradicts_its_text_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        record("q1", "explain", "", status="ok")
    with pytest.raises(ValueError, match="unknown status"):
        record("q1", "explain", "x", status="great")


def test_explanations_load_maps_steps_and_turns_failures_into_none(tmp_path: Path) -> None:
    with TeacherStore(tmp_path) as store:
        store.append(
            [
                record("q1", "explain", "Because."),
                record("q1", "critique", "Too short."),
                record("q1", "revise", None, status="empty"),
                record("q1", "counterfactual", "If ovens...", choice="oven"),
                record("q1", "counterfactual", None, status="unparseable", choice="cloud"),
                record("q2", "counterfactual", "Cut off", status="truncated", choice="sofa"),
            ]
        )

    loaded = teacher_explanations_load(tmp_path)

    q1, q2 = loaded["q1"], loaded["q2"]
    assert (q1.original, q1.critique, q1.revised) == ("Because.", "Too short.", None)
    assert q1.counterfactuals == {"oven": "If ovens..."}
    assert q2.original is None
    assert q2.counterfactuals == {"sofa": "Cut off"}


def test_explanations_load_can_keep_one_teacher(tmp_path: Path) -> None:
    with TeacherStore(tmp_path) as store:
        store.append(
            [
                record("q1", "explain", "From llama.", teacher="llama"),
                record("q1", "explain", "From mistral.", teacher="mistral"),
            ]
        )

    assert teacher_explanations_load(tmp_path)["q1"].original == "From mistral."
    assert teacher_explanations_load(tmp_path, teacher="llama")["q1"].original == "From llama."


def test_explanations_load_of_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no teacher outputs here"):
        teacher_explanations_load(tmp_path)


def test_a_file_in_place_of_the_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.write_text("", encoding="utf-8")

    with pytest.raises(DataError, match="must be a folder"):
        TeacherStore(path)
