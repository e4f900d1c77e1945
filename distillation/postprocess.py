"""Turning a teacher's raw output into the explanation text that students learn from.

Students use only the first line of an output, as the paper's authors trained them. Cleaning
cuts at stop sequences, drops a leading "The answer is X." (the prompts ask for it, the students
should not learn to repeat it), keeps the first line and flags an output cut at the token limit. A failure is reported with
a status and a reason, never as an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

OK = "ok"
EMPTY = "empty"
UNPARSEABLE = "unparseable"
TRUNCATED = "truncated"
STATUSES = (OK, EMPTY, UNPARSEABLE, TRUNCATED)
# Statuses whose cleaned text students may use; the others carry ``text=None``.
USABLE = (OK, TRUNCATED)

_ANSWER_PREFIX = re.compile(
    r"""^\s*(?:so,?\s+|therefore,?\s+)?(?:the\s+)?(?:correct\s+|best\s+|right\s+)?answer
        (?:\s+is\s*:?|\s*:)\s*            # "The answer is", "Answer:"
        # the answer itself, short; "The answer is X because Y." is an explanation and stays
        (?:"[^"\n]{0,80}"|'[^'\n]{0,80}'|(?:(?!\bbecause\b|\bsince\b|\bas\b)[^.\n]){1,80})
        \.(?=\s|$)\s*                     # its full stop, then the explanation
    """,
    re.IGNORECASE | re.VERBOSE,
)
_SENTENCE_END = re.compile(r"""[.!?]["')\]]*(?=\s|$)""")
_FINAL_STOP = re.compile(r"""[.!?]["')\]]*$""")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class CleanedOutput:
    """The cleaned text (``None`` when unusable), its status and a reason a person can read."""

    text: str | None
    status: str
    reason: str = ""


def output_clean(
    raw: str | None, *, stop: Sequence[str] = (), hit_limit: bool | None = None
) -> CleanedOutput:
    """Clean one raw teacher output.

    ``hit_limit`` says whether generation ended at ``max_new_tokens``; ``None`` (published
    outputs, where nobody recorded it) falls back to looking for a sentence cut mid-way.
    """
    if raw is None or not raw.strip():
        return CleanedOutput(None, EMPTY, "the teacher returned no text")
    text = raw.lstrip()
    # Leading blank lines are only layout, but a stop marker right at the start ("Question:")
    # means the model skipped the answer and began a new example.
    if any(sequence.strip() and text.startswith(sequence.strip()) for sequence in stop):
        return CleanedOutput(None, UNPARSEABLE, "starts a new example instead of answering")
    text, stopped = cut_at_stop(text, stop)
    without_prefix = _ANSWER_PREFIX.sub("", text, count=1)
    if not without_prefix.strip():
        return CleanedOutput(None, UNPARSEABLE, "states the answer but gives no explanation")
    lines = without_prefix.strip().split("\n")
    first = " ".join(lines[0].split())
    if not _LETTER.search(first):
        return CleanedOutput(None, UNPARSEABLE, "the output contains no words")
    # Only a cut inside the first line matters: later lines are discarded anyway.
    if hit_limit is None:
        cut = not _ends_sentence(first)
    else:
        cut = hit_limit and not stopped and len(lines) == 1 and not _ends_sentence(first)
    if not cut:
        return CleanedOutput(first, OK)
    complete = _complete_sentences(first)
    if complete:
        return CleanedOutput(
            complete, TRUNCATED, "cut at the generation limit; the unfinished sentence was dropped"
        )
    return CleanedOutput(first, TRUNCATED, "cut at the generation limit inside its first sentence")


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    positions = [text.find(sequence) for sequence in stop if sequence]
    found = [position for position in positions if position >= 0]
    if not found:
        return text, False
    return text[: min(found)], True


def _ends_sentence(text: str) -> bool:
    return bool(_FINAL_STOP.search(text.rstrip()))


def _complete_sentences(text: str) -> str:
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].strip() if ends else ""
