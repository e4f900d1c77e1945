"""Loading CommonsenseQA examples from the formats the project meets, and the seeded split.

Every loader yields the one canonical :class:`~distillation.types.Example` and validates as it
goes: a malformed record raises :class:`~distillation.errors.DataError` naming the file and the
line (or row) so that the user can fix the file instead of reading a traceback.

Formats
-------
``cos_e``
    JSON Lines, one ``{"id", "question", "choices": [...], "answer": "<choice text>"}`` a line
    (the layout of the cos_e release of CommonsenseQA; extra fields are ignored).
``official``
    The CommonsenseQA release: ``{"id", "answerKey": "C", "question": {"stem", "choices":
    [{"label", "text"}, ...]}}``.
``hf``
    A Hugging Face ``datasets`` folder written by ``save_to_disk``, or a folder of such folders
    (``shard_0``, ``shard_1``, ...), with the ``cos_e`` columns; read with
    ``datasets.load_from_disk``.
``parquet``
    A Parquet file with the ``cos_e`` columns.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from distillation.errors import DataError
from distillation.types import Example

FORMATS = ("auto", "cos_e", "official", "hf", "parquet")
# CommonsenseQA always has five answer choices; a record with another count is a broken row.
NUM_CHOICES = 5


def examples_load(
    path: Path | str,
    *,
    format: str = "auto",
    limit: int | None = None,
    num_choices: int = NUM_CHOICES,
) -> list[Example]:
    """Read, validate and return the examples stored at ``path``.

    ``limit`` keeps the first ``limit`` examples (file order). Raises ``DataError`` for a missing
    path, an unknown format, or any invalid record (answer not among the choices, wrong number of
    choices, duplicate id), naming the file and line.
    """
    path = Path(path)
    if format not in FORMATS:
        raise DataError(f"unknown data format {format!r}; accepted: {', '.join(FORMATS)}")
    if limit is not None and limit < 0:
        raise DataError(f"limit must be zero or positive, not {limit}")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    resolved = _format_detect(path) if format == "auto" else format
    rows = _ROW_READERS[resolved](path)
    examples: list[Example] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        if limit is not None and len(examples) >= limit:
            break
        example = example_from_row(row, where=where, format=resolved, num_choices=num_choices)
        if example.id in seen:
            raise DataError(
                f"{where}: duplicate id {example.id!r} (first seen at {seen[example.id]})"
            )
        seen[example.id] = where
        examples.append(example)
    return examples


def train_validation_split(
    examples: Iterable[Example], *, validation_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split the training examples into (train, validation) with a seeded shuffle.

    The validation part is for model selection; the test split is never passed here. The
    result does not depend on the input order, only on the ids and the seed, so the same run
    configuration always selects on the same questions.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise DataError(
            f"validation_fraction must be strictly between 0 and 1, not {validation_fraction}"
        )
    ordered = sorted(examples, key=lambda example: example.id)
    if len(ordered) < 2:
        raise DataError(f"cannot split {len(ordered)} example(s) into train and validation")
    random.Random(seed).shuffle(ordered)
    n_validation = min(max(1, round(len(ordered) * validation_fraction)), len(ordered) - 1)
    return ordered[n_validation:], ordered[:n_validation]


def _format_detect(path: Path) -> str:
    if path.is_dir():
        return "hf"
    if path.suffix == ".parquet":
        return "parquet"
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:1: not valid JSON ({error.msg})") from None
                if isinstance(first, dict) and (
                    "answerKey" in first or isinstance(first.get("question"), dict)
                ):
                    return "official"
                return "cos_e"
    raise DataError(f"{path}: the file is empty")


def jsonl_lines(path: Path) -> Iterator[tuple[str, str]]:
    """The non-blank lines of a JSON Lines file, each with its ``file:line`` for messages."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield f"{path}:{number}", line


def json_parse(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error.msg})") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    for where, line in jsonl_lines(path):
        yield where, json_parse(line, where)


def _hf_rows(path: Path) -> Iterator[tuple[str, Any]]:
    for shard in hf_shard_dirs(path):
        for number, row in enumerate(arrow_rows(shard), start=1):
            yield f"{shard} row {number}", row


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    for number, row in enumerate(table.to_pylist(), start=1):
        yield f"{path} row {number}", row


