"""The project's prompt templates and the functions that fill them.

Each step has a template file in this folder (``explain.txt``, ``critique.txt``, ``revise.txt``,
``counterfactual.txt``) written as a few-shot prompt with ``$name`` fields
(:class:`string.Template`), and ``critique_requests.json`` holds the critique/revision request
pairs from which each question draws one, seeded. A run may point ``teacher.prompts_dir`` at a
folder of its own files with the same names.

Every stored output carries its template's hash, so that changing a template makes the pipeline
generate again instead of mixing outputs of two prompts. The hash of ``critique`` and ``revise``
also covers the request pairs and the hash of the step whose output they consume.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from string import Template

from distillation.errors import ConfigError
from distillation.types import Example

PROMPTS_DIR = Path(__file__).resolve().parent
TEMPLATE_FILES = {
    "explain": "explain.txt",
    "critique": "critique.txt",
    "revise": "revise.txt",
    "counterfactual": "counterfactual.txt",
}
REQUESTS_FILE = "critique_requests.json"
# The $fields each template must use: a template that forgets one silently drops an input.
REQUIRED_FIELDS = {
    "explain": {"question", "choices", "answer"},
    "counterfactual": {"question", "choices", "answer"},
    "critique": {"question", "choices", "answer", "explanation", "critique_request"},
    "revise": {"question", "choices", "answer", "explanation", "critique", "revision_request"},
}
HASH_LENGTH = 16


@dataclass(frozen=True)
class CritiqueRequest:
    """A request to critique an explanation and the matching request to revise it."""

    critique: str
    revision: str


@dataclass(frozen=True)
class PromptSet:
    """The loaded templates and request pairs of one prompts folder."""

    templates: dict[str, Template]
    requests: tuple[CritiqueRequest, ...]
    hashes: dict[str, str]

    def explain(self, example: Example) -> str:
        return self._render("explain", example, answer=example.answer)

    def counterfactual(self, example: Example, choice: str) -> str:
        """The prompt asking to explain ``choice`` as if it were the answer.

        Asked about a wrong choice it gives a counterfactual explanation; asked about the gold
        answer, a factual one written in the same style.
        """
        return self._render("counterfactual", example, answer=choice)

    def explain_with_answer(self, example: Example, answer: str) -> str:
        """The explain prompt with another answer put in, for contrastive decoding."""
        return self._render("explain", example, answer=answer)

    def critique(self, example: Example, *, explanation: str, request: CritiqueRequest) -> str:
        return self._render(
            "critique",
            example,
            answer=example.answer,
            explanation=explanation,
            critique_request=request.critique,
        )

    def revise(
        self, example: Example, *, explanation: str, critique: str, request: CritiqueRequest
    ) -> str:
        return self._render(
            "revise",
            example,
            answer=example.answer,
            explanation=explanation,
            critique=critique,
            revision_request=request.revision,
        )

    def request_draw(self, example_id: str, *, seed: int) -> CritiqueRequest:
        """The request pair for one question: seeded by the question, so reruns draw the same."""
        rng = random.Random(f"{seed}:{example_id}")
        return self.requests[rng.randrange(len(self.requests))]

    def _render(self, step: str, example: Example, **values: str) -> str:
        return self.templates[step].substitute(
            question=example.question, choices=choices_format(example.choices), **values
        )


def choices_format(choices: tuple[str, ...]) -> str:
    """``(a) first (b) second ...``, the layout the templates' demonstrations use."""
    return " ".join(f"({chr(ord('a') + index)}) {choice}" for index, choice in enumerate(choices))


def prompts_load(prompts_dir: Path | None = None) -> PromptSet:
    """Load and check the templates in ``prompts_dir`` (default: this package's folder)."""
    folder = Path(prompts_dir) if prompts_dir is not None else PROMPTS_DIR
    if not folder.is_dir():
        raise ConfigError(f"teacher.prompts_dir {folder} is not a folder")
    # The file's final newline is not part of the prompt: the model continues after "...:".
    texts = {step: _read(folder / name).rstrip("\n") for step, name in TEMPLATE_FILES.items()}
    requests_text = _read(folder / REQUESTS_FILE)
    templates = {step: _template_checked(step, text, folder) for step, text in texts.items()}
    requests = _requests_parse(requests_text, folder / REQUESTS_FILE)
    hashes = {step: text_hash(texts[step]) for step in ("explain", "counterfactual")}
    # A critique depends on the explanation it reads, and a revision on the critique.
    hashes["critique"] = text_hash(texts["critique"], requests_text, hashes["explain"])
    hashes["revise"] = text_hash(texts["revise"], requests_text, hashes["critique"])
    return PromptSet(templates=templates, requests=requests, hashes=hashes)


def text_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:HASH_LENGTH]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read prompt file {path}: {error.strerror}") from None


def _template_checked(step: str, text: str, folder: Path) -> Template:
    template = Template(text)
    if not template.is_valid():
        raise ConfigError(
            f"{folder / TEMPLATE_FILES[step]}: a '$' that does not start a $field (write $$ for a dollar sign)"
        )
    used = set(template.get_identifiers())
    missing = REQUIRED_FIELDS[step] - used
    unknown = used - REQUIRED_FIELDS[step]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing ${', $'.join(sorted(missing))}")
        if unknown:
            problems.append(f"unknown ${', $'.join(sorted(unknown))}")
        raise ConfigError(f"{folder / TEMPLATE_FILES[step]}: {'; '.join(problems)}")
    return template


def _requests_parse(text: str, path: Path) -> tuple[CritiqueRequest, ...]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected a non-empty list of {{critique, revision}} objects")
    requests = []
    for number, item in enumerate(items, start=1):
        if (
            not isinstance(item, dict)
            or set(item) != {"critique", "revision"}
            or not all(isinstance(value, str) and value.strip() for value in item.values())
        ):
            raise ConfigError(
                f"{path}: item {number} must be an object with non-empty 'critique' and "
                "'revision' strings and nothing else"
            )
        requests.append(CritiqueRequest(critique=item["critique"], revision=item["revision"]))
    return tuple(requests)
