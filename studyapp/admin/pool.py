"""The item pool as researchers inspect it: every explanation, with those cut short marked."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from studyapp.admin.records import ReadOnlyAdmin
from studyapp.models import Explanation


@admin.register(Explanation)
class ExplanationAdmin(ReadOnlyAdmin):
    """Explanations come from the imported file and are never edited here.

    ``truncated`` marks a student output that hit the generation cap: its text may stop
    mid-sentence, which participants would rate as incomplete.
    """

    list_display = (
        "question",
        "condition",
        "study",
        "predicted_answer",
        "length",
        "truncated",
        "text_start",
    )
    list_filter = ("truncated", "condition__study", "condition__name")
    search_fields = ("text", "question__external_id")
    list_select_related = ("condition__study", "question")
    fields = (
        "condition",
        "question",
        "predicted_answer",
        "text",
        "length",
        "truncated",
        "run",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Explanation]:
        return super().get_queryset(request).order_by("condition__study", "condition", "question")

    @admin.display(description="study", ordering="condition__study__slug")
    def study(self, obj: Explanation) -> str:
        return obj.condition.study.slug

    @admin.display(description="explanation")
    def text_start(self, obj: Explanation) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"