_ROW_READERS = {
    "cos_e": _jsonl_rows,
    "official": _jsonl_rows,
    "hf": _hf_rows,
    "parquet": _parquet_rows,
}


def hf_shard_dirs(path: Path) -> list[Path]:
    """The ``save_to_disk`` folders at ``path``: itself, or its ``shard_N`` children in N order."""
    if _is_saved_dataset(path):
        return [path]
    shards = [child for child in path.iterdir() if _is_saved_dataset(child)]
    if not shards:
        raise DataError(
            f"{path}: not a Hugging Face save_to_disk folder (neither it nor a subfolder holds "
            "a dataset written by save_to_disk)"
        )

    def shard_order(shard: Path) -> tuple[int, str]:
        suffix = shard.name.rpartition("_")[2]
        return (int(suffix) if suffix.isdigit() else -1, shard.name)

    return sorted(shards, key=shard_order)


def _is_saved_dataset(path: Path) -> bool:
    from datasets import config

    return path.is_dir() and (path / config.DATASET_STATE_JSON_FILENAME).is_file()


def arrow_rows(shard: Path) -> Iterator[dict[str, Any]]:
    """The rows of one ``save_to_disk`` folder, as dictionaries."""
    for table in arrow_tables(shard):
        yield from table.to_pylist()


def arrow_tables(shard: Path) -> Iterator[Any]:
    """The rows of one ``save_to_disk`` folder as one ``pyarrow.Table``, by ``load_from_disk``.

    The dataset is memory-mapped, not copied: all 9,741 rows of the published training split
    load in well under a second.
    """
    import pyarrow as pa
    from datasets import Dataset, load_from_disk

    try:
        dataset = load_from_disk(str(shard))
    except (OSError, ValueError, pa.ArrowInvalid) as error:
        raise DataError(f"{shard}: not a readable save_to_disk dataset ({error})") from None
    if not isinstance(dataset, Dataset):
        raise DataError(
            f"{shard}: a save_to_disk folder of several splits; give the folder of one split"
        )
    yield dataset.with_format("arrow")[:]


def example_from_row(
    row: Any, *, where: str, format: str = "cos_e", num_choices: int = NUM_CHOICES
) -> Example:
    """Validate one ``cos_e`` or ``official`` record; ``where`` names it in error messages."""
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected a JSON object, found {type(row).__name__}")
    choices: Any
    if format == "official":
        identifier, question, choices, answer = _official_fields(row, where)
    else:
        identifier = _field(row, "id", where)
        question = _field(row, "question", where)
        choices = row.get("choices")
        answer = _field(row, "answer", where)
    if not isinstance(choices, list | tuple) or not all(
        isinstance(choice, str) for choice in choices
    ):
        raise DataError(f"{where}: 'choices' must be a list of strings")
    if len(choices) != num_choices:
        raise DataError(f"{where}: expected {num_choices} choices, found {len(choices)}")
    if answer not in choices:
        raise DataError(f"{where}: answer {answer!r} is not among the choices {list(choices)}")
    return Example(id=identifier, question=question, choices=tuple(choices), answer=answer)


def _official_fields(row: Mapping[str, Any], where: str) -> tuple[str, str, list[Any], str]:
    identifier = _field(row, "id", where)
    stem_block = row.get("question")
    if not isinstance(stem_block, Mapping):
        raise DataError(f"{where}: 'question' must be an object with 'stem' and 'choices'")
    question = _field(stem_block, "stem", where)
    raw_choices = stem_block.get("choices")
    if not isinstance(raw_choices, list) or not all(
        isinstance(choice, Mapping) for choice in raw_choices
    ):
        raise DataError(f"{where}: 'question.choices' must be a list of {{label, text}} objects")
    labels = [str(choice.get("label", "")) for choice in raw_choices]
    texts = [choice.get("text") for choice in raw_choices]
    key = row.get("answerKey")
    if not isinstance(key, str) or not key:
        raise DataError(f"{where}: 'answerKey' is missing (the unlabelled test split has none)")
    if key not in labels:
        raise DataError(f"{where}: answerKey {key!r} is not among the labels {labels}")
    answer = texts[labels.index(key)]
    if not isinstance(answer, str):
        raise DataError(f"{where}: choice {key!r} has no text")
    return identifier, question, texts, answer


def _field(row: Mapping[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {name!r} must be a non-empty string")
    return value
