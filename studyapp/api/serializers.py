"""One serializer per representation the API returns or accepts."""

from __future__ import annotations

from typing import Any

from django.core.validators import validate_slug
from rest_framework import serializers

from analysis.errors import AnalysisError
from analysis.plan import PLAN_NAMES, AnalysisPlan
from studyapp.exports import participant_pseudonym
from studyapp.importing import ExplanationsFileError
from studyapp.models import Condition, Participant, Questionnaire, Study
from studyapp.plans import plan_from_text, plan_from_upload, plan_shipped
from studyapp.questionnaires import questionnaire_from_upload
from studyapp.uploads import explanations_from_upload
from studyformats.explanations import ExplanationRecord
from studyformats.questionnaire import PLAIN_5, QuestionnaireError
from studyformats.questionnaire import Questionnaire as QuestionnaireDocument


class ConditionSerializer(serializers.ModelSerializer):
    explanations = serializers.IntegerField(source="explanations.count", read_only=True)

    class Meta:
        model = Condition
        fields = ("name", "method", "data_variant", "student", "explanations")


class StudySerializer(serializers.ModelSerializer):
    conditions = ConditionSerializer(many=True, read_only=True)
    questions = serializers.IntegerField(source="questions.count", read_only=True)
    plan_name = serializers.CharField(
        read_only=True,
        help_text="The registered analysis plan ('' : none, analysed as 'standard').",
    )
    plan_sha256 = serializers.CharField(
        read_only=True, help_text="SHA-256 of the registered plan's TOML text ('' : none)."
    )
    plan_frozen = serializers.BooleanField(
        read_only=True, help_text="The study has gone live: its plan can no longer change."
    )

    class Meta:
        model = Study
        fields = (
            "slug",
            "title",
            "status",
            "per_condition",
            "attention_checks",
            "completion_code",
            "time_limit_minutes",
            "max_participants",
            "max_ratings_per_explanation",
            "prolific_study_id",
            "prolific_status",
            "failed_checks_code",
            "created_at",
            "plan_name",
            "plan_sha256",
            "plan_frozen",
            "plan_frozen_at",
            "questions",
            "conditions",
        )
        read_only_fields = fields


class StudyCreateSerializer(serializers.Serializer):
    """A multipart upload: the explanations file plus the options of ``create_study``."""

    # Django's slug validator matches the whole value (REST framework's SlugField ends its
    # pattern in "$", which lets a final newline through); nothing is trimmed either, so a
    # slug is stored exactly as sent or refused.
    slug = serializers.CharField(max_length=64, validators=[validate_slug], trim_whitespace=False)
    explanations = serializers.FileField(
        help_text="The explanations file (JSON Lines). Every line is checked; a 400 lists "
        "each bad line as 'line N: problem' and nothing is imported."
    )
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    completion_code = serializers.CharField(max_length=64, required=False, allow_blank=True)
    per_condition = serializers.IntegerField(min_value=1, required=False)
    live = serializers.BooleanField(
        required=False, default=False, help_text="Open the study now (freezes its plan)."
    )
    plan = serializers.ChoiceField(
        choices=PLAN_NAMES,
        required=False,
        help_text="Register a shipped analysis plan (frozen when the study goes live).",
    )
    plan_file = serializers.FileField(
        required=False, help_text="Or register a plan given as a TOML file."
    )

    def validate_explanations(self, upload: Any) -> list[ExplanationRecord]:
        try:
            return explanations_from_upload(upload)
        except ExplanationsFileError as exc:
            raise serializers.ValidationError(exc.errors) from None

    def validate_plan(self, name: str) -> AnalysisPlan:
        return _plan_read(lambda: plan_shipped(name))

    def validate_plan_file(self, upload: Any) -> AnalysisPlan:
        return _plan_read(lambda: plan_from_upload(upload))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "plan" in attrs and "plan_file" in attrs:
            raise serializers.ValidationError(
                {"plan": "give the plan one way only: 'plan' or 'plan_file', not both"}
            )
        return attrs


def _plan_read(read: Any) -> AnalysisPlan:
    try:
        plan: AnalysisPlan = read()
    except AnalysisError as exc:
        raise serializers.ValidationError(str(exc)) from None
    return plan


class StudyPlanSerializer(serializers.Serializer):
    """A study's registered analysis plan in full."""

    name = serializers.CharField(source="plan_name", help_text="'' when none is registered.")
    sha256 = serializers.CharField(source="plan_sha256")
    text = serializers.CharField(source="plan_text", help_text="The plan's TOML text.")
    frozen = serializers.BooleanField(source="plan_frozen")
    frozen_at = serializers.DateTimeField(source="plan_frozen_at", allow_null=True)


