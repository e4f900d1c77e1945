from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from distillation.generation import teacher_outputs_generate
from distillation.prompts import PROMPTS_DIR, prompts_load
from distillation.store import TeacherStore, teacher_explanations_load
from distillation.teacher_config import TeacherConfig
from distillation.teachers import GenerationRequest, GenerationResult
from distillation.types import Example

EXAMPLES = [
    Example("q1", "Where would a cat sleep?", ("sofa", "oven", "lake", "oven", "road"), "sofa"),
    Example("q2", "What keeps milk cold?", ("fridge", "stove", "bag", "box", "sun"), "fridge"),
]


class ScriptedBackend:
    """Answers every prompt alike, except prompts whose tail holds a marker given in `replies`."""

    name = "scripted"

    def __init__(self, replies: dict[str, str] | None = None) -> None:
        self.replies = replies or {}
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.requests.extend(requests)
        results = []
        for request in requests:
            reply = next(
                (text for marker, text in self.replies.items() if marker in request.prompt[-60:]),
                f"It fits ({request.prompt.count('Question:')} questions in the prompt).",
            )
            results.append(GenerationResult(text=reply, hit_limit=False, new_tokens=5))
        return results


def config(**changes: object) -> TeacherConfig:
    return TeacherConfig(**{"model": "scripted", "batch_size": 3, **changes})  # type: ignore[arg-type]


def test_it_runs_every_step_and_stores_them_under_the_template_hashes(tmp_path: Path) -> None:
    backend = ScriptedBackend()

    summary = teacher_outputs_generate(
        examples=EXAMPLES, teacher=config(), store_dir=tmp_path, backend=backend, progress=False
    )

    # q1 has three distinct wrong choices ("oven" twice), q2 four; each also its gold answer's.
    assert (summary.done, summary.failed, summary.skipped, summary.blocked) == (
        6 + 3 + 4 + 2,
        0,
        0,
        0,
    )
    hashes = prompts_load().hashes
    keys = TeacherStore(tmp_path).stored_keys()
    # The gold answer's explanation comes from the counterfactual prompt, under its hash.
    assert {(key.step, key.template_hash) for key in keys} == set(hashes.items()) | {
        ("gold", hashes["counterfactual"])
    }
    assert {key.choice for key in keys if key.example_id == "q1" and key.choice} == {
        "oven",
        "lake",
        "road",
    }
    loaded = teacher_explanations_load(tmp_path)
    assert loaded["q1"].original == "It fits (4 questions in the prompt)."
    assert set(loaded["q2"].counterfactuals) == {"stove", "bag", "box", "sun"}
    assert loaded["q2"].gold == "It fits (4 questions in the prompt)."
    gold_prompts = [
        r.prompt for r in backend.requests if r.prompt.endswith("Answer: fridge\nExplanation:")
    ]
    assert len(gold_prompts) == 2  # the explain prompt and the counterfactual prompt


def test_critique_and_revision_read_the_stored_outputs_before_them(tmp_path: Path) -> None:
    backend = ScriptedBackend(
        {"Answer: sofa\nExplanation:": "Cats love soft sofas.", "Critique:": "Name the oven."}
    )

    teacher_outputs_generate(
        examples=EXAMPLES[:1], teacher=config(), store_dir=tmp_path, backend=backend, progress=False
    )

    critique_prompt = next(r.prompt for r in backend.requests if r.prompt.endswith("Critique:"))
    revise_prompt = next(r.prompt for r in backend.requests if r.prompt.endswith("Revision:"))
    assert "Explanation: Cats love soft sofas.\nRequest:" in critique_prompt
    assert "Critique: Name the oven.\nRequest:" in revise_prompt


def test_only_the_first_k_counterfactuals_are_asked_for(tmp_path: Path) -> None:
    backend = ScriptedBackend()

    teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=config(steps=("counterfactual",), counterfactuals=2),
        store_dir=tmp_path,
        backend=backend,
        progress=False,
    )

    keys = TeacherStore(tmp_path).stored_keys()
    assert {key.choice for key in keys if key.step == "counterfactual"} == {
        "oven",
        "lake",
        "stove",
        "bag",
    }
    # The gold answer's explanation does not count among the k wrong choices.
    assert {key.example_id for key in keys if key.step == "gold"} == {"q1", "q2"}


