"""Small shared builders for the student-side distillation tests (examples, teacher, tokenizer)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from distillation.config import TrainingConfig
from distillation.features import view_texts
from distillation.students import TinyT5Config, tiny_t5_build, tokenizer_train
from distillation.types import Example, TeacherExplanations
from studyformats.explanations import RECORD_FIELDS

ROOT = Path(__file__).resolve().parents[2]

# The keys of one line of the explanations file, as the study import reads them.
EXPLANATION_KEYS = set(RECORD_FIELDS)

TOPICS = [
    (
        "Where do you keep ice cream so it stays frozen?",
        ["oven", "freezer", "shelf", "bag", "desk"],
        1,
    ),
    ("What do you use to cut paper?", ["scissors", "spoon", "pillow", "cup", "sock"], 0),
    ("Where does a pilot work?", ["farm", "bakery", "cockpit", "library", "pool"], 2),
    ("What do plants need from the sun?", ["noise", "salt", "rain", "light", "wind"], 3),
    ("Where do fish live?", ["desert", "attic", "garage", "closet", "water"], 4),
    ("What do you wear on your feet?", ["hat", "shoes", "gloves", "scarf", "belt"], 1),
]


def examples_make(count: int = 6) -> list[Example]:
    examples = []
    for index in range(count):
        question, choices, gold = TOPICS[index % len(TOPICS)]
        examples.append(
            Example(
                id=f"q{index}",
                question=f"{question} ({index})",
                choices=tuple(choices),
                answer=choices[gold],
            )
        )
    return examples


def teacher_make(examples: list[Example]) -> dict[str, TeacherExplanations]:
    return {
        example.id: TeacherExplanations(
            example_id=example.id,
            original=f"The {example.answer} is where this belongs.",
            critique="It does not say why the others are worse.",
            revised=f"Only the {example.answer} fits; the other choices do not.",
            counterfactuals={
                choice: f"Perhaps the {choice} fits." for choice in example.wrong_choices
            },
        )
        for example in examples
    }


def tokenizer_make(examples: list[Example], teacher: dict[str, TeacherExplanations]) -> Any:
    texts = []
    for variant in ("original", "revised"):
        views, _ = view_texts(examples, teacher, method="mt+cf", data_variant=variant, seed=0)
        for items in views.values():
            for item in items:
                if item is not None:
                    texts.append(item[0])
                    texts.append(" ".join(part for part, _ in item[1]))
    return tokenizer_train(texts, vocab_size=150)


TINY = TinyT5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=150)


def model_make(tokenizer: Any, *, seed: int = 0, dropout: float = 0.1) -> Any:
    return tiny_t5_build(tokenizer, replace(TINY, dropout_rate=dropout), seed=seed)


def training_make(**overrides: Any) -> TrainingConfig:
    settings: dict[str, Any] = {
        "steps": 4,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "eval_every": 2,
        "checkpoint_every": 2,
        "log_every": 1,
        "max_input_length": 64,
        "max_target_length": 32,
        "eval_batch_size": 4,
        "answer_max_new_tokens": 4,
        "explanation_max_new_tokens": 8,
        "mixed_precision": "no",
        "tiny_t5": TINY,
    }
    settings.update(overrides)
    return TrainingConfig(**settings)


class ScriptedModel(torch.nn.Module):
    """A stand-in seq2seq model whose greedy output for each input text is scripted."""

    def __init__(self, tokenizer, outputs: dict[str, str]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.tokenizer = tokenizer
        self.outputs = outputs
        self.calls: list[int] = []

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        self.calls.append(input_ids.shape[0])
        rows = []
        eos = self.tokenizer.eos_token_id
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            text = self.tokenizer.decode(ids[mask.bool()], skip_special_tokens=True)
            reply = self.tokenizer(self.outputs[text], add_special_tokens=False)["input_ids"]
            # As Hugging Face counts it: the end-of-sequence token is one of the new tokens,
            # so a reply that fills the cap is cut before it.
            rows.append([0, *[*reply, eos][:max_new_tokens]])
        width = max(len(row) for row in rows)
        return torch.tensor([row + [0] * (width - len(row)) for row in rows])


def decoded_input(tokenizer: Any, text: str) -> str:
    """The input text as the model sees it after tokenisation (what ScriptedModel keys on)."""
    return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"])