class StudyPlanSetSerializer(serializers.Serializer):
    """The plan to register: a shipped plan's name, TOML text, or a TOML file (exactly one)."""

    plan = serializers.ChoiceField(choices=PLAN_NAMES, required=False)
    toml = serializers.CharField(required=False, trim_whitespace=False)
    file = serializers.FileField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [key for key in ("plan", "toml", "file") if key in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                "give exactly one of 'plan' (paper or standard), 'toml' (the plan's text) "
                f"or 'file' (a TOML file); got {', '.join(given) or 'none'}"
            )
        if "plan" in attrs:
            plan = _plan_read(lambda: plan_shipped(attrs["plan"]))
        elif "toml" in attrs:
            plan = _plan_read(lambda: plan_from_text(attrs["toml"]))
        else:
            plan = _plan_read(lambda: plan_from_upload(attrs["file"]))
        return {"plan": plan}


class StudyStatusSerializer(serializers.Serializer):
    """Open (live), pause or close a study."""

    status = serializers.ChoiceField(
        choices=[Study.Status.LIVE, Study.Status.PAUSED, Study.Status.CLOSED]
    )


class StudyProgressSerializer(serializers.Serializer):
    participants_started = serializers.IntegerField()
    participants_active = serializers.IntegerField()
    participants_completed = serializers.IntegerField()
    participants_abandoned = serializers.IntegerField()
    participants_no_consent = serializers.IntegerField()
    participants_excluded = serializers.IntegerField()
    participants_attention_flagged = serializers.IntegerField()
    median_completion_seconds = serializers.FloatField(allow_null=True)
    ratings_total = serializers.IntegerField()
    ratings_per_condition = serializers.DictField(child=serializers.IntegerField())
    explanations_total = serializers.IntegerField()
    exposure_histogram = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Times rated (as a string key) → number of explanations rated that often.",
    )
    attention_checks_answered = serializers.IntegerField()
    attention_checks_failed = serializers.IntegerField()
    attention_fail_rate = serializers.FloatField(allow_null=True)
    participants_excluded_holding = serializers.IntegerField(
        help_text="Excluded participants still active, whose unrated items still hold "
        "explanations (exclusion now stops them; the dashboard releases these)."
    )


class ParticipantSerializer(serializers.ModelSerializer):
    participant = serializers.SerializerMethodField(
        help_text="The pseudonym this participant has in the ratings export."
    )
    items_rated = serializers.IntegerField(source="n_rated", read_only=True)

    class Meta:
        model = Participant
        fields = (
            "participant",
            "prolific_pid",
            "prolific_study_id",
            "prolific_session_id",
            "status",
            "started_at",
            "completed_at",
            "attention_failures",
            "excluded",
            "items_rated",
        )
        read_only_fields = fields

    def get_participant(self, obj: Participant) -> str:
        return participant_pseudonym(obj.prolific_pid)


class RatingRowSerializer(serializers.Serializer):
    """One rated item: a row of the ratings export, in the ratings-CSV column order.

    The rating fields are the dimensions of the study's questionnaire, given as the
    ``questionnaire`` context; the schema shows the default questionnaire's five.
    """

    participant = serializers.CharField(help_text="Pseudonym (salted hash of the Prolific ID).")
    study = serializers.CharField()
    position = serializers.IntegerField()
    question_id = serializers.CharField()
    condition = serializers.CharField()
    explanation_id = serializers.IntegerField()
    explanation_length = serializers.IntegerField(help_text="Words.")
    explanation_chars = serializers.IntegerField(help_text="Characters.")
    plausibility = serializers.IntegerField(min_value=1, max_value=5, allow_null=True)
    understandability = serializers.IntegerField(min_value=1, max_value=5, allow_null=True)
    completeness = serializers.IntegerField(min_value=1, max_value=5, allow_null=True)
    satisfaction = serializers.IntegerField(min_value=1, max_value=5, allow_null=True)
    contrastiveness = serializers.IntegerField(min_value=1, max_value=5, allow_null=True)
    seconds_on_item = serializers.FloatField(allow_null=True)
    attention_failed = serializers.IntegerField(
        help_text="The participant's number of failed attention checks."
    )
    excluded = serializers.BooleanField()
    # The demographic covariates are present only when the study's demographics were imported.
    age = serializers.IntegerField(required=False, allow_null=True)
    sex = serializers.CharField(required=False, allow_null=True)
    ethnicity = serializers.CharField(required=False, allow_null=True)
    country_of_birth = serializers.CharField(required=False, allow_null=True)
    country = serializers.CharField(required=False, allow_null=True)
    nationality = serializers.CharField(required=False, allow_null=True)
    language = serializers.CharField(required=False, allow_null=True)
    student_status = serializers.CharField(required=False, allow_null=True)
    employment_status = serializers.CharField(required=False, allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        questionnaire = self.context.get("questionnaire")
        points = questionnaire.scale.points if questionnaire is not None else 5
        if questionnaire is None or (questionnaire.keys == PLAIN_5.keys and points == 5):
            return fields
        rated = {
            key: serializers.IntegerField(
                min_value=1, max_value=questionnaire.scale.points, allow_null=True
            )
            for key in questionnaire.keys
        }
        ordered: dict[str, serializers.Field] = {}
        for name, field in fields.items():
            if name in PLAIN_5.keys:
                continue
            if name == "seconds_on_item":
                ordered.update(rated)
            ordered[name] = field
            if name == "excluded" and points != 5:
                # As in the CSV: the scale is named only when it is not the usual five points.
                ordered["scale_points"] = serializers.IntegerField()
        return ordered

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # DRF would fill an absent nullable field with None; a row without covariates
        # must stay without those keys, as the CSV has no such columns then.
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if key in instance}


