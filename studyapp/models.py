"""The explanation-rating study: its item pool, its participants and what they answered.

Integrity rules that must survive concurrent requests (one participant per Prolific ID,
no question twice for one participant, one rating per dimension) are database constraints,
so a race or a replayed form can never store a duplicate. A rating's value is checked against
its study's questionnaire on the one path that writes ratings
(``studyapp.participation.services.item_submit``), inside the 1–11 any scale allows, which the
database holds too.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from studyformats.questionnaire import (
    PLAIN_5,
    SCALE_MAX_POINTS,
    QuestionnaireError,
    questionnaire_from_data,
)
from studyformats.questionnaire import Questionnaire as QuestionnaireDocument
from studyformats.ratings import COVARIATE_COLUMNS

# Any questionnaire's scale lies within these; a study's own scale is its questionnaire's.
LIKERT_MIN = 1
LIKERT_MAX = SCALE_MAX_POINTS


DEFAULT_CONSENT_TEXT = """\
This study is run by researchers who study how computer programs explain their answers to \
everyday questions. You will read short questions, the answer a computer model gave, and the \
model's explanation of that answer, and you will rate each explanation on a few short \
statements. It takes about 10 to 15 minutes.

Taking part is voluntary. You may stop at any time by closing this page and returning the \
study on Prolific; you will not be penalised for returning it.

We store only your Prolific ID, the study and session IDs Prolific sends, your ratings and how \
long you spent on each item. We do not store your IP address, your browser details or your \
name. Your ratings are analysed and published only in aggregate and under a pseudonym, never \
with your Prolific ID.

If you have questions about the study, message the researchers through Prolific."""

DEFAULT_INSTRUCTIONS_TEXT = """\
Each page shows a multiple-choice question, the answer a computer model chose and the model's \
explanation of why. The model's answer may be right or wrong; rate the explanation as it is \
written. For each statement under it, choose the point of the scale that matches your \
judgement; the scale and its labels are shown with every statement. There are no right or \
wrong ratings: we want your honest judgement.

