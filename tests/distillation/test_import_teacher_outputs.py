from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from distillation.errors import DataError
from distillation.importing import teacher_outputs_import
from distillation.store import TeacherStore, teacher_explanations_load

datasets = pytest.importorskip("datasets")

CHOICES = ["sofa", "ocean", "oven", "sofa", "ocean"]  # the published data repeats choices too


def published_row(identifier: str, **changes: str) -> dict[str, object]:
    row: dict[str, object] = {
        "id": identifier,
        "question": "Where would a cat most likely sleep?",
        "choices": list(CHOICES),
        "answer": "sofa",
        "few_shot_positive_rationale": "The answer is sofa. Cats like soft, warm places.",
        "few_shot_negative_rationale": "Cats sleep.",
        "few_shot_revision": "A sofa is soft and warm, unlike an ocean or an oven.",
    }
    for index, choice in enumerate(CHOICES, start=1):
        row[f"counterfactual_prompt_answer_{index}_rationale"] = f"Cats choose the {choice}."
    row.update(changes)
    return row


def write_shards(split_dir: Path, rows: list[dict[str, object]], shards: int = 2) -> Path:
    for shard in range(shards):
        part = rows[shard::shards]
        datasets.Dataset.from_list(part).save_to_disk(str(split_dir / f"shard_{shard}"))
    return split_dir


def test_it_imports_published_shards_into_the_store(tmp_path: Path) -> None:
    rows = [published_row("q1"), published_row("q2", few_shot_revision="")]
    source = write_shards(tmp_path / "llama2-13b" / "cqa-train", rows)

    summary = teacher_outputs_import(source, tmp_path / "store")

    assert summary.teacher == "llama2-13b"
    assert summary.rows == 2
    assert summary.empty_fields["few_shot_revision"] == 1
    assert summary.duplicate_choices == 4  # "sofa" (the gold answer) and "ocean", twice each
    assert summary.ignored_columns == ["few_shot_negative_rationale"]
    assert summary.by_step["revise"] == {"ok": 1, "empty": 1}
    assert summary.by_step["gold"] == {"ok": 2}
    assert any("few_shot_revision 1" in line for line in summary.lines())

    loaded = teacher_explanations_load(tmp_path / "store")
    assert loaded["q1"].original == "Cats like soft, warm places."
    assert loaded["q2"].revised is None
    # The gold answer's per-choice explanation is factual: kept, but not as a counterfactual.
    assert loaded["q1"].counterfactuals == {
        "ocean": "Cats choose the ocean.",
        "oven": "Cats choose the oven.",
    }
    assert loaded["q1"].gold == "Cats choose the sofa."


def test_importing_twice_writes_nothing_new(tmp_path: Path) -> None:
    source = write_shards(tmp_path / "t" / "split", [published_row("q1"), published_row("q2")])
    teacher_outputs_import(source, tmp_path / "store")

    again = teacher_outputs_import(source, tmp_path / "store")

    assert again.written == 0
    # explain, revise, the gold answer's and two counterfactual explanations per row
    assert again.skipped_existing == 2 * 5


def test_importing_again_adds_the_gold_explanations_a_store_lacks(tmp_path: Path) -> None:
    """Stores imported before the gold-answer explanations were kept get them on a new import."""
    source = write_shards(tmp_path / "t" / "split", [published_row("q1")], shards=1)
    teacher_outputs_import(source, tmp_path / "store")
    store = TeacherStore(tmp_path / "store")
    (segment,) = store.segments()
    old = [line for line in segment.read_text().splitlines() if '"step": "gold"' not in line]
    segment.write_text("\n".join(old) + "\n")
    assert teacher_explanations_load(tmp_path / "store")["q1"].gold is None

    again = teacher_outputs_import(source, tmp_path / "store")

    assert (again.written, again.skipped_existing) == (1, 4)
    assert teacher_explanations_load(tmp_path / "store")["q1"].gold == "Cats choose the sofa."


def test_a_single_shard_and_the_critique_columns_are_understood(tmp_path: Path) -> None:
    row = {
        "id": "q1",
        "question": "Where would a cat most likely sleep?",
        "choices": list(CHOICES),
        "answer": "sofa",
        "few_shot_critique": "It never says why not the oven.",
        "few_shot_revision_instruction": "Please rewrite it.",
        "few_shot_critique_prompt": "a prompt",
    }
    source = write_shards(tmp_path / "llama2-13b" / "cqa-test-critiques", [row], shards=1)

    summary = teacher_outputs_import(source / "shard_0", tmp_path / "store")

    assert summary.teacher == "llama2-13b"
    (stored,) = TeacherStore(tmp_path / "store").records()
    assert (stored.step, stored.text, stored.request) == (
        "critique",
        "It never says why not the oven.",
        "Please rewrite it.",
    )


