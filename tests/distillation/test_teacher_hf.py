from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distillation.generation import teacher_outputs_generate
from distillation.store import TeacherStore, teacher_explanations_load
from distillation.teacher_config import TeacherConfig
from distillation.teachers import GenerationRequest, TeacherError
from distillation.teachers.decoding import result_from_tokens
from distillation.teachers.hf import HFTeacher
from distillation.teachers.tiny import tiny_causal_lm_build, tiny_tokenizer_train, torch_threads
from distillation.types import Example

CORPUS = [
    "Question: where would a cat sleep? Answer: sofa. Explanation: cats like soft warm places.",
    "Question: what keeps milk cold? Answer: refrigerator. Explanation: it is cold inside.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
] * 5
PROMPTS = [
    "Question: where",  # different lengths: batching must pad them on the left
    "Question: what keeps milk cold? Answer:",
    "The quick brown fox",
    "cats",
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer_train(CORPUS, vocab_size=300)


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> Any:
    return tiny_causal_lm_build(tokenizer, kind="llama", seed=1)


def requests(n_tokens: int = 10, stop: tuple[str, ...] = ()) -> list[GenerationRequest]:
    return [GenerationRequest(prompt, n_tokens, stop) for prompt in PROMPTS]


def test_it_pads_on_the_left(model: Any, tokenizer: Any) -> None:
    teacher = HFTeacher(model, tokenizer, name="tiny")

    assert teacher.tokenizer.padding_side == "left"
    assert teacher.tokenizer.pad_token is not None


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_batched_generation_matches_one_prompt_at_a_time(kind: str, tokenizer: Any) -> None:
    model = tiny_causal_lm_build(tokenizer, kind=kind, seed=1)
    teacher = HFTeacher(model, tokenizer, name="tiny", batch_size=4)

    batched = teacher.generate(requests())
    alone = [teacher.generate([request])[0] for request in requests()]

    assert batched == alone
    assert all(result.hit_limit == (result.new_tokens == 10) for result in batched)


def test_seeded_sampling_is_reproducible(model: Any, tokenizer: Any) -> None:
    def sample(seed: int) -> list[str]:
        teacher = HFTeacher(
            model, tokenizer, name="tiny", do_sample=True, temperature=1.5, top_p=1.0, seed=seed
        )
        return [result.text for result in teacher.generate(requests(n_tokens=8)[:2])]

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)


def test_generation_ends_at_a_stop_sequence(model: Any, tokenizer: Any) -> None:
    teacher = HFTeacher(model, tokenizer, name="tiny")
    free = teacher.generate(requests(n_tokens=12))
    prompt, text = next(
        (request.prompt, result.text)
        for request, result in zip(requests(), free, strict=True)
        if len(result.text.split()) >= 3
    )
    # Whatever the random model writes, its own second word is a stop sequence that must end
    # the output right before it.
    stop = " " + text.split()[1]

    (stopped,) = teacher.generate([GenerationRequest(prompt, 12, (stop,))])

    assert stopped.text == text[: text.index(stop)]
    assert not stopped.hit_limit
    assert stopped.new_tokens < 12


def test_tokens_after_eos_are_dropped_and_do_not_count_as_hitting_the_limit(
    tokenizer: Any,
) -> None:
    words = tokenizer.encode("cats like")
    eos = tokenizer.eos_token_id

    result = result_from_tokens(
        tokenizer, [*words, eos, eos], max_new_tokens=len(words) + 2, stop=()
    )

    assert result.text == "cats like"
    assert not result.hit_limit
    assert result.new_tokens == len(words)


def test_it_loads_a_saved_model_by_path(model: Any, tokenizer: Any, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    config = TeacherConfig(model=str(tmp_path / "teacher"), dtype="float32")

    loaded = HFTeacher.from_config(config)

    assert loaded.name == str(tmp_path / "teacher")
    assert loaded.generate(requests()) == HFTeacher(model, tokenizer, name="x").generate(requests())


def test_an_unloadable_model_is_a_teacher_error(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="cannot load teacher model"):
        HFTeacher.from_config(TeacherConfig(model=str(tmp_path / "missing")))


def write_short_prompts(folder: Path) -> Path:
    # Short templates keep the tiny model's forward passes cheap.
    folder.mkdir()
    (folder / "explain.txt").write_text("Q: $question C: $choices A: $answer E:", "utf-8")
    (folder / "counterfactual.txt").write_text("Q: $question C: $choices A: $answer E:", "utf-8")
    (folder / "critique.txt").write_text(
        "Q: $question C: $choices A: $answer E: $explanation R: $critique_request K:", "utf-8"
    )
    (folder / "revise.txt").write_text(
        "Q: $question C: $choices A: $answer E: $explanation K: $critique R: $revision_request E:",
        "utf-8",
    )
    (folder / "critique_requests.json").write_text(
        '[{"critique": "Find faults.", "revision": "Fix them."}]', "utf-8"
    )
    return folder


def test_generation_with_the_hf_backend_fills_the_store_and_resumes(
    model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    examples = [
        Example(
            f"q{i}",
            f"where would a cat sleep {i}?",
            ("sofa", "oven", "river", "dog", "milk"),
            "sofa",
        )
        for i in range(3)
    ]
    config = TeacherConfig(
        model="tiny",
        batch_size=2,
        counterfactuals=2,
        contrastive_lambda=0.5,
        max_new_tokens={"explain": 6, "critique": 6, "revise": 6, "counterfactual": 6},
        prompts_dir=write_short_prompts(tmp_path / "prompts"),
    )
    teacher = HFTeacher(model, tokenizer, name="tiny", batch_size=2, contrastive_lambda=0.5)

    first = teacher_outputs_generate(
        examples=examples,
        teacher=config,
        store_dir=tmp_path / "store",
        backend=teacher,
        progress=False,
    )
    second = teacher_outputs_generate(
        examples=examples,
        teacher=config,
        store_dir=tmp_path / "store",
        backend=teacher,
        progress=False,
    )

    stored = list(TeacherStore(tmp_path / "store").records())
    # Random weights may end an output at once (EOS): it is then stored as a failure, and the
    # critique and revision built on it are blocked; nothing is lost either way.
    assert first.done + first.failed == len(stored)
    # Per question: explain, critique, revise, two counterfactuals and the gold answer's one.
    assert len(stored) + first.blocked == 3 * (3 + 2 + 1)
    assert (second.done, second.failed, second.skipped) == (0, 0, len(stored))
    assert second.blocked == first.blocked
    assert {record.example_id for record in stored} == {"q0", "q1", "q2"}
    assert set(teacher_explanations_load(tmp_path / "store")) == {"q0", "q1", "q2"}
