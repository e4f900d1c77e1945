"""Participant admin: filters, search by Prolific ID, exclusion with a reason, release, export."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from studyapp.admin.forms import ReasonForm
from studyapp.exports import RatingsExportError, ratings_download, ratings_export_write
from studyapp.models import Participant, ParticipantExclusion, Study
from studyapp.permissions import RATINGS_VIEW, user_may
from studyapp.studies.services import participant_exclusion_set, participant_stop


class AttentionFailsFilter(admin.SimpleListFilter):
    title = "attention checks"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        flag = Participant.ATTENTION_FAILURES_TO_FLAG
        return [
            ("passed", "none failed"),
            ("some", f"1 to {flag - 1} failed"),
            ("flagged", f"{flag} or more failed"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        flag = Participant.ATTENTION_FAILURES_TO_FLAG
        if self.value() == "passed":
            return queryset.filter(attention_failures=0)
        if self.value() == "some":
            return queryset.filter(attention_failures__gte=1, attention_failures__lt=flag)
        if self.value() == "flagged":
            return queryset.filter(attention_failures__gte=flag)
        return queryset


class CompletedFilter(admin.SimpleListFilter):
    title = "completed"
    parameter_name = "completed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(status=Participant.Status.COMPLETED)
        if self.value() == "no":
            return queryset.exclude(status=Participant.Status.COMPLETED)
        return queryset


class ExclusionRecordInline(admin.StackedInline):
    """The audit trail: read-only, written only by the exclude / re-include actions."""

    model = ParticipantExclusion
    fields = ("decided_at", "excluded", "reason", "decided_by")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = (
        "prolific_pid",
        "study",
        "status",
        "items_rated",
        "attention_failures",
        "excluded",
        "started_at",
        "completed_at",
    )
    list_filter = (
        "study",
        "status",
        AttentionFailsFilter,
        CompletedFilter,
        "excluded",
    )
    search_fields = ("prolific_pid",)
    list_select_related = ("study",)
    date_hierarchy = "started_at"
    # Every field is read-only: status and exclusion change only through the actions,
    # which keep the pool and the audit trail consistent.
    readonly_fields = (
        "study",
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
    fields = readonly_fields
    inlines = [ExclusionRecordInline]
    actions = [
        "participants_exclude",
        "participants_include",
        "participants_mark_returned",
        "participants_mark_timed_out",
        "ratings_export",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participant]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_rated=Count("assignments", filter=Q(assignments__answered_at__isnull=False))
            )
        )

    @admin.display(description="items rated", ordering="n_rated")
    def items_rated(self, obj: Participant) -> int:
        return getattr(obj, "n_rated", 0)

    # ---- exclusion with a reason ------------------------------------------------------

    def _exclusion_action(
        self, request: HttpRequest, queryset: QuerySet[Participant], *, excluded: bool
    ) -> HttpResponse | None:
        verb = "exclude" if excluded else "re-include"
        # The first POST comes from the change list; the second from the reason page.
        form = ReasonForm(request.POST) if "reason" in request.POST else ReasonForm()
        if "reason" in request.POST and form.is_valid():
            changed = sum(
                participant_exclusion_set(
                    participant=participant,
                    excluded=excluded,
                    reason=form.cleaned_data["reason"],
                    decided_by=request.user,
                )
                for participant in queryset
            )
            self.message_user(
                request, f"{verb.capitalize()}d {changed} participant(s).", messages.SUCCESS
            )
            if changed < queryset.count():
                state = "excluded" if excluded else "included"
                self.message_user(
                    request,
                    f"{queryset.count() - changed} were already {state}; nothing was recorded "
                    "for them.",
                    messages.WARNING,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{verb.capitalize()} participants",
            "verb": verb,
            "action": request.POST.get("action"),
            "participants": queryset,
            "selected": queryset.values_list("pk", flat=True),
            "selected_field": ACTION_CHECKBOX_NAME,
            "form": form,
        }
        return TemplateResponse(request, "admin/studyapp/participant/reason.html", context)

    @admin.action(description="Exclude the selected participants…", permissions=["change"])
    def participants_exclude(
        self, request: HttpRequest, queryset: QuerySet[Participant]
    ) -> HttpResponse | None:
        return self._exclusion_action(request, queryset, excluded=True)

    @admin.action(description="Re-include the selected participants…", permissions=["change"])
    def participants_include(
        self, request: HttpRequest, queryset: QuerySet[Participant]
    ) -> HttpResponse | None:
        return self._exclusion_action(request, queryset, excluded=False)

    # ---- release ----------------------------------------------------------------------

    def _stop_action(
        self, request: HttpRequest, queryset: QuerySet[Participant], status: str
    ) -> None:
        changed = sum(participant_stop(participant=p, status=status) for p in queryset)
        label = Participant.Status(status).label.lower()
        self.message_user(
            request,
            f"Marked {changed} participant(s) {label}; their unrated items went back to the pool.",
            messages.SUCCESS,
        )
        if changed < queryset.count():
            self.message_user(
                request,
                f"{queryset.count() - changed} were not active and were left as they were.",
                messages.WARNING,
            )

    @admin.action(description="Mark as returned (release unrated items)", permissions=["change"])
    def participants_mark_returned(
        self, request: HttpRequest, queryset: QuerySet[Participant]
    ) -> None:
        self._stop_action(request, queryset, Participant.Status.RETURNED)

    @admin.action(description="Mark as timed out (release unrated items)", permissions=["change"])
    def participants_mark_timed_out(
        self, request: HttpRequest, queryset: QuerySet[Participant]
    ) -> None:
        self._stop_action(request, queryset, Participant.Status.TIMED_OUT)

    # ---- export -----------------------------------------------------------------------

    def has_ratings_permission(self, request: HttpRequest) -> bool:
        """May read what participants answered (the rule the API's ratings endpoints use)."""
        return user_may(request.user, RATINGS_VIEW)

    @admin.action(
        description="Export ratings of the selected participants (CSV)", permissions=["ratings"]
    )
    def ratings_export(
        self, request: HttpRequest, queryset: QuerySet[Participant]
    ) -> HttpResponse | None:
        studies = list(Study.objects.filter(participants__in=queryset).distinct().order_by("slug"))
        response = ratings_download("participants")
        try:
            ratings_export_write(
                studies, response, participant_ids=list(queryset.values_list("pk", flat=True))
            )
        except RatingsExportError as exc:
            self.message_user(request, f"Nothing was exported: {exc}.", messages.ERROR)
            return None
        return response
