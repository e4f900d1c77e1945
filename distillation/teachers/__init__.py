"""Teacher backends: what turns a list of prompts into a list of raw outputs.

A backend has a ``name`` (the teacher model, stored in every record's key) and a
``generate(requests)`` that returns one :class:`GenerationResult` per request, in order. Two
backends exist: ``hf`` (a local causal LM, :mod:`distillation.teachers.hf`) and ``openai`` (any
OpenAI-compatible server, :mod:`distillation.teachers.openai`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from distillation.errors import ConfigError, DistillationError

if TYPE_CHECKING:
    from distillation.teacher_config import TeacherConfig


class TeacherError(DistillationError):
    """The teacher cannot produce outputs: server unreachable or refusing, model not loadable."""


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete.

    ``contrast_prompt`` turns on contrastive decoding for this request: the same prompt with a
    wrong answer put in, whose token log-probabilities are subtracted (times lambda).
    """

    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    contrast_prompt: str | None = None


@dataclass(frozen=True)
class GenerationResult:
    """The generated text (without the prompt) and whether it ended at ``max_new_tokens``."""

    text: str
    hit_limit: bool
    new_tokens: int = 0


class TeacherBackend(Protocol):
    name: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...


def teacher_backend_build(config: TeacherConfig) -> TeacherBackend:
    """The backend that ``config.backend`` names, loaded and ready to generate."""
    if config.backend == "hf":
        from distillation.teachers.hf import HFTeacher

        return HFTeacher.from_config(config)
    if config.backend == "openai":
        from distillation.teachers.openai import OpenAITeacher

        return OpenAITeacher.from_config(config)
    raise ConfigError(f"teacher.backend {config.backend!r} does not generate; use 'hf' or 'openai'")
