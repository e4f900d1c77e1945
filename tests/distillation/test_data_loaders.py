from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillation.data import examples_load, train_validation_split
from distillation.errors import DataError
from distillation.types import Example

CHOICES = ["pantry", "refrigerator", "oven", "mailbox", "garden"]


def cos_e_row(identifier: str = "q1", **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": identifier,
        "question": "Where does milk stay cold?",
        "choices": list(CHOICES),
        "answer": "refrigerator",
        "abstractive_explanation": "ignored",
    }
    row.update(changes)
    return row


def official_row(identifier: str = "q1", answer_key: str = "B") -> dict[str, object]:
    return {
        "id": identifier,
        "answerKey": answer_key,
        "question": {
            "question_concept": "milk",
            "stem": "Where does milk stay cold?",
            "choices": [
                {"label": label, "text": text} for label, text in zip("ABCDE", CHOICES, strict=True)
            ],
        },
    }


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_it_loads_cos_e_json_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [cos_e_row("q1"), cos_e_row("q2")])

    examples = examples_load(path)

    assert examples == [
        Example("q1", "Where does milk stay cold?", tuple(CHOICES), "refrigerator"),
        Example("q2", "Where does milk stay cold?", tuple(CHOICES), "refrigerator"),
    ]


def test_it_detects_and_loads_the_official_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dev.jsonl", [official_row("a", "B"), official_row("b", "E")])

    examples = examples_load(path)

    assert [(example.id, example.answer) for example in examples] == [
        ("a", "refrigerator"),
        ("b", "garden"),
    ]
    assert examples[0].choices == tuple(CHOICES)


def test_it_loads_parquet_and_a_hugging_face_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [cos_e_row("q1"), cos_e_row("q2", answer="oven")]
    dataset = datasets.Dataset.from_list(rows)
    dataset.to_parquet(str(tmp_path / "train.parquet"))
    dataset.save_to_disk(str(tmp_path / "hf"))

    from_parquet = examples_load(tmp_path / "train.parquet")
    from_folder = examples_load(tmp_path / "hf")

    assert from_parquet == from_folder
    assert [example.answer for example in from_folder] == ["refrigerator", "oven"]


def test_a_folder_of_shards_loads_them_in_shard_number_order(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    for number, identifier in ((10, "late"), (2, "early")):
        datasets.Dataset.from_list([cos_e_row(identifier)]).save_to_disk(
            str(tmp_path / "split" / f"shard_{number}")
        )

    assert [example.id for example in examples_load(tmp_path / "split")] == ["early", "late"]


def test_a_damaged_hugging_face_folder_is_named_in_the_error(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([cos_e_row("q1")]).save_to_disk(str(tmp_path / "hf"))
    for arrow_file in (tmp_path / "hf").glob("*.arrow"):
        arrow_file.write_bytes(b"not an arrow stream")

    with pytest.raises(DataError, match="not a readable save_to_disk dataset") as caught:
        examples_load(tmp_path / "hf")
    assert str(tmp_path / "hf") in str(caught.value)


def test_a_folder_without_a_saved_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty" / "shard_0").mkdir(parents=True)

    with pytest.raises(DataError, match="not a Hugging Face save_to_disk folder"):
        examples_load(tmp_path / "empty")


def test_limit_keeps_the_first_examples(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [cos_e_row(f"q{i}") for i in range(5)])

    assert [example.id for example in examples_load(path, limit=2)] == ["q0", "q1"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (cos_e_row("q2", answer="attic"), "answer 'attic' is not among the choices"),
        (cos_e_row("q2", choices=CHOICES[:4]), "expected 5 choices, found 4"),
        (cos_e_row("q1"), "duplicate id 'q1'"),
        (cos_e_row("q2", question=""), "'question' must be a non-empty string"),
    ],
)
def test_an_invalid_record_is_reported_with_file_and_line(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [cos_e_row("q1"), row])

    with pytest.raises(DataError, match=message) as caught:
        examples_load(path)

    assert f"{path}:2" in str(caught.value)


def test_an_official_record_without_answer_key_is_rejected(tmp_path: Path) -> None:
    row = official_row()
    del row["answerKey"]
    path = write_jsonl(tmp_path / "test.jsonl", [official_row("a"), row])

    with pytest.raises(DataError, match=r"test.jsonl:2: 'answerKey' is missing"):
        examples_load(path, format="official")


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(cos_e_row()) + "\n{not json\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"broken.jsonl:2: not valid JSON"):
        examples_load(path)


def test_missing_path_and_unknown_format_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        examples_load(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="unknown data format 'csv'"):
        examples_load(tmp_path, format="csv")


def make_examples(n: int) -> list[Example]:
    return [Example(f"q{i:03d}", "?", tuple(CHOICES), "oven") for i in range(n)]


def test_the_split_is_seeded_disjoint_and_independent_of_input_order() -> None:
    examples = make_examples(50)

    train, validation = train_validation_split(examples, validation_fraction=0.2, seed=7)
    again = train_validation_split(list(reversed(examples)), validation_fraction=0.2, seed=7)
    other = train_validation_split(examples, validation_fraction=0.2, seed=8)

    assert len(validation) == 10
    assert len(train) == 40
    assert {e.id for e in train}.isdisjoint({e.id for e in validation})
    assert (train, validation) == again
    assert validation != other[1]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_the_split_rejects_fractions_outside_zero_and_one(fraction: float) -> None:
    with pytest.raises(DataError, match="validation_fraction"):
        train_validation_split(make_examples(10), validation_fraction=fraction, seed=0)


def test_the_shared_cos_e_splits_load_completely(shared_data: Path) -> None:
    train = examples_load(shared_data / "cqa" / "train.jsonl")
    validation = examples_load(shared_data / "cqa" / "validation.jsonl")

    assert (len(train), len(validation)) == (9741, 1221)
    assert all(example.answer in example.choices for example in train)


def test_the_shared_teacher_shards_load_as_examples(shared_data: Path) -> None:
    test = examples_load(shared_data / "teacher" / "llama2-13b" / "cqa-test")

    assert len(test) == 1221
