"""Forms of the researcher admin pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import validate_slug
from django.db.models import Count

from analysis.errors import AnalysisError
from analysis.plan import PLAN_NAMES, AnalysisPlan
from studyapp.importing import ExplanationsFileError
from studyapp.models import Study
from studyapp.plans import plan_from_text, plan_from_upload, plan_shipped
from studyapp.uploads import explanations_from_upload
from studyformats.explanations import ExplanationRecord

# The choice of the plan field that removes a registered plan (change form only).
PLAN_NONE = "none"
PLAN_CHOICES = [("", "Keep as it is"), *((name, name) for name in PLAN_NAMES)]


class PlanFieldsForm(forms.Form):
    """An analysis plan to register: a shipped one, a TOML file, or pasted TOML text.

    At most one of the three may be given; none leaves the study's plan as it is. After
    validation ``plan_given`` says whether one was, and ``plan_new`` holds it (None: remove).
    """

    plan = forms.ChoiceField(
        label="Analysis plan",
        required=False,
        choices=PLAN_CHOICES,
        help_text="Register a shipped analysis plan: 'paper' repeats the published analysis, "
        "'standard' is the stricter analysis recommended for new studies. The plan is frozen "
        "when the study goes live; without one the study is analysed under 'standard'.",
    )
    plan_file = forms.FileField(
        label="Plan file", required=False, help_text="Or upload a plan as a TOML file."
    )
    plan_toml = forms.CharField(
        label="Plan text",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "spellcheck": "false"}),
        help_text="Or paste a plan's TOML text.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan_given = False
        self.plan_new: AnalysisPlan | None = None

    def plan_clean(self, study: Study | None) -> None:
        """Read the plan inputs into ``plan_given``/``plan_new``; refuse a frozen study's."""
        data = self.cleaned_data
        choice = data.get("plan") or ""
        upload = data.get("plan_file")
        text = data.get("plan_toml") or ""
        if not text.strip():
            text = ""
        given = [
            label
            for label, value in (("a shipped plan", choice), ("a file", upload), ("text", text))
            if value
        ]
        if not given:
            return
        if len(given) > 1:
            raise forms.ValidationError(
                f"Give the analysis plan one way only, not {' and '.join(given)}."
            )
        try:
            if choice == PLAN_NONE:
                self.plan_new = None
            elif choice:
                self.plan_new = plan_shipped(choice)
            elif upload:
                self.plan_new = plan_from_upload(upload)
            else:
                self.plan_new = plan_from_text(text)
        except AnalysisError as exc:
            field = "plan" if choice else "plan_file" if upload else "plan_toml"
            self.add_error(field, str(exc))
            return
        # Read again: the study may have gone live since the form was shown.
        current = Study.objects.filter(pk=study.pk).first() if study and study.pk else None
        if current is not None and current.plan_frozen and self._plan_differs(current):
            raise forms.ValidationError(f"The plan cannot change: {current.plan_frozen_message()}.")
        self.plan_given = True

    def _plan_differs(self, study: Study) -> bool:
        if self.plan_new is None:
            return study.plan_registered
        return (self.plan_new.name, self.plan_new.sha256) != (study.plan_name, study.plan_sha256)


class StudyUploadForm(PlanFieldsForm):
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
    live = forms.BooleanField(
        required=False, help_text="Open the study to participants now (freezes its plan)."
    )

    field_order = ("slug", "explanations", "title", "completion_code", "per_condition", "live")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[ExplanationRecord] = []
        # One line-numbered message per problem, shown as a list above the form.
        self.file_errors: list[str] = []

    def clean(self) -> dict[str, Any]:
        super().clean()
        study = Study.objects.filter(slug=self.cleaned_data.get("slug") or "").first()
        self.plan_clean(study)
        return self.cleaned_data

    def clean_explanations(self) -> Any:
        upload = self.cleaned_data["explanations"]
        try:
            self.records = explanations_from_upload(upload)
        except ExplanationsFileError as exc:
            self.file_errors = exc.errors
            raise forms.ValidationError(
                f"{exc.problems.summary('the file')}; nothing was imported."
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
        label="Demographics file",
        help_text="Prolific's demographic export (CSV with a 'Participant id' column).",
    )


class StudyChangeForm(forms.ModelForm, PlanFieldsForm):
    """The study's settings; items per condition must stay possible with the study's pool.

    The plan fields are changed through ``studyapp.studies.services.study_plan_set`` after the
    form is saved (the admin does it); the form only reads and checks them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plan = self.fields.get("plan")
        if isinstance(plan, forms.ChoiceField):
            plan.choices = [*PLAN_CHOICES, (PLAN_NONE, "No plan (remove it)")]

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.plan_clean(self.instance)
        return self.cleaned_data

    class Meta:
        model = Study
        fields = (
            "title",
            "completion_code",
            "prolific_study_id",
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