A few pages ask you to choose a particular answer to check that you are reading carefully. \
Please follow what those pages ask."""


# Prolific IDs are 24 hexadecimal characters; other panels and test links use similar
# tokens. Braces and percent signs are refused on purpose: they mark an unfilled Prolific
# variable such as "{{%PROLIFIC_PID%}}" (a preview or a mis-pasted link). Patterns end in \Z,
# never $: "$" also matches before a final newline, so "abc\n" would pass as a second "abc".
PROLIFIC_ID_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9_\-]{0,63}\Z"
PROLIFIC_ID_MESSAGE = "must be 1–64 letters, digits, '-' or '_'"


def _likert_range(field: str, *, name: str) -> models.CheckConstraint:
    low, high = f"{field}__gte", f"{field}__lte"
    return models.CheckConstraint(
        condition=Q(**{low: LIKERT_MIN}) & Q(**{high: LIKERT_MAX}), name=name
    )


class StudyConflictError(Exception):
    """The request contradicts what the database already holds for this study."""


class StudyPlanFrozenError(StudyConflictError):
    """A change to the analysis plan of a study that has gone live (its plan is registered)."""


def completion_code_new() -> str:
    """A fresh Prolific-style completion code (eight upper-case letters and digits)."""
    return secrets.token_hex(4).upper()


class QuestionnaireFrozenError(StudyConflictError):
    """A change to a questionnaire version that a study with participants already uses."""


class Questionnaire(models.Model):
    """One version of a questionnaire: what participants rate, on which scale, with which checks.

    ``definition`` holds the document (``studyformats.questionnaire``) as JSON. A version is
    frozen when a study that uses it admits its first participant; from then on it never
    changes, and a changed document is saved as the next version.
    """

    name = models.SlugField(max_length=60)
    version = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=200, blank=True)
    definition = models.JSONField()
    frozen_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When a study using this version admitted its first participant.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"], name="questionnaire_unique_version"
            ),
            models.CheckConstraint(
                condition=Q(version__gte=1), name="questionnaire_version_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and "definition" in (kwargs.get("update_fields") or ["definition"]):
            stored = Questionnaire.objects.filter(pk=self.pk).values("definition", "frozen_at")
            row = stored.first()
            if (
                row is not None
                and row["frozen_at"] is not None
                and row["definition"] != self.definition
            ):
                raise QuestionnaireFrozenError(
                    f"questionnaire {self} is used by a study that has participants; save the "
                    "change as a new version"
                )
        self.title = self.document.title
        super().save(*args, **kwargs)

    @property
    def document(self) -> QuestionnaireDocument:
        """The validated document, parsed once per process for a saved version."""
        if self.pk is None:
            return questionnaire_from_data(self.definition, source=self.name or "questionnaire")
        found = _documents.get(self.pk)
        if found is None or found[0] != self.definition:
            parsed = questionnaire_from_data(self.definition, source=str(self))
            _documents[self.pk] = found = (self.definition, parsed)
        return found[1]

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        try:
            document = questionnaire_from_data(self.definition, source="definition")
        except QuestionnaireError as exc:
            raise ValidationError({"definition": str(exc)}) from None
        if document.name != self.name:
            raise ValidationError({"name": f"the document is named '{document.name}'"})


# Parsed documents by questionnaire id, with the definition they were parsed from: a
# participant page needs its study's questionnaire on every request, and a version that
# participants see never changes. A saved or deleted version is dropped (see the signals
# below), so an id used again (a test database rolled back) is parsed afresh.
_documents: dict[int, tuple[Any, QuestionnaireDocument]] = {}


def _document_forget(sender: type[models.Model], instance: Questionnaire, **kwargs: Any) -> None:
    _documents.pop(instance.pk, None)


post_save.connect(_document_forget, sender=Questionnaire, dispatch_uid="questionnaire-saved")
post_delete.connect(_document_forget, sender=Questionnaire, dispatch_uid="questionnaire-deleted")


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        CLOSED = "closed", "Closed"

    slug = models.SlugField(unique=True, max_length=64)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    per_condition = models.PositiveSmallIntegerField(
        default=3, help_text="Items each participant rates from every condition."
    )
    attention_checks = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Instructed-response pages added among the rated items; blank: as many as "
        "the questionnaire says.",
    )
    completion_code = models.CharField(max_length=64, default=completion_code_new)
    time_limit_minutes = models.PositiveSmallIntegerField(
        default=60,
        help_text="After this long, a participant's unrated items are released to others.",
    )
    max_participants = models.PositiveIntegerField(
        null=True, blank=True, help_text="Stop admitting new participants at this many."
    )
    max_ratings_per_explanation = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Rate no explanation more often than this (1: every explanation exactly once).",
    )
    prolific_study_id = models.CharField(
        max_length=64,
        blank=True,
        validators=[
            RegexValidator(PROLIFIC_ID_PATTERN, f"The Prolific study id {PROLIFIC_ID_MESSAGE}.")
        ],
        help_text="The study's id on Prolific. When set, only links carrying this STUDY_ID "
        "are admitted; blank: not checked.",
    )
    failed_checks_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="Completion code for participants who failed two or more attention checks; "
        "blank: they get the completion code. Set when the study is created on Prolific from "
        "here, where this code sends their submissions to manual review.",
    )
    prolific_status = models.CharField(
        max_length=32, blank=True, editable=False, help_text="The study's status on Prolific."
    )
    prolific_synced_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When Prolific's submissions were last read in full (prolific_sync).",
    )
    questionnaire = models.ForeignKey(
        Questionnaire,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="studies",
        help_text="What participants rate; empty: the default questionnaire, plain-5. Fixed "
        "once the study has participants.",
    )
    consent_text = models.TextField(default=DEFAULT_CONSENT_TEXT)
    instructions_text = models.TextField(default=DEFAULT_INSTRUCTIONS_TEXT)
    created_at = models.DateTimeField(auto_now_add=True)
    # The pre-registered analysis plan, stored whole so that the study alone says how it is
    # to be analysed; blank: none registered (the analysis then uses the "standard" plan).
    plan_name = models.CharField(
        max_length=200, blank=True, help_text="Name of the registered analysis plan."
    )
    plan_text = models.TextField(blank=True, help_text="The registered plan's TOML text.")
    plan_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the plan text (UTF-8), in hex."
    )
    plan_frozen_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the study first went live; from then on its plan cannot change.",
    )

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(per_condition__gte=1), name="study_per_condition_positive"
            ),
            models.CheckConstraint(
                condition=Q(time_limit_minutes__gte=1), name="study_time_limit_positive"
            ),
            models.CheckConstraint(
                condition=Q(plan_name="", plan_text="", plan_sha256="")
                | (~Q(plan_name="") & ~Q(plan_text="") & ~Q(plan_sha256="")),
                name="study_plan_whole",
            ),
            # Whatever makes a study live, its plan is frozen by then.
            models.CheckConstraint(
                condition=~Q(status="live") | Q(plan_frozen_at__isnull=False),
                name="study_live_plan_frozen",
            ),
        ]

    PLAN_FIELDS = ("plan_name", "plan_text", "plan_sha256", "plan_frozen_at")
    # The plan fields as last read from or written to the database (None: a new study).
    _plan_stored: tuple[Any, ...] | None = None

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, refusing a change to a frozen plan and freezing the plan on going live.

        Services change the plan through ``plan_register`` under a row lock; this check
        catches any other route (a form, a script) that edits a loaded study.
        """
        stored = getattr(self, "_plan_stored", None)
        if stored is not None and stored[-1] is not None and self._plan_state() != stored:
            raise StudyPlanFrozenError(self.plan_frozen_message())
        if self.status == self.Status.LIVE and self.plan_frozen_at is None:
            self.plan_frozen_at = timezone.now()
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "plan_frozen_at"}
        super().save(*args, **kwargs)
        self._plan_stored = self._plan_state()

    @property
    def questionnaire_document(self) -> QuestionnaireDocument:
        """The study's questionnaire; the default one (plain-5) when none is set. Read from
        the per-process cache, so a participant page costs no query for it after the first."""
        if self.questionnaire_id is None:
            return PLAIN_5
        found = _documents.get(self.questionnaire_id)
        if found is not None:
            return found[1]
        return self.questionnaire.document if self.questionnaire else PLAIN_5

    @classmethod
    def from_db(cls, *args: Any, **kwargs: Any) -> Study:
        study = super().from_db(*args, **kwargs)
        study._plan_stored = study._plan_state()
        return study

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        fields = kwargs.get("fields")
        if fields is None and len(args) > 1:
            fields = args[1]
        stored = list(self._plan_stored or [None] * len(self.PLAN_FIELDS))
        current = self._plan_state()
        for index, name in enumerate(self.PLAN_FIELDS):
            if fields is None or name in fields:
                stored[index] = current[index]
        self._plan_stored = tuple(stored)

    def _plan_state(self) -> tuple[Any, ...]:
        # Deferred fields are left out of the comparison rather than read again.
        return tuple(self.__dict__.get(name) for name in self.PLAN_FIELDS)

    @property
    def is_live(self) -> bool:
        return self.status == self.Status.LIVE

    @property
    def plan_frozen(self) -> bool:
        """The study has gone live: its plan (or the absence of one) is final."""
        return self.plan_frozen_at is not None

    @property
    def plan_registered(self) -> bool:
        return bool(self.plan_text)

    def plan_description(self) -> str:
        """The registered plan in one line: its name and hash, and whether it is frozen."""
        if self.plan_registered:
            text = f"'{self.plan_name}' (sha256 {self.plan_sha256})"
        else:
            text = "none registered (the study is analysed under the 'standard' plan)"
        if self.plan_frozen_at is not None:
            return f"{text}; frozen since {self.plan_frozen_at:%Y-%m-%d %H:%M} UTC"
        return f"{text}; it can change until the study goes live"

    def plan_frozen_message(self) -> str:
        """Why the plan of this frozen study cannot change, in one line."""
        when = f"{self.plan_frozen_at:%Y-%m-%d %H:%M} UTC" if self.plan_frozen_at else "earlier"
        if self.plan_registered:
            return (
                f"study '{self.slug}' went live on {when}; its analysis plan "
                f"'{self.plan_name}' (sha256 {self.plan_sha256[:12]}…) is frozen and cannot change"
            )
        return (
            f"study '{self.slug}' went live on {when} without an analysis plan; a plan can no "
            "longer be registered (it is analysed under the 'standard' plan)"
        )

    def plan_register(self, *, name: str, text: str, sha256: str) -> bool:
        """Set the plan (all three blank: none) on this instance; False when it is unchanged.

        Raises ``StudyPlanFrozenError`` when the study has gone live and the plan differs;
        registering the same plan again is allowed, so repeated imports stay idempotent.
        """
        if (name, text, sha256) == (self.plan_name, self.plan_text, self.plan_sha256):
            return False
        if self.plan_frozen:
            raise StudyPlanFrozenError(self.plan_frozen_message())
        self.plan_name, self.plan_text, self.plan_sha256 = name, text, sha256
        return True

    def admits_prolific_study(self, prolific_study_id: str) -> bool:
        """Whether a link with this STUDY_ID may enter (any, when no Prolific id is set)."""
        return not self.prolific_study_id or prolific_study_id == self.prolific_study_id

    def time_limit_cutoff(self, now: datetime | None = None) -> datetime:
        """Participants who started before this moment have run out of time."""
        return (now or timezone.now()) - timedelta(minutes=self.time_limit_minutes)

    @property
    def prolific_created_here(self) -> bool:
        """Created on Prolific from this platform (which set both codes there)."""
        return bool(self.prolific_study_id and self.failed_checks_code)

    def completion_code_for(self, participant: Participant) -> str:
        """The code a finished participant takes back to Prolific.

        Those who failed enough attention checks to be rejected fairly get the study's
        second code, when it has one, so that Prolific holds them for a human decision.
        """
        if self.failed_checks_code and participant.attention_failed:
            return self.failed_checks_code
        return self.completion_code

    def completion_url(self, code: str | None = None) -> str:
        # Encoded, so a code typed with a space or '&' still reaches Prolific whole.
        return str(settings.PROLIFIC_COMPLETION_URL).format(
            code=quote(code if code is not None else self.completion_code, safe="")
        )


