"""Forms of the researcher admin pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import validate_slug
from django.db.models import Count

from studyapp.importing import ExplanationRecord, ExplanationsFileError
from studyapp.models import Study
from studyapp.uploads import explanations_from_upload


class StudyUploadForm(forms.Form):
    """Create a study (or add to one) from an explanations file, as ``create_study`` does."""

    slug = forms.CharField(
        max_length=64,
        validators=[validate_slug],
        help_text="Short name used in the participant URL, e.g. 'cqa-2024'. An existing "
        "study with this name gets the file's new items added.",
    )
    explanations = forms.FileField(
        help_text="The explanations file (JSON Lines) written by run_distillation."
    )
    title = forms.CharField(
        max_length=200, required=False, help_text="Shown to participants (default: from the slug)."
    )
    completion_code = forms.CharField(
        max_length=64, required=False, help_text="The Prolific completion code (default: random)."
    )
    per_condition = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Items each participant rates from every condition (default 3).",
    )
    live = forms.BooleanField(required=False, help_text="Open the study to participants now.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[ExplanationRecord] = []
        # One line-numbered message per problem, shown as a list above the form.
        self.file_errors: list[str] = []

    def clean_explanations(self) -> Any:
        upload = self.cleaned_data["explanations"]
        try:
            self.records = explanations_from_upload(upload)
        except ExplanationsFileError as exc:
            self.file_errors = exc.errors
            count = len(exc.errors)
            raise forms.ValidationError(
                f"{count} problem{'s' if count != 1 else ''} in the file; nothing was imported."
            ) from None
        return upload


class ReasonForm(forms.Form):
    """The reason an exclusion or re-inclusion is recorded with."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Kept with the decision in the participant's audit record.",
    )

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise forms.ValidationError("Give a reason.")
        return reason


class DemographicsUploadForm(forms.Form):
    demographics = forms.FileField(
        help_text="Prolific's demographic export (CSV with a 'Participant id' column)."
    )


class StudyChangeForm(forms.ModelForm):
    """The study's settings; items per condition must stay possible with the study's pool."""

    class Meta:
        model = Study
        fields = (
            "title",
            "completion_code",
            "per_condition",
            "attention_checks",
            "time_limit_minutes",
            "max_participants",
            "max_ratings_per_explanation",
            "consent_text",
            "instructions_text",
        )

    def clean_per_condition(self) -> int:
        per_condition = int(self.cleaned_data["per_condition"])
        study = self.instance
        if study.pk is None or per_condition == study.per_condition:
            return per_condition
        if study.participants.exists():
            raise forms.ValidationError(
                "The study already has participants; its items per condition can no longer "
                "change (every participant must rate the same design)."
            )
        conditions = study.conditions.annotate(n=Count("explanations"))
        questions = study.questions.count()
        needed = per_condition * len(conditions)
        if needed > questions:
            raise forms.ValidationError(
                f"{len(conditions)} conditions x {per_condition} items need {needed} different "
                f"questions; the pool has {questions}."
            )
        short = [c.name for c in conditions if c.n < per_condition]
        if short:
            raise forms.ValidationError(
                f"Fewer than {per_condition} explanations in: {', '.join(short)}."
            )
        return per_condition
