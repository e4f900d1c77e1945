"""Importing published teacher outputs into the store, so a distillation can start without a GPU.

Two sources are understood:

* Hugging Face ``save_to_disk`` folders (one shard, or a folder of ``shard_N`` folders) with the
  columns of the published LLaMA-2 outputs: ``few_shot_positive_rationale`` (explain),
  ``few_shot_revision`` (revise), ``few_shot_critique`` with ``few_shot_revision_instruction``
  (critique) and ``counterfactual_prompt_answer_{1..5}_rationale`` (one per choice; the one of
  the gold answer is a factual explanation, stored as step ``gold``, the others as
  counterfactuals);
* the project's own JSON Lines, one ``{"id", "question", "choices", "answer", "explanation",
  "critique", "revision", "counterfactuals": {"<wrong choice>": "<text>"}, "gold": "<text>"}``
  a line (``gold``, optional: the counterfactual prompt's explanation of the gold answer).

Empty fields are stored as failures (status ``empty``) and counted in the summary; keys already
in the store are skipped, so importing twice writes nothing the second time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillation.data import (
    arrow_tables,
    example_from_row,
    hf_shard_dirs,
    json_parse,
    jsonl_lines,
)
from distillation.errors import DataError
from distillation.postprocess import output_clean
from distillation.store import (
    COUNTERFACTUAL,
    CRITIQUE,
    EXPLAIN,
    EXTERNAL_TEMPLATE,
    GOLD,
    REVISE,
    StoreKey,
    TeacherRecord,
    TeacherStore,
)
from distillation.types import Example

# Published column -> pipeline step.
HF_STEP_COLUMNS = {
    "few_shot_positive_rationale": EXPLAIN,
    "few_shot_critique": CRITIQUE,
    "few_shot_revision": REVISE,
}
HF_COUNTERFACTUAL_COLUMN = "counterfactual_prompt_answer_{}_rationale"
HF_REQUEST_COLUMN = "few_shot_revision_instruction"
NATIVE_STEP_FIELDS = {
    "explanation": EXPLAIN,
    "critique": CRITIQUE,
    "revision": REVISE,
    "gold": GOLD,
}
NATIVE_TEACHER = "imported"
# Rows per store batch: each batch is fsynced, so this bounds what a crash can lose.
BATCH_ROWS = 1000


@dataclass
class ImportSummary:
    """What an import read and wrote; ``empty_fields`` counts empty values per source column."""

    source: Path
    store_dir: Path
    teacher: str
    rows: int = 0
    written: int = 0
    skipped_existing: int = 0
    by_step: dict[str, Counter[str]] = field(default_factory=dict)  # step -> status -> count
    empty_fields: Counter[str] = field(default_factory=Counter)
    duplicate_choices: int = 0  # a choice listed twice: its second explanation is dropped
    ignored_columns: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary as lines for a person to read."""
        lines = [
            f"Imported {self.rows} rows from {self.source} (teacher {self.teacher!r}) "
            f"into {self.store_dir}: {self.written} records written, "
            f"{self.skipped_existing} already in the store.",
        ]
        for step, statuses in sorted(self.by_step.items()):
            detail = ", ".join(f"{status} {count}" for status, count in sorted(statuses.items()))
            lines.append(f"  {step}: {detail}")
        empty = {column: count for column, count in self.empty_fields.items() if count}
        if empty:
            lines.append(
                "  empty fields: "
                + ", ".join(f"{column} {count}" for column, count in sorted(empty.items()))
            )
        else:
            lines.append("  empty fields: none")
        if self.duplicate_choices:
            lines.append(
                f"  {self.duplicate_choices} explanations of a choice listed twice in its "
                "question were dropped (the first one is kept)"
            )
        if self.ignored_columns:
            lines.append(f"  columns not used: {', '.join(self.ignored_columns)}")
        return lines


def teacher_outputs_import(
    source: Path, store_dir: Path, *, teacher: str | None = None
) -> ImportSummary:
    """Import the teacher outputs at ``source`` into the store at ``store_dir``.

    ``teacher`` names the model in the store keys; by default it is the folder above the split
    folder for published shards (``llama2-13b``) and ``"imported"`` for JSON Lines. Raises
    ``DataError`` naming the file and line/row for a missing or malformed source; nothing is
    written from a JSON Lines file that has any bad line.
    """
    source = Path(source)
    store_dir = Path(store_dir)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    if source.is_dir():
        shards = hf_shard_dirs(source)
        name = teacher or _published_teacher_name(source, shards)
        summary = ImportSummary(source=source, store_dir=store_dir, teacher=name)
        _import_rows(_hf_rows(shards, summary), summary)
    else:
        summary = ImportSummary(
            source=source, store_dir=store_dir, teacher=teacher or NATIVE_TEACHER
        )
        # Validate every line before writing anything, so a bad file leaves the store untouched.
        _import_rows(iter(list(_native_rows(source, summary))), summary)
    return summary


@dataclass(frozen=True)
class _Output:
    example: Example
    step: str
    raw: str | None
    choice: str = ""
    request: str = ""