class Condition(models.Model):
    """One explanation source (student model x training method x data variant); hidden from participants."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="conditions")
    name = models.CharField(max_length=100, help_text="For example 'MT+CF:revised'.")
    method = models.CharField(max_length=50, blank=True)
    data_variant = models.CharField(max_length=50, blank=True)
    student = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["study", "name"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="condition_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Question(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="questions")
    external_id = models.CharField(max_length=100, help_text="The dataset's question id.")
    text = models.TextField()
    choices = models.JSONField(help_text="The answer choices, in the order shown.")
    answer = models.CharField(max_length=300, help_text="The gold answer.")

    class Meta:
        ordering = ["study", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "external_id"], name="question_unique_external_id"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class Explanation(models.Model):
    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="explanations")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="explanations")
    predicted_answer = models.CharField(max_length=300)
    text = models.TextField()
    length = models.PositiveIntegerField(help_text="Length of the text in words.")
    run = models.CharField(max_length=200, blank=True, help_text="The run that produced it.")
    truncated = models.BooleanField(
        default=False,
        help_text="The student's output hit the generation cap: the text may be cut short.",
    )

    class Meta:
        ordering = ["condition", "question"]
        constraints = [
            models.UniqueConstraint(
                fields=["condition", "question"], name="explanation_unique_condition_question"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.condition_id}/{self.question_id}"

    @staticmethod
    def words_count(text: str) -> int:
        return len(text.split())


class Participant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        RETURNED = "returned", "Returned"
        TIMED_OUT = "timed_out", "Timed out"
        NO_CONSENT = "no_consent", "No consent"
        # Excluded by a researcher before finishing: their unrated items went back to the pool.
        STOPPED = "stopped", "Stopped by a researcher"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    prolific_pid = models.CharField(max_length=64)
    prolific_study_id = models.CharField(max_length=64, blank=True)
    prolific_session_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    attention_failures = models.PositiveSmallIntegerField(default=0)
    excluded = models.BooleanField(
        default=False, help_text="Excluded by a researcher; exports keep the rows and flag them."
    )

    # Prolific allows rejecting a submission for failed attention checks only after two fails.
    ATTENTION_FAILURES_TO_FLAG = 2

    class Meta:
        ordering = ["study", "started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "prolific_pid"], name="participant_unique_pid"
            ),
        ]
        indexes = [models.Index(fields=["study", "status", "started_at"])]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.prolific_pid}"

    @property
    def attention_failed(self) -> bool:
        return self.attention_failures >= self.ATTENTION_FAILURES_TO_FLAG

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.status == self.Status.ACTIVE and self.started_at < self.study.time_limit_cutoff(
            now
        )


class Assignment(models.Model):
    """One rated item of one participant; position is the order the participant sees it in."""

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="assignments"
    )
    position = models.PositiveSmallIntegerField()
    explanation = models.ForeignKey(
        Explanation, on_delete=models.PROTECT, related_name="assignments"
    )
    # Denormalised from the explanation so the database itself forbids a question twice.
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="assignments")
    shown_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["participant", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "position"], name="assignment_unique_position"
            ),
            models.UniqueConstraint(
                fields=["participant", "question"], name="assignment_unique_question"
            ),
            models.CheckConstraint(condition=Q(position__gte=1), name="assignment_position_gte_1"),
            models.CheckConstraint(
                condition=Q(answered_at__isnull=True)
                | (Q(shown_at__isnull=False) & Q(answered_at__gte=F("shown_at"))),
                name="assignment_answered_after_shown",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}#{self.position}"

    @property
    def seconds_on_item(self) -> float | None:
        if self.shown_at is None or self.answered_at is None:
            return None
        return (self.answered_at - self.shown_at).total_seconds()


class Rating(models.Model):
    """One rated dimension of an item: the dimension's key in the study's questionnaire."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="ratings")
    dimension = models.CharField(max_length=40)
    value = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["assignment", "dimension"]
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "dimension"], name="rating_unique_dimension"
            ),
            _likert_range("value", name="rating_value_in_any_scale"),
            models.CheckConstraint(condition=~Q(dimension=""), name="rating_dimension_named"),
        ]

    def __str__(self) -> str:
        return f"{self.assignment_id}:{self.dimension}={self.value}"


