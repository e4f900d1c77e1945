"""Read-only admin lists of what researchers' actions and imports recorded."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from studyapp.models import (
    ParticipantDemographics,
    ParticipantExclusion,
    ProlificAction,
    ProlificSubmission,
    StudyReport,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by services only; the admin shows them and never edits them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ParticipantExclusion)
class ParticipantExclusionAdmin(ReadOnlyAdmin):
    list_display = ("participant", "excluded", "reason", "decided_by", "decided_at")
    list_filter = ("excluded", "participant__study")
    search_fields = ("participant__prolific_pid", "reason")
    list_select_related = ("participant", "decided_by")


@admin.register(ParticipantDemographics)
class ParticipantDemographicsAdmin(ReadOnlyAdmin):
    list_display = ("participant", "age", "sex", "country", "language", "imported_at")
    list_filter = ("participant__study", "sex", "country")
    search_fields = ("participant__prolific_pid",)
    list_select_related = ("participant",)


@admin.register(StudyReport)
class StudyReportAdmin(ReadOnlyAdmin):
    list_display = ("study", "created_at", "n_participants", "n_ratings", "report_link")
    list_filter = ("study",)
    list_select_related = ("study",)
    exclude = ("summary",)

    @admin.display(description="report")
    def report_link(self, obj: StudyReport) -> str:
        url = reverse("admin:studyapp_study_report", args=[obj.study_id, obj.pk])
        return format_html('<a href="{}">Open</a>', url)


@admin.register(ProlificAction)
class ProlificActionAdmin(ReadOnlyAdmin):
    """Every request sent to Prolific (or shown in a dry run), with who asked and the answer."""

    list_display = ("at", "study", "kind", "target", "dry_run", "ok", "decided_by")
    list_filter = ("study", "kind", "dry_run", "ok")
    search_fields = ("target", "answer")
    list_select_related = ("study", "decided_by")


@admin.register(ProlificSubmission)
class ProlificSubmissionAdmin(ReadOnlyAdmin):
    """Prolific's status of each submission, as its hooks and the sync last said."""

    list_display = ("submission_id", "study", "participant_pid", "status", "source", "updated_at")
    list_filter = ("study", "status", "source")
    search_fields = ("submission_id", "participant_pid")
    list_select_related = ("study",)