def _import_rows(outputs: Iterator[list[_Output]], summary: ImportSummary) -> None:
    store = TeacherStore(summary.store_dir)
    existing = store.stored_keys()
    batch: list[TeacherRecord] = []
    with store:
        for row_outputs in outputs:
            summary.rows += 1
            for output in row_outputs:
                key = StoreKey(
                    output.example.id,
                    output.step,
                    summary.teacher,
                    EXTERNAL_TEMPLATE,
                    output.choice,
                )
                if key in existing:
                    summary.skipped_existing += 1
                    continue
                existing.add(key)
                record = _record(output, summary)
                summary.by_step.setdefault(record.step, Counter())[record.status] += 1
                batch.append(record)
            if summary.rows % BATCH_ROWS == 0:
                summary.written += store.append(batch)
                batch = []
        summary.written += store.append(batch)


def _record(output: _Output, summary: ImportSummary) -> TeacherRecord:
    # Published outputs record no finish reason: a sentence cut mid-way marks truncation.
    cleaned = output_clean(output.raw, hit_limit=None)
    return TeacherRecord(
        example_id=output.example.id,
        step=output.step,
        teacher=summary.teacher,
        template_hash=EXTERNAL_TEMPLATE,
        raw=output.raw,
        text=cleaned.text,
        status=cleaned.status,
        reason=cleaned.reason,
        choice=output.choice,
        request=output.request,
        source=str(summary.source),
    )


def _published_teacher_name(source: Path, shards: list[Path]) -> str:
    # .../<teacher>/<split>/shard_N: the teacher is the folder above the split.
    single_shard = shards == [source] and source.name.startswith("shard_")
    split_dir = source.parent if single_shard else source
    return split_dir.resolve().parent.name or NATIVE_TEACHER


def _hf_rows(shards: list[Path], summary: ImportSummary) -> Iterator[list[_Output]]:
    for shard in shards:
        for table in arrow_tables(shard):
            columns = set(table.column_names)
            _note_ignored(columns, summary)
            rows = table.to_pylist()
            for number, row in enumerate(rows, start=1):
                example = example_from_row(row, where=f"{shard} row {number}")
                yield list(_hf_row_outputs(row, example, columns, summary))


def _note_ignored(columns: set[str], summary: ImportSummary) -> None:
    used = {"id", "question", "choices", "answer", HF_REQUEST_COLUMN, *HF_STEP_COLUMNS}
    used |= {HF_COUNTERFACTUAL_COLUMN.format(i) for i in range(1, 6)}
    for column in sorted(columns - used):
        if column not in summary.ignored_columns:
            summary.ignored_columns.append(column)


def _hf_row_outputs(
    row: Mapping[str, Any], example: Example, columns: set[str], summary: ImportSummary
) -> Iterator[_Output]:
    for column, step in HF_STEP_COLUMNS.items():
        if column in columns:
            raw = _text_value(row, column, summary)
            request = row.get(HF_REQUEST_COLUMN) or "" if step == CRITIQUE else ""
            yield _Output(example, step, raw, request=str(request))
    explained: set[str] = set()
    for index, choice in enumerate(example.choices, start=1):
        column = HF_COUNTERFACTUAL_COLUMN.format(index)
        if column not in columns:
            continue
        raw = _text_value(row, column, summary)
        if choice in explained:
            summary.duplicate_choices += 1
            continue
        explained.add(choice)
        # The prompt asked about the gold answer gives a factual explanation, kept as "gold".
        if choice == example.answer:
            yield _Output(example, GOLD, raw)
        else:
            yield _Output(example, COUNTERFACTUAL, raw, choice=choice)


def _text_value(
    row: Mapping[str, Any], name: str, summary: ImportSummary, *, column: str | None = None
) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        summary.empty_fields[column or name] += 1
        return None
    return str(value)


def _native_rows(path: Path, summary: ImportSummary) -> Iterator[list[_Output]]:
    errors: list[str] = []
    parsed: list[list[_Output]] = []
    seen: set[str] = set()
    for where, line in jsonl_lines(path):
        try:
            example, outputs = _native_line(line, where, summary)
        except DataError as error:
            errors.append(str(error))
            continue
        if example.id in seen:
            errors.append(f"{where}: duplicate id {example.id!r}")
            continue
        seen.add(example.id)
        parsed.append(outputs)
    if errors:
        shown = "\n".join(errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DataError(f"{path}: {len(errors)} bad line(s), nothing imported:\n{shown}{more}")
    yield from parsed


def _native_line(line: str, where: str, summary: ImportSummary) -> tuple[Example, list[_Output]]:
    row = json_parse(line, where)
    example = example_from_row(row, where=where)
    outputs: list[_Output] = []
    for name, step in NATIVE_STEP_FIELDS.items():
        if name in row:
            value = row[name]
            if value is not None and not isinstance(value, str):
                raise DataError(f"{where}: {name!r} must be a string or null")
            outputs.append(_Output(example, step, _text_value(row, name, summary)))
    counterfactuals = row.get("counterfactuals", {})
    if not isinstance(counterfactuals, Mapping):
        raise DataError(f"{where}: 'counterfactuals' must be an object of choice -> text")
    for choice in counterfactuals:
        if choice not in example.wrong_choices:
            raise DataError(
                f"{where}: counterfactual for {choice!r}, which is not a wrong choice "
                f"(wrong choices: {list(example.wrong_choices)})"
            )
        value = counterfactuals[choice]
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: counterfactual for {choice!r} must be a string or null")
        outputs.append(
            _Output(
                example,
                COUNTERFACTUAL,
                _text_value(counterfactuals, choice, summary, column="counterfactuals"),
                choice,
            )
        )
    return example, outputs