class AttentionCheckResponse(models.Model):
    """An instructed-response page shown before the rated item at ``before_position``.

    It is created with the participant's items (so its place is fixed and survives a reload)
    and answered once; its values are never ratings and never count as an item.
    """

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="attention_checks"
    )
    before_position = models.PositiveSmallIntegerField()
    instructed_value = models.PositiveSmallIntegerField()
    shown_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["participant", "before_position"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "before_position"], name="attention_check_unique_position"
            ),
            _likert_range("instructed_value", name="attention_check_value_in_any_scale"),
            models.CheckConstraint(
                condition=Q(answered_at__isnull=True) | Q(passed__isnull=False),
                name="attention_check_answered_has_result",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}@{self.before_position}"


class ParticipantExclusion(models.Model):
    """One researcher decision to exclude or re-include a participant, kept as an audit trail.

    ``Participant.excluded`` holds the current state; these rows say who changed it, when
    and why, so an exclusion can be justified (or undone) long after the study closed.
    """

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="exclusion_records"
    )
    excluded = models.BooleanField(help_text="The state set: excluded (true) or re-included.")
    reason = models.TextField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["participant", "decided_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(reason=""), name="participant_exclusion_reason_given"
            ),
        ]

    def __str__(self) -> str:
        action = "excluded" if self.excluded else "re-included"
        return f"{self.participant_id} {action} at {self.decided_at:%Y-%m-%d %H:%M}"