def test_a_failed_explanation_is_stored_with_its_reason_and_blocks_what_builds_on_it(
    tmp_path: Path,
) -> None:
    backend = ScriptedBackend({"Answer: sofa\nExplanation:": "   "})
    teacher = config(steps=("explain", "critique", "revise"))

    first = teacher_outputs_generate(
        examples=EXAMPLES, teacher=teacher, store_dir=tmp_path, backend=backend, progress=False
    )
    again = teacher_outputs_generate(
        examples=EXAMPLES, teacher=teacher, store_dir=tmp_path, backend=backend, progress=False
    )

    assert (first.done, first.failed, first.blocked) == (3, 1, 2)
    assert (again.done, again.failed, again.skipped, again.blocked) == (0, 0, 4, 2)
    failed = [r for r in TeacherStore(tmp_path).records() if r.status != "ok"]
    assert [(r.example_id, r.step, r.status, r.raw) for r in failed] == [
        ("q1", "explain", "empty", "   ")
    ]
    assert teacher_explanations_load(tmp_path)["q1"].original is None


def test_a_changed_template_is_generated_again(tmp_path: Path) -> None:
    prompts_dir = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, prompts_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    teacher = config(steps=("explain",), prompts_dir=prompts_dir)
    teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=teacher,
        store_dir=tmp_path / "store",
        backend=ScriptedBackend(),
        progress=False,
    )
    explain = prompts_dir / "explain.txt"
    explain.write_text(explain.read_text("utf-8").replace("short", "brief"), "utf-8")

    summary = teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=teacher,
        store_dir=tmp_path / "store",
        backend=ScriptedBackend(),
        progress=False,
    )

    assert (summary.done, summary.skipped) == (2, 0)
    assert len({key.template_hash for key in TeacherStore(tmp_path / "store").stored_keys()}) == 2


def test_contrastive_decoding_puts_a_wrong_answer_into_the_contrast_prompt(tmp_path: Path) -> None:
    backend = ScriptedBackend()

    teacher_outputs_generate(
        examples=EXAMPLES[:1],
        teacher=config(steps=("explain",), contrastive_lambda=0.5),
        store_dir=tmp_path,
        backend=backend,
        progress=False,
    )

    (request,) = backend.requests
    assert request.contrast_prompt is not None
    gold_tail = request.prompt.rsplit("Question:", 1)[1]
    contrast_tail = request.contrast_prompt.rsplit("Question:", 1)[1]
    assert "Answer: sofa" in gold_tail
    assert any(f"Answer: {wrong}\n" in contrast_tail for wrong in ("oven", "lake", "road"))


def test_a_finished_store_never_loads_the_teacher(tmp_path: Path) -> None:
    teacher = config(steps=("explain",))
    teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=teacher,
        store_dir=tmp_path,
        backend=ScriptedBackend(),
        progress=False,
    )
    # No backend is passed: building the "hf" teacher named "scripted" would fail loudly.

    summary = teacher_outputs_generate(
        examples=EXAMPLES, teacher=teacher, store_dir=tmp_path, progress=False
    )

    assert (summary.done, summary.skipped) == (0, 2)


def test_limit_keeps_the_first_examples(tmp_path: Path) -> None:
    summary = teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=config(steps=("explain",)),
        store_dir=tmp_path,
        limit=1,
        backend=ScriptedBackend(),
        progress=False,
    )

    assert summary.done == 1
    assert {key.example_id for key in TeacherStore(tmp_path).stored_keys()} == {"q1"}


def test_an_import_teacher_imports_its_source(tmp_path: Path) -> None:
    source = tmp_path / "outputs.jsonl"
    row = {
        "id": "q2",
        "question": "What keeps milk cold?",
        "choices": list(EXAMPLES[1].choices),
        "answer": "fridge",
        "explanation": "It is cold inside.",
        "revision": "",
    }
    source.write_text(json.dumps(row) + "\n", encoding="utf-8")

    summary = teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=TeacherConfig(backend="import", source=source),
        store_dir=tmp_path / "store",
        progress=False,
    )

    assert (summary.done, summary.failed) == (1, 1)
    assert teacher_explanations_load(tmp_path / "store")["q2"].original == "It is cold inside."


def test_the_progress_bar_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=config(steps=("explain",)),
        store_dir=tmp_path,
        backend=ScriptedBackend(),
        progress=True,
    )

    assert "teacher explain" in capsys.readouterr().err


def test_a_half_written_line_from_a_killed_run_is_redone_and_reported(tmp_path: Path) -> None:
    teacher = config(steps=("explain",))
    teacher_outputs_generate(
        examples=EXAMPLES[:1],
        teacher=teacher,
        store_dir=tmp_path,
        backend=ScriptedBackend(),
        progress=False,
    )
    (segment,) = TeacherStore(tmp_path).segments()
    with segment.open("a", encoding="utf-8") as handle:
        handle.write('{"example_id": "q2", "step": "explain", "te')  # killed mid-write

    summary = teacher_outputs_generate(
        examples=EXAMPLES,
        teacher=teacher,
        store_dir=tmp_path,
        backend=ScriptedBackend(),
        progress=False,
    )

    assert (summary.done, summary.skipped) == (1, 1)
    assert summary.torn_lines == [f"{segment}:2"]
    assert "ignored 1 half-written line(s)" in "\n".join(summary.lines())
