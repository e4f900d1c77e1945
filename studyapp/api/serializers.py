"""One serializer per representation the API returns or accepts."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from studyapp.exports import participant_pseudonym
from studyapp.importing import ExplanationRecord, ExplanationsFileError
from studyapp.models import Condition, Participant, Study
from studyapp.uploads import explanations_from_upload


class ConditionSerializer(serializers.ModelSerializer):
    explanations = serializers.IntegerField(source="explanations.count", read_only=True)

    class Meta:
        model = Condition
        fields = ("name", "method", "data_variant", "student", "explanations")


class StudySerializer(serializers.ModelSerializer):
    conditions = ConditionSerializer(many=True, read_only=True)
    questions = serializers.IntegerField(source="questions.count", read_only=True)

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
            "created_at",
            "questions",
            "conditions",
        )
        read_only_fields = fields


class StudyCreateSerializer(serializers.Serializer):
    """A multipart upload: the explanations file plus the options of ``create_study``."""

    slug = serializers.SlugField(max_length=64)
    explanations = serializers.FileField(
        help_text="The explanations file (JSON Lines). Every line is checked; a 400 lists "
        "each bad line as 'line N: problem' and nothing is imported."
    )
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    completion_code = serializers.CharField(max_length=64, required=False, allow_blank=True)
    per_condition = serializers.IntegerField(min_value=1, required=False)
    live = serializers.BooleanField(required=False, default=False)

    def validate_explanations(self, upload: Any) -> list[ExplanationRecord]:
        try:
            return explanations_from_upload(upload)
        except ExplanationsFileError as exc:
            raise serializers.ValidationError(exc.errors) from None


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
    """One rated item: a row of the ratings export, in the DESIGN.md column order."""

    participant = serializers.CharField(help_text="Pseudonym (salted hash of the Prolific ID).")
    study = serializers.CharField()
    position = serializers.IntegerField()
    question_id = serializers.CharField()
    condition = serializers.CharField()
    explanation_id = serializers.IntegerField()
    explanation_length = serializers.IntegerField(help_text="Words.")
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

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # DRF would fill an absent nullable field with None; a row without covariates
        # must stay without those keys, as the CSV has no such columns then.
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if key in instance}