class ParticipantDemographics(models.Model):
    """A participant's answers from Prolific's demographic export (blank where Prolific had none)."""

    participant = models.OneToOneField(
        Participant, on_delete=models.CASCADE, related_name="demographics"
    )
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    sex = models.CharField(max_length=50, blank=True)
    ethnicity = models.CharField(max_length=100, blank=True)
    country_of_birth = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True, help_text="Country of residence.")
    nationality = models.CharField(max_length=100, blank=True)
    language = models.CharField(max_length=100, blank=True)
    student_status = models.CharField(max_length=50, blank=True)
    employment_status = models.CharField(max_length=100, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)

    # The covariate columns of the ratings export, in order (model field names).
    COVARIATES = COVARIATE_COLUMNS

    class Meta:
        verbose_name_plural = "participant demographics"

    def __str__(self) -> str:
        return f"demographics of {self.participant_id}"


class StudyReport(models.Model):
    """An analysis report written for a study (``analyze_study`` or the admin dashboard)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reports")
    out_dir = models.CharField(max_length=500, help_text="Folder holding report.html.")
    created_at = models.DateTimeField(default=timezone.now)
    n_participants = models.PositiveIntegerField(default=0)
    n_ratings = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["study", "-created_at", "-id"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.study_id} report {self.created_at:%Y-%m-%d %H:%M}"


# ---- Prolific ----------------------------------------------------------------------------


class ProlificSubmission(models.Model):
    """Prolific's view of one submission, as last received from a hook or ``prolific_sync``.

    Kept beside our own participant rows so that the dashboard can show where the two
    disagree (completed here but not on Prolific, returned there but still working here).
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="prolific_submissions")
    submission_id = models.CharField(max_length=64, unique=True)
    participant_pid = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32, help_text="Prolific's status, as Prolific spells it.")
    study_code = models.CharField(
        max_length=64, blank=True, help_text="The completion code the participant entered."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(
        default=timezone.now, help_text="When Prolific's news was sent; older news is ignored."
    )
    source = models.CharField(max_length=10, help_text="hook, sync or action: what told us last.")

    class Meta:
        ordering = ["study", "started_at", "id"]
        indexes = [models.Index(fields=["study", "participant_pid"])]

    def __str__(self) -> str:
        return f"{self.submission_id} ({self.status})"


class ProlificHookDelivery(models.Model):
    """A webhook delivery already acted on; a replay of the same signed request changes nothing."""

    event_id = models.CharField(
        max_length=128, unique=True, help_text="X-Event-ID (the signature if none was sent)."
    )
    received_at = models.DateTimeField(default=timezone.now)
    event_type = models.CharField(max_length=100)
    resource_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "Prolific hook deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} {self.resource_id} {self.status}"


class ProlificAction(models.Model):
    """One request sent (or, in a dry run, shown) to Prolific, with who asked and the answer."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="prolific_actions")
    kind = models.CharField(max_length=30)
    target = models.CharField(
        max_length=200, blank=True, help_text="The submission or bonus batch it concerns."
    )
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    body = models.JSONField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    ok = models.BooleanField(null=True, help_text="Accepted by Prolific; empty in a dry run.")
    answer = models.TextField(blank=True, help_text="Prolific's answer, or why it failed.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        mode = " (dry run)" if self.dry_run else ""
        return f"{self.kind} {self.target}{mode} at {self.at:%Y-%m-%d %H:%M}"


class ProlificBonusBatch(models.Model):
    """Bonuses set up on Prolific (first step), and when they were paid (second step)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="prolific_bonuses")
    bonus_id = models.CharField(max_length=64, unique=True, help_text="Prolific's id.")
    csv_bonuses = models.TextField(help_text="participant id,amount lines as sent.")
    participants = models.PositiveIntegerField()
    # In cents (pence), as Prolific answers them.
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, help_text="Sum of the bonuses, in cents."
    )
    fees = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    vat = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    total_amount = models.DecimalField(
        max_digits=12, decimal_places=2, help_text="What paying costs, in cents, as Prolific said."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "-created_at"]
        verbose_name_plural = "Prolific bonus batches"

    def __str__(self) -> str:
        state = "paid" if self.paid_at else "set up"
        return f"bonus {self.bonus_id} ({state})"

    @property
    def amount_text(self) -> str:
        """The bonuses in the currency's major unit (pounds or dollars), e.g. '12.50'."""
        return f"{self.amount / 100:.2f}"

    @property
    def total_text(self) -> str:
        """What paying costs, fees and VAT included, in the major unit."""
        return f"{self.total_amount / 100:.2f}"
