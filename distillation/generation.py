"""Generating teacher outputs into the store: explain, critique, revise, counterfactuals.

Steps run in pipeline order over all examples (a critique needs the explanation it reads, a
revision the critique). Work is cut into batches; each batch is generated, cleaned and appended
to the store (flushed and fsynced) before the next begins, so an interrupted run loses at most
one batch, and a rerun skips every key already stored: finished work is never repeated. The
backend is loaded only when there is something left to generate. The counterfactual step also
asks its prompt about the gold answer (stored as step ``gold``), since the paper's MT+CF
students learn that factual explanation.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from distillation.errors import ConfigError
from distillation.importing import teacher_outputs_import
from distillation.postprocess import EMPTY, TRUNCATED, UNPARSEABLE, output_clean
from distillation.prompts import PromptSet, prompts_load
from distillation.store import (
    COUNTERFACTUAL,
    CRITIQUE,
    EXPLAIN,
    GOLD,
    REVISE,
    StoreKey,
    TeacherRecord,
    TeacherStore,
)
from distillation.teacher_config import TeacherConfig
from distillation.teachers import GenerationRequest, TeacherBackend, teacher_backend_build
from distillation.types import Example


@dataclass
class GenerationSummary:
    """Counts of one generation run: written this run, already stored, or not attempted."""

    done: int = 0  # usable outputs written (``ok`` or ``truncated``)
    truncated: int = 0  # of ``done``: cut at the token limit
    failed: int = 0  # written as ``empty`` or ``unparseable``
    skipped: int = 0  # already in the store from an earlier run
    blocked: int = 0  # not attempted because the output they build on failed
    by_step: dict[str, Counter[str]] = field(default_factory=dict)
    torn_lines: list[str] = field(default_factory=list)  # half-written by an interrupted run

    def __str__(self) -> str:
        return (
            f"done {self.done} (truncated {self.truncated}), failed {self.failed}, "
            f"skipped {self.skipped}, blocked {self.blocked}"
        )

    def lines(self) -> list[str]:
        lines = [str(self)]
        for step, counts in self.by_step.items():
            lines.append(f"  {step}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if self.torn_lines:
            lines.append(
                f"  ignored {len(self.torn_lines)} half-written line(s) left by an interrupted "
                f"run: {', '.join(self.torn_lines)}"
            )
        return lines

    def count(self, step: str, outcome: str, n: int = 1) -> None:
        self.by_step.setdefault(step, Counter())[outcome] += n


@dataclass(frozen=True)
class _Item:
    key: StoreKey
    request: GenerationRequest
    critique_request: str = ""


def teacher_outputs_generate(
    *,
    examples: Iterable[Example],
    teacher: TeacherConfig,
    store_dir: Path,
    limit: int | None = None,
    progress: bool = True,
    backend: TeacherBackend | None = None,
) -> GenerationSummary:
    """Fill the store at ``store_dir`` with the teacher's outputs for ``examples``.

    Resumable: keys already stored are skipped. ``limit`` keeps the first ``limit`` examples.
    ``backend`` replaces the one the config names (tests, or a backend already loaded). A
    teacher with ``backend = "import"`` imports ``teacher.source`` instead of generating.
    """
    if teacher.backend == "import" and backend is None:
        return _import_as_generation(teacher, store_dir)
    selected = list(examples)[:limit] if limit is not None else list(examples)
    prompts = prompts_load(teacher.prompts_dir)
    summary = GenerationSummary()
    store = TeacherStore(store_dir)
    latest = store.latest()
    summary.torn_lines = list(store.last_read.torn_lines)
    built: TeacherBackend | None = None
    try:
        with store:
            for step in teacher.steps:
                items = list(_step_items(step, selected, teacher, prompts, latest, summary))
                if not items:
                    continue
                if backend is None:
                    backend = built = teacher_backend_build(teacher)
                bar = tqdm(
                    total=len(items), desc=f"teacher {step}", unit="output", disable=not progress
                )
                with bar:
                    for batch in _chunks(items, teacher.batch_size):
                        records = _batch_run(batch, backend, teacher)
                        store.append(records)
                        for record in records:
                            latest[record.key] = record
                            _tally(summary, record)
                        bar.update(len(batch))
    finally:
        # A backend built here is ours to release (the openai one holds open connections).
        close = getattr(built, "close", None)
        if close is not None:
            close()
    return summary


def _import_as_generation(teacher: TeacherConfig, store_dir: Path) -> GenerationSummary:
    if teacher.source is None:
        raise ConfigError("teacher.source is required when teacher.backend is 'import'")
    imported = teacher_outputs_import(teacher.source, store_dir)
    summary = GenerationSummary(skipped=imported.skipped_existing)
    for step, statuses in imported.by_step.items():
        for status, count in statuses.items():
            summary.count(step, status, count)
            if status in (EMPTY, UNPARSEABLE):
                summary.failed += count
            else:
                summary.done += count
                summary.truncated += count if status == TRUNCATED else 0
    return summary


def _step_items(
    step: str,
    examples: Sequence[Example],
    teacher: TeacherConfig,
    prompts: PromptSet,
    latest: dict[StoreKey, TeacherRecord],
    summary: GenerationSummary,
) -> Iterator[_Item]:
    def key(example: Example, key_step: str, choice: str = "") -> StoreKey:
        # The gold answer's explanation comes from the counterfactual template.
        template = prompts.hashes[COUNTERFACTUAL if key_step == GOLD else key_step]
        return StoreKey(example.id, key_step, teacher.model, template, choice)

    def usable_text(example: Example, key_step: str) -> str | None:
        record = latest.get(key(example, key_step))
        return record.text if record is not None and record.usable else None

    def request(prompt: str, contrast: str | None = None) -> GenerationRequest:
        return GenerationRequest(
            prompt=prompt,
            max_new_tokens=teacher.max_new_tokens_for(step),
            stop=teacher.stop,
            contrast_prompt=contrast,
        )

    for example in examples:
        if step == COUNTERFACTUAL:
            # A wrong choice listed twice in a question is explained once.
            wrong = list(dict.fromkeys(example.wrong_choices))
            if teacher.counterfactuals is not None:
                wrong = wrong[: teacher.counterfactuals]
            # The same prompt asked about the gold answer: the paper's MT+CF factual target.
            asked = [(GOLD, "", example.answer)] + [(step, choice, choice) for choice in wrong]
            for key_step, choice, answer in asked:
                item_key = key(example, key_step, choice)
                if item_key in latest:
                    summary.skipped += 1
                    summary.count(key_step, "skipped")
                    continue
                yield _Item(item_key, request(prompts.counterfactual(example, answer)))
            continue
        item_key = key(example, step)
        if item_key in latest:
            summary.skipped += 1
            summary.count(step, "skipped")
            continue
        if step == EXPLAIN:
            contrast = None
            if teacher.contrastive_lambda > 0 and example.wrong_choices:
                rng = random.Random(f"{teacher.seed}:{example.id}:contrast")
                wrong_answer = rng.choice(sorted(set(example.wrong_choices)))
                contrast = prompts.explain_with_answer(example, wrong_answer)
            yield _Item(item_key, request(prompts.explain(example), contrast))
            continue
        pair = prompts.request_draw(example.id, seed=teacher.seed)
        explanation = usable_text(example, EXPLAIN)
        critique = usable_text(example, CRITIQUE) if step == REVISE else ""
        if explanation is None or critique is None:
            summary.blocked += 1
            summary.count(step, "blocked")
            continue
        if step == CRITIQUE:
            prompt = prompts.critique(example, explanation=explanation, request=pair)
            yield _Item(item_key, request(prompt), pair.critique)
        else:
            prompt = prompts.revise(
                example, explanation=explanation, critique=critique, request=pair
            )
            yield _Item(item_key, request(prompt), pair.revision)


def _batch_run(
    batch: list[_Item], backend: TeacherBackend, teacher: TeacherConfig
) -> list[TeacherRecord]:
    results = backend.generate([item.request for item in batch])
    records = []
    for item, result in zip(batch, results, strict=True):
        cleaned = output_clean(result.text, stop=teacher.stop, hit_limit=result.hit_limit)
        records.append(
            TeacherRecord(
                example_id=item.key.example_id,
                step=item.key.step,
                teacher=item.key.teacher,
                template_hash=item.key.template_hash,
                choice=item.key.choice,
                raw=result.text,
                text=cleaned.text,
                status=cleaned.status,
                reason=cleaned.reason,
                request=item.critique_request,
                source="generate",
            )
        )
    return records


def _tally(summary: GenerationSummary, record: TeacherRecord) -> None:
    summary.count(record.step, record.status)
    if record.usable:
        summary.done += 1
        summary.truncated += record.status == TRUNCATED
    else:
        summary.failed += 1


def _chunks(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
