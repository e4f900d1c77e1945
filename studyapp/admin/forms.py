"""Forms of the researcher admin pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import validate_slug
from django.db.models import Count

from analysis.errors import AnalysisError
from analysis.plan import PLAN_NAMES, AnalysisPlan
from studyapp.importing import ExplanationsFileError
from studyapp.models import Questionnaire, Study
from studyapp.plans import plan_from_text, plan_from_upload, plan_shipped
from studyapp.questionnaires import questionnaire_from_text, questionnaire_from_upload
from studyapp.studies.services import study_questionnaire_refusal
from studyapp.uploads import explanations_from_upload
from studyformats.explanations import ExplanationRecord
from studyformats.questionnaire import PLAIN_5, QuestionnaireError, questionnaire_toml
from studyformats.questionnaire import Questionnaire as QuestionnaireDocument

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


class QuestionnaireChoiceField(forms.ModelChoiceField):
    """A stored questionnaire version, named with its title; empty: the default (plain-5)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Questionnaire")
        super().__init__(
            queryset=Questionnaire.objects.order_by("name", "-version"),
            required=False,
            empty_label=f"{PLAIN_5.name}, the default questionnaire",
            **kwargs,
        )

    def label_from_instance(self, obj: Questionnaire) -> str:
        frozen = " (frozen)" if obj.is_frozen else ""
        return f"{obj}{frozen}: {obj.title}" if obj.title else f"{obj}{frozen}"


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
    questionnaire = QuestionnaireChoiceField(
        help_text="What participants rate: its statements, scale and attention checks. Empty "
        "keeps an existing study's questionnaire; a new study gets the default."
    )

    field_order = (
        "slug",
        "explanations",
        "title",
        "completion_code",
        "per_condition",
        "questionnaire",
        "live",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[ExplanationRecord] = []
        # One line-numbered message per problem, shown as a list above the form.
        self.file_errors: list[str] = []

    def clean(self) -> dict[str, Any]:
        super().clean()
        study = Study.objects.filter(slug=self.cleaned_data.get("slug") or "").first()
        self.plan_clean(study)
        chosen = self.cleaned_data.get("questionnaire")
        if study is not None and chosen is not None and chosen.pk != study.questionnaire_id:
            refusal = study_questionnaire_refusal(study)
            if refusal:
                self.add_error("questionnaire", f"{refusal}.")
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

    # Not named "questionnaire": a model field of that name would be set on the study by the
    # form itself, past the service that refuses a change once the study has participants.
    questionnaire_choice = QuestionnaireChoiceField(
        help_text="What participants rate: its statements, scale and attention checks. It can "
        "change only until the first participant starts; a study that needs other questions "
        "after that is a new study."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plan = self.fields.get("plan")
        if isinstance(plan, forms.ChoiceField):
            plan.choices = [*PLAN_CHOICES, (PLAN_NONE, "No plan (remove it)")]
        if "questionnaire_choice" in self.fields:
            self.fields["questionnaire_choice"].initial = self.instance.questionnaire_id
        if self.instance.pk is not None and self.instance.prolific_created_here:
            # Prolific holds these codes and their actions; a code changed here alone would
            # send participants back with a code Prolific does not know.
            for name in ("completion_code", "failed_checks_code", "prolific_study_id"):
                if name in self.fields:
                    self.fields[name].disabled = True
                    self.fields[
                        name
                    ].help_text = "Fixed: the study was created on Prolific from here with it."
        # After validation: whether the picker asks for another questionnaire.
        self.questionnaire_given = False

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.plan_clean(self.instance)
        self.questionnaire_clean()
        return self.cleaned_data

    def questionnaire_clean(self) -> None:
        """Note a change of questionnaire, refused with the service's message once the study
        has participants (the service refuses it again should one start meanwhile)."""
        if "questionnaire_choice" not in self.fields:
            return
        chosen = self.cleaned_data.get("questionnaire_choice")
        study = self.instance
        if (chosen.pk if chosen is not None else None) == study.questionnaire_id:
            return
        if chosen is None and study.questionnaire and study.questionnaire.name == PLAIN_5.name:
            return  # the default already
        refusal = study_questionnaire_refusal(study) if study.pk is not None else ""
        if refusal:
            self.add_error("questionnaire_choice", f"{refusal}.")
            return
        self.questionnaire_given = True

    class Meta:
        model = Study
        fields = (
            "title",
            "completion_code",
            "failed_checks_code",
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


class QuestionnaireAdminForm(forms.ModelForm):
    """A questionnaire version edited as its document: TOML text, or an uploaded file.

    The form reads and checks the document with the file format's messages; the admin
    stores it through ``questionnaire_import``, so a frozen version is never changed. A
    change to a frozen version is refused unless the "Save as new version" button sent it.
    """

    SAVE_AS_NEW_VERSION = "_saveasnew_version"

    toml = forms.CharField(
        label="Document (TOML)",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "spellcheck": "false"}),
        help_text="The questionnaire file's text: name, title, description, [scale], "
        "[attention_checks] and one [[dimensions]] table per dimension (see "
        "docs/questionnaires.md).",
    )
    upload = forms.FileField(
        label="Or a file",
        required=False,
        help_text="A .toml or .json questionnaire file; when given, it is used instead of the "
        "text above.",
    )

    class Meta:
        model = Questionnaire
        fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.document: QuestionnaireDocument | None = None
        if self.instance.pk is not None and "toml" in self.fields:
            self.fields["toml"].initial = questionnaire_toml(self.instance.document)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("upload")
        text = data.get("toml") or ""
        field = "upload" if upload else "toml"
        try:
            if upload:
                document = questionnaire_from_upload(upload)
            elif text.strip():
                document = questionnaire_from_text(text, source="the document")
            else:
                raise forms.ValidationError(
                    "Give the questionnaire as TOML text or as a .toml or .json file."
                )
        except QuestionnaireError as exc:
            self.add_error(field, str(exc))
            return data
        stored = self.instance
        if stored.pk is not None:
            if document.name != stored.name:
                self.add_error(
                    field,
                    f"The document is named '{document.name}', but this is questionnaire "
                    f"'{stored.name}'; store a questionnaire under another name from the "
                    "“Add questionnaire” page.",
                )
                return data
            if (
                stored.is_frozen
                and document.as_data() != stored.definition
                and self.SAVE_AS_NEW_VERSION not in self.data
            ):
                raise forms.ValidationError(
                    f"Version {stored.version} of '{stored.name}' is frozen: a study using it "
                    "has participants, so its questions can no longer change. A changed "
                    "document needs a new version: press “Save as new version”."
                )
        self.document = document
        return data

    def _post_clean(self) -> None:
        # The model's own check would only repeat the document's, which clean() made with
        # the format's messages; this form never saves its instance (the admin stores the
        # document through questionnaire_import).
        return