def test_a_shard_row_with_a_foreign_answer_is_reported(tmp_path: Path) -> None:
    source = write_shards(tmp_path / "t" / "s", [published_row("q1", answer="garden")], shards=1)

    with pytest.raises(DataError, match=r"shard_0 row 1: answer 'garden' is not among"):
        teacher_outputs_import(source, tmp_path / "store")


def native_line(identifier: str, **changes: object) -> str:
    row: dict[str, object] = {
        "id": identifier,
        "question": "Where would a cat most likely sleep?",
        "choices": ["sofa", "ocean", "oven", "highway", "cloud"],
        "answer": "sofa",
        "explanation": "Cats like soft places.",
        "critique": "It is short.",
        "revision": "A sofa is soft and warm.",
        "counterfactuals": {"ocean": "Cats love waves.", "oven": ""},
        "gold": "Cats pick the softest seat.",
    }
    row.update(changes)
    return json.dumps(row) + "\n"


def test_it_imports_the_native_json_lines_format(tmp_path: Path) -> None:
    source = tmp_path / "outputs.jsonl"
    source.write_text(native_line("q1") + native_line("q2", revision=None), encoding="utf-8")

    summary = teacher_outputs_import(source, tmp_path / "store")

    assert summary.teacher == "imported"
    assert summary.empty_fields == {"counterfactuals": 2, "revision": 1}
    loaded = teacher_explanations_load(tmp_path / "store")
    assert loaded["q1"].critique == "It is short."
    assert loaded["q1"].counterfactuals == {"ocean": "Cats love waves."}
    assert loaded["q1"].gold == "Cats pick the softest seat."
    assert loaded["q2"].revised is None


def test_a_bad_native_file_lists_every_bad_line_and_imports_nothing(tmp_path: Path) -> None:
    source = tmp_path / "outputs.jsonl"
    source.write_text(
        native_line("q1")
        + native_line("q2", counterfactuals={"sofa": "It is right."})
        + "not json\n"
        + native_line("q1"),
        encoding="utf-8",
    )

    with pytest.raises(DataError) as caught:
        teacher_outputs_import(source, tmp_path / "store")

    message = str(caught.value)
    assert "3 bad line(s), nothing imported" in message
    assert "outputs.jsonl:2: counterfactual for 'sofa', which is not a wrong choice" in message
    assert "outputs.jsonl:3: not valid JSON" in message
    assert "outputs.jsonl:4: duplicate id 'q1'" in message
    assert not (tmp_path / "store").exists()


def test_a_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        teacher_outputs_import(tmp_path / "absent", tmp_path / "store")
    with pytest.raises(DataError, match="not a Hugging Face save_to_disk folder"):
        teacher_outputs_import(tmp_path, tmp_path / "store")


def test_the_shared_llama_outputs_import_completely_and_fast(
    shared_data: Path, tmp_path: Path
) -> None:
    teacher_dir = shared_data / "teacher" / "llama2-13b"

    started = time.perf_counter()
    train = teacher_outputs_import(teacher_dir / "cqa-train", tmp_path / "train")
    elapsed = time.perf_counter() - started
    test = teacher_outputs_import(teacher_dir / "cqa-test", tmp_path / "test")
    critiques = teacher_outputs_import(teacher_dir / "cqa-test-critiques", tmp_path / "test")

    assert (train.rows, test.rows, critiques.rows) == (9741, 1221, 1221)
    # Seconds on a loaded two-core machine; a slow path (e.g. through datasets) takes minutes.
    assert elapsed < 60, f"importing cqa-train took {elapsed:.1f} s"
    assert train.empty_fields["few_shot_revision"] == 5
    assert test.empty_fields["few_shot_revision"] == 2
    assert critiques.empty_fields["few_shot_critique"] == 46
    assert critiques.skipped_existing == 1221  # its explanations came with cqa-test already
    train_loaded = teacher_explanations_load(tmp_path / "train")
    test_loaded = teacher_explanations_load(tmp_path / "test")
    assert len(train_loaded) == 9741
    assert len(test_loaded) == 1221
    assert sum(e.revised is None for e in train_loaded.values()) == 5
    unparseable = critiques.by_step["critique"].get("unparseable", 0)
    assert critiques.by_step["critique"]["empty"] == 46
    assert sum(e.critique is not None for e in test_loaded.values()) == 1221 - 46 - unparseable
    assert all(len(e.counterfactuals) <= 4 for e in train_loaded.values())
    # The gold answer's counterfactual-prompt explanation is kept for every question (the
    # 42 questions that list their answer twice keep the first one).
    assert sum(train.by_step["gold"].values()) == 9741
    assert sum(e.gold is not None for e in train_loaded.values()) == 9741
    assert sum(e.gold is not None for e in test_loaded.values()) == 1221
