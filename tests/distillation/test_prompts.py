from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from distillation.errors import ConfigError
from distillation.prompts import PROMPTS_DIR, choices_format, prompts_load
from distillation.types import Example

EXAMPLE = Example(
    "q1",
    "Where would a cat most likely sleep?",
    ("sofa", "ocean", "oven", "highway", "cloud"),
    "sofa",
)


@pytest.fixture
def prompts_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return folder


def test_the_bundled_templates_fill_every_step() -> None:
    prompts = prompts_load()
    pair = prompts.request_draw(EXAMPLE.id, seed=0)

    explain = prompts.explain(EXAMPLE)
    counterfactual = prompts.counterfactual(EXAMPLE, "oven")
    critique = prompts.critique(EXAMPLE, explanation="Cats like soft places.", request=pair)
    revise = prompts.revise(
        EXAMPLE, explanation="Cats like soft places.", critique="Too short.", request=pair
    )

    assert explain.endswith(
        "Question: Where would a cat most likely sleep?\n"
        "Choices: (a) sofa (b) ocean (c) oven (d) highway (e) cloud\n"
        "Answer: sofa\nExplanation:"
    )
    assert counterfactual.rstrip().endswith("Answer: oven\nExplanation:")
    assert pair.critique in critique
    assert "Explanation: Cats like soft places." in critique
    assert pair.revision in revise
    assert "Critique: Too short." in revise
    assert "$" not in explain + counterfactual + critique + revise


def test_the_request_draw_is_seeded_by_question() -> None:
    prompts = prompts_load()
    ids = [f"q{i}" for i in range(40)]

    first = [prompts.request_draw(i, seed=1) for i in ids]
    again = [prompts.request_draw(i, seed=1) for i in ids]
    other_seed = [prompts.request_draw(i, seed=2) for i in ids]

    assert first == again
    assert first != other_seed
    assert len(set(first)) > 1  # the draw actually varies between questions


def test_hashes_change_with_the_template_and_flow_downstream(prompts_copy: Path) -> None:
    before = prompts_load(prompts_copy).hashes
    explain = prompts_copy / "explain.txt"
    text = explain.read_text(encoding="utf-8")
    explain.write_text(text.replace("a short explanation", "a brief explanation"), encoding="utf-8")

    after = prompts_load(prompts_copy).hashes

    assert after["explain"] != before["explain"]
    # A critique of a different explanation is a different output, and so is its revision.
    assert after["critique"] != before["critique"]
    assert after["revise"] != before["revise"]
    assert after["counterfactual"] == before["counterfactual"]
    assert prompts_load(prompts_copy).hashes == after


def test_a_template_missing_a_field_is_rejected(prompts_copy: Path) -> None:
    (prompts_copy / "critique.txt").write_text("Question: $question\nCritique:", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"critique.txt: missing \$answer, \$choices"):
        prompts_load(prompts_copy)


def test_bad_request_pairs_are_rejected(prompts_copy: Path) -> None:
    (prompts_copy / "critique_requests.json").write_text(
        json.dumps([{"critique": "Find faults."}]), encoding="utf-8"
    )

    with pytest.raises(ConfigError, match="item 1 must be an object"):
        prompts_load(prompts_copy)


def test_a_missing_prompts_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        prompts_load(tmp_path / "nowhere")


def test_choices_are_lettered() -> None:
    assert choices_format(("x", "y")) == "(a) x (b) y"
