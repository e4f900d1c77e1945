"""Participant-facing forms: the Prolific link, consent and the five-row Likert rating."""

from __future__ import annotations

from typing import Any

from django import forms

from studyapp.models import (
    DIMENSION_STATEMENTS,
    LIKERT_LABELS,
    PROLIFIC_ID_MESSAGE,
    PROLIFIC_ID_PATTERN,
    Dimension,
)


class EntryForm(forms.Form):
    """The query string of the participant link."""

    PROLIFIC_PID = forms.RegexField(
        regex=PROLIFIC_ID_PATTERN,
        error_messages={"required": "is missing", "invalid": PROLIFIC_ID_MESSAGE},
    )
    STUDY_ID = forms.RegexField(
        regex=PROLIFIC_ID_PATTERN, required=False, error_messages={"invalid": PROLIFIC_ID_MESSAGE}
    )
    SESSION_ID = forms.RegexField(
        regex=PROLIFIC_ID_PATTERN, required=False, error_messages={"invalid": PROLIFIC_ID_MESSAGE}
    )

    def problems(self) -> list[str]:
        """Each problem as one readable sentence naming the parameter."""
        return [
            f"{field} {message}" for field, messages in self.errors.items() for message in messages
        ]


class ConsentForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("agree", "I agree"), ("decline", "I do not agree")],
        error_messages={
            "required": "Please choose whether you agree to take part.",
            "invalid_choice": "Please choose whether you agree to take part.",
        },
    )


class RatingForm(forms.Form):
    """One required 1–5 choice per dimension, plus the step the page was shown for."""

    step = forms.RegexField(regex=r"\A(item|check)-[0-9]{1,3}\Z")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for dimension in Dimension:
            self.fields[dimension.value] = forms.TypedChoiceField(
                label=DIMENSION_STATEMENTS[dimension],
                choices=list(LIKERT_LABELS.items()),
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={
                    "required": f"Please choose an answer for “{dimension.label}”.",
                    "invalid_choice": (
                        f"“{dimension.label}” needs a value from 1 (strongly disagree) "
                        "to 5 (strongly agree)."
                    ),
                },
            )

    def rows(self) -> list[forms.BoundField]:
        return [self[dimension.value] for dimension in Dimension]

    def values(self) -> dict[str, int]:
        return {dimension.value: self.cleaned_data[dimension.value] for dimension in Dimension}
