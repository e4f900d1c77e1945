"""Participant-facing forms: the Prolific link, consent and one rating row per dimension."""

from __future__ import annotations

from typing import Any

from django import forms

from studyapp.models import PROLIFIC_ID_MESSAGE, PROLIFIC_ID_PATTERN
from studyformats.questionnaire import PLAIN_5, Questionnaire


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
    """One required choice on the questionnaire's scale per dimension, plus the step the page
    was shown for. Messages name what the participant sees above the row: the statement on an
    item page, the dimension's label on an attention check (which shows no explanation for a
    statement to be about).

    Each choice's text is the point's accessible name: its label, or "3 of 7" for a point
    the scale leaves unlabelled (the page shows only its number).

    Examples
    --------
    >>> form = RatingForm({"step": "check-3", "plausibility": "6"}, check=True)
    >>> form.is_valid(), form.errors["plausibility"][0]
    (False, 'Please choose one of the 5 answers for “Plausibility”')
    >>> RatingForm().fields["plausibility"].choices[0], form.fields["plausibility"].label
    ((1, 'Strongly disagree'), 'Plausibility')
    """

    step = forms.RegexField(regex=r"\A(item|check)-[0-9]{1,3}\Z")

    def __init__(
        self,
        *args: Any,
        questionnaire: Questionnaire = PLAIN_5,
        check: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.questionnaire = questionnaire
        self.check = check
        scale = questionnaire.scale
        self.scale_points = scale.points
        self.labelled_points = frozenset(scale.named)
        choices = [
            (n, scale.label_of(n) or f"{n} of {scale.points}") for n in range(1, scale.points + 1)
        ]
        for dimension in questionnaire.dimensions:
            shown = dimension.label if check else dimension.statement
            self.fields[dimension.key] = forms.TypedChoiceField(
                label=shown,
                choices=choices,
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={
                    "required": f"Please choose an answer for “{shown}”",
                    "invalid_choice": (
                        f"Please choose one of the {scale.points} answers for “{shown}”"
                    ),
                },
            )

    def rows(self) -> list[forms.BoundField]:
        return [self[key] for key in self.questionnaire.keys]

    def values(self) -> dict[str, int]:
        return {key: self.cleaned_data[key] for key in self.questionnaire.keys}