class QuestionnaireSerializer(serializers.ModelSerializer):
    """A stored questionnaire version, in brief (the list)."""

    frozen = serializers.BooleanField(
        source="is_frozen",
        read_only=True,
        help_text="A study using this version has participants: it can no longer change.",
    )
    dimensions = serializers.SerializerMethodField(help_text="The dimension keys, in order.")
    scale_points = serializers.SerializerMethodField()
    studies = serializers.SerializerMethodField(help_text="Slugs of the studies using it.")

    class Meta:
        model = Questionnaire
        fields: tuple[str, ...] = (
            "name",
            "version",
            "title",
            "frozen",
            "frozen_at",
            "created_at",
            "dimensions",
            "scale_points",
            "studies",
        )
        read_only_fields = fields

    def get_dimensions(self, obj: Questionnaire) -> list[str]:
        return list(obj.document.keys)

    def get_scale_points(self, obj: Questionnaire) -> int:
        return obj.document.scale.points

    def get_studies(self, obj: Questionnaire) -> list[str]:
        return sorted(study.slug for study in obj.studies.all())


class QuestionnaireDetailSerializer(QuestionnaireSerializer):
    """A stored questionnaire version with its whole document."""

    document = serializers.JSONField(
        source="definition",
        read_only=True,
        help_text="The questionnaire file's content as JSON (docs/questionnaires.md).",
    )

    class Meta(QuestionnaireSerializer.Meta):
        fields: tuple[str, ...] = (*QuestionnaireSerializer.Meta.fields, "document")
        read_only_fields: tuple[str, ...] = fields


class QuestionnaireUploadSerializer(serializers.Serializer):
    """A questionnaire file sent as a multipart upload."""

    file = serializers.FileField(help_text="A .toml or .json questionnaire file.")

    def validate_file(self, upload: Any) -> QuestionnaireDocument:
        try:
            return questionnaire_from_upload(upload)
        except QuestionnaireError as exc:
            raise serializers.ValidationError(str(exc)) from None


# A stored questionnaire named from the web: never a file path.
QUESTIONNAIRE_SPEC = r"\A[a-z0-9][a-z0-9-]{0,59}(@[1-9][0-9]{0,8})?\Z"


class StudyQuestionnaireSetSerializer(serializers.Serializer):
    """The questionnaire a study is to use: a stored one's NAME or NAME@VERSION."""

    questionnaire = serializers.RegexField(
        QUESTIONNAIRE_SPEC,
        max_length=70,
        help_text="NAME (its latest version) or NAME@VERSION of a stored questionnaire.",
        error_messages={
            "invalid": "give a stored questionnaire as NAME or NAME@VERSION, e.g. 'plain-5' "
            "or 'plain-5@1'"
        },
    )


class StudyQuestionnaireSerializer(serializers.Serializer):
    """The questionnaire a study uses; version null: the default, plain-5, not yet stored."""

    study = serializers.CharField(source="slug")
    name = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    frozen = serializers.SerializerMethodField()
    document = serializers.SerializerMethodField()

    def get_name(self, study: Study) -> str:
        return study.questionnaire_document.name

    def get_version(self, study: Study) -> int | None:
        return study.questionnaire.version if study.questionnaire else None

    def get_frozen(self, study: Study) -> bool:
        return bool(study.questionnaire and study.questionnaire.is_frozen)

    def get_document(self, study: Study) -> dict[str, Any]:
        return study.questionnaire_document.as_data()
