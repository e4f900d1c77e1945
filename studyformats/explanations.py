"""The explanations file: one JSON object a line, one student explanation each.

``distillation`` writes it (``ExplanationRecord.as_json``) and ``studyapp`` imports it
(``studyapp.importing`` checks every line against these fields). The format is documented
in docs/formats.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# "METHOD:variant", e.g. "MT+CF:revised"; the parts become the condition's method and data
# variant. Matched whole (fullmatch): "$" would also accept a final newline.
CONDITION_PATTERN = re.compile(r"(?P<method>[A-Za-z0-9+_.\-]+):(?P<variant>[A-Za-z0-9+_.\-]+)")
REQUIRED_TEXT_FIELDS = ("condition", "question_id", "question", "answer", "predicted_answer")
OPTIONAL_TEXT_FIELDS = ("student", "method", "data_variant", "run")
# Every key of one line, in the order they are written.
RECORD_FIELDS = (
    "condition",
    "question_id",
    "question",
    "choices",
    "answer",
    "predicted_answer",
    "explanation",
    "student",
    "method",
    "data_variant",
    "run",
    "truncated",
)


@dataclass(frozen=True)
class ExplanationRecord:
    """One line of an explanations file; ``line`` is its number in the file it was read from
    (0 for a record not read from a file)."""

    condition: str
    question_id: str
    question: str
    choices: tuple[str, ...]
    answer: str
    predicted_answer: str
    explanation: str
    method: str
    data_variant: str
    student: str = ""
    run: str = ""
    # The student's output hit the generation cap, so the explanation may be cut short.
    truncated: bool = False
    line: int = 0

    def as_json(self) -> dict[str, Any]:
        """The line's JSON object, its keys in ``RECORD_FIELDS`` order.

        Examples
        --------
        >>> record = ExplanationRecord(
        ...     condition="MT:original", question_id="q1", question="Where?",
        ...     choices=("bank", "park"), answer="bank", predicted_answer="bank",
        ...     explanation="Money is kept there.", method="mt", data_variant="original",
        ... )
        >>> list(record.as_json()) == list(RECORD_FIELDS), record.as_json()["choices"]
        (True, ['bank', 'park'])
        """
        values = {field: getattr(self, field) for field in RECORD_FIELDS}
        values["choices"] = list(self.choices)
        return values
