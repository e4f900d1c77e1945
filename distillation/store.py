"""The append-only, crash-safe store of teacher outputs.

A store is a folder of JSON Lines *segments*. Each writer (one generation or import run)
appends to a segment of its own, one batch at a time, and flushes and fsyncs after every batch:
a killed run loses at most the batch in flight, and a half-written last line is recognised and
ignored on reading. Nothing is ever rewritten; when a key is written twice, the later record wins.

A record is keyed by (example id, step, counterfactual choice, teacher model, prompt-template
hash) and keeps the raw output, the cleaned text, and the status (``ok``, ``empty``,
``unparseable``, ``truncated``) with its reason. A failed step keeps ``text = None``.

Steps: ``explain``, ``critique``, ``revise``, ``counterfactual`` (one record per wrong choice)
and ``gold``: the counterfactual prompt asked about the gold answer, which makes it a factual
explanation (stored under the counterfactual template's hash).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from distillation.errors import DataError
from distillation.postprocess import STATUSES, USABLE
from distillation.types import TeacherExplanations

SEGMENT_GLOB = "outputs-*.jsonl"
EXPLAIN, CRITIQUE, REVISE, COUNTERFACTUAL = "explain", "critique", "revise", "counterfactual"
GOLD = "gold"
# Published outputs carry no prompt of ours; this marks them in the template-hash field.
EXTERNAL_TEMPLATE = "external"


@dataclass(frozen=True, order=True)
class StoreKey:
    """What a record is the output of; ``choice`` is the wrong answer of a counterfactual."""

    example_id: str
    step: str
    teacher: str
    template_hash: str
    choice: str = ""


@dataclass(frozen=True)
class TeacherRecord:
    """One step's output for one example, as written to the store."""

    example_id: str
    step: str
    teacher: str
    template_hash: str
    raw: str | None
    text: str | None
    status: str
    reason: str = ""
    choice: str = ""
    request: str = ""  # the critique/revision request used, where the step draws one
    source: str = ""  # "generate" or the path an import read from
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; accepted: {', '.join(STATUSES)}")
        # Usable statuses carry text, failures carry None: never an empty string.
        has_text = isinstance(self.text, str) and self.text.strip() != ""
        if has_text != (self.status in USABLE) or (self.text is not None and not has_text):
            raise ValueError(f"status {self.status!r} does not match text={self.text!r}")

    @property
    def key(self) -> StoreKey:
        return StoreKey(self.example_id, self.step, self.teacher, self.template_hash, self.choice)

    @property
    def usable(self) -> bool:
        return self.status in USABLE


@dataclass
class StoreReadReport:
    """What reading a store found besides the records: torn lines left by a killed writer."""

    segments: int = 0
    records: int = 0
    torn_lines: list[str] = field(default_factory=list)


class TeacherStore:
    """Read and append to the teacher-output store in ``store_dir`` (created on first write)."""

    def __init__(self, store_dir: Path | str) -> None:
        self.store_dir = Path(store_dir)
        if self.store_dir.exists() and not self.store_dir.is_dir():
            raise DataError(f"{self.store_dir}: the teacher store must be a folder, found a file")
        self._handle: IO[str] | None = None
        self.last_read = StoreReadReport()

    # -- reading -----------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        if not self.store_dir.is_dir():
            return []
        # Segment names start with a UTC timestamp, so name order is write order.
        return sorted(self.store_dir.glob(SEGMENT_GLOB))

    def records(self) -> Iterator[TeacherRecord]:
        """Every record in write order; a torn final line of a segment is skipped and noted."""
        report = StoreReadReport()
        self.last_read = report
        for segment in self.segments():
            report.segments += 1
            yield from self._segment_records(segment, report)

    def latest(self) -> dict[StoreKey, TeacherRecord]:
        """The latest record of every key."""
        return {record.key: record for record in self.records()}

    def stored_keys(self) -> set[StoreKey]:
        return set(self.latest())

    def _segment_records(self, segment: Path, report: StoreReadReport) -> Iterator[TeacherRecord]:
        with segment.open(encoding="utf-8") as handle:
            lines = handle.readlines()
        for number, line in enumerate(lines, start=1):
            where = f"{segment}:{number}"
            is_last = number == len(lines)
            try:
                payload = json.loads(line)
                record = TeacherRecord(**payload)
            except (json.JSONDecodeError, TypeError, ValueError) as error:
                # Only the last line can be half-written by a crash; damage elsewhere is real.
                if is_last and not line.endswith("\n"):
                    report.torn_lines.append(where)
                    continue
                raise DataError(f"{where}: not a teacher-output record ({error})") from None
            report.records += 1
            yield record

    # -- writing -----------------------------------------------------------------------------
    def append(self, records: Iterable[TeacherRecord]) -> int:
        """Append one batch and make it durable (flush + fsync) before returning its size."""
        # vars() rather than asdict(): the fields are flat, and asdict's deep copy triples the
        # time of a full import.
        lines = [json.dumps(vars(record), ensure_ascii=False) + "\n" for record in records]
        if not lines:
            return 0
        handle = self._writer()
        handle.write("".join(lines))
        handle.flush()
        os.fsync(handle.fileno())
        return len(lines)

    def _writer(self) -> IO[str]:
        if self._handle is None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            name = f"outputs-{stamp}-{os.getpid()}-{secrets.token_hex(3)}.jsonl"
            # "x": never append to another writer's segment.
            self._handle = (self.store_dir / name).open("x", encoding="utf-8")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> TeacherStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def teacher_explanations_load(
    store_dir: Path, *, teacher: str | None = None
) -> dict[str, TeacherExplanations]:
    """The cleaned teacher outputs per example id, as students are trained on them.

    A failed or empty step is ``None`` (a failed counterfactual is absent from
    ``counterfactuals``); text is never ``""``. When a step was written more than once (another
    prompt template, a retry), the latest record wins. ``teacher`` keeps only that model's
    outputs. Raises ``DataError`` when ``store_dir`` holds no store.
    """
    store = TeacherStore(store_dir)
    if not store.segments():
        raise DataError(f"{store_dir}: no teacher outputs here (no {SEGMENT_GLOB} files)")
    latest: dict[tuple[str, str, str], TeacherRecord] = {}
    for record in store.records():
        if teacher is None or record.teacher == teacher:
            latest[(record.example_id, record.step, record.choice)] = record
    fields: dict[str, dict[str, Any]] = {}
    for (example_id, step, choice), record in latest.items():
        entry = fields.setdefault(example_id, {"counterfactuals": {}})
        text = record.text if record.usable else None
        if step == COUNTERFACTUAL:
            if text is not None:
                entry["counterfactuals"][choice] = text
        elif step in _FIELD_OF_STEP:
            entry[_FIELD_OF_STEP[step]] = text
    return {
        example_id: TeacherExplanations(example_id=example_id, **values)
        for example_id, values in sorted(fields.items())
    }


_FIELD_OF_STEP = {EXPLAIN: "original", CRITIQUE: "critique", REVISE: "revised", GOLD: "gold"}
