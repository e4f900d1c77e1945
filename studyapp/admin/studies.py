"""Study admin: create from an explanations file, open/pause/close, dashboard, exports."""

from __future__ import annotations

from typing import Any

from csp.constants import NONE, UNSAFE_INLINE
from csp.decorators import csp
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from studyapp.admin.forms import DemographicsUploadForm, StudyChangeForm, StudyUploadForm
from studyapp.admin.prolific import ProlificAdminMixin
from studyapp.demographics import (
    DemographicsFileError,
    demographics_import,
    unmatched_message,
)
from studyapp.exports import RatingsExportError, ratings_download, ratings_export_write
from studyapp.models import (
    Condition,
    Explanation,
    Participant,
    Study,
    StudyPlanFrozenError,
    StudyReport,
)
from studyapp.monitoring import bars_layout, study_latest_report, study_progress
from studyapp.permissions import PARTICIPANTS_CHANGE, RATINGS_VIEW, user_may
from studyapp.prolific.services import (
    prolific_client_or_none,
    prolific_comparison,
    study_status_set,
)
from studyapp.reports import ReportError, report_html_path, study_report_run
from studyapp.studies.services import (
    PROLIFIC_QUERY,
    STUDY_STATUS_CHANGES,
    StudyConflictError,
    excluded_release,
    questionnaire_default,
    study_create_from_explanations,
    study_plan_set,
    study_questionnaire_set,
)
from studyapp.uploads import UploadError, upload_lines

# A written report embeds its figures as data: images and its styles in a style element, and
# runs no script; served from the admin, it gets exactly that policy instead of the site's.
REPORT_POLICY = {
    "default-src": [NONE],
    "img-src": ["data:"],
    "style-src": [UNSAFE_INLINE],
    "base-uri": [NONE],
    "form-action": [NONE],
    "frame-ancestors": [NONE],
}

# Opened from the admin, the report gets a way back; the file itself stays as written.
REPORT_BACK_LINK = (
    '<nav aria-label="Study" style="margin:0 0 1rem;font-size:.95rem">'
    '<a href="{}">&larr; Back to the dashboard of {}</a></nav>'
)


def report_with_back_link(page: str, dashboard_url: str, study_name: str) -> str:
    """The report's HTML with a link back to its study's dashboard at the top of the body.

    Examples
    --------
    >>> report_with_back_link("<html><body><h1>R</h1></body></html>", "/admin/d/", "a&b")
    '<html><body><nav aria-label="Study" style="margin:0 0 1rem;font-size:.95rem"><a href="/admin/d/">&larr; Back to the dashboard of a&amp;b</a></nav><h1>R</h1></body></html>'
    """
    link = format_html(REPORT_BACK_LINK, dashboard_url, study_name)
    head, marker, rest = page.partition("<body>")
    if not marker:
        return link + page
    return head + marker + link + rest


STATUS_ACTIONS = {
    "open": (Study.Status.LIVE, "opened"),
    "pause": (Study.Status.PAUSED, "paused"),
    "close": (Study.Status.CLOSED, "closed"),
}

STATUS_BUTTONS = (("open", "Open"), ("pause", "Pause"), ("close", "Close"))


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class ConditionInline(admin.StackedInline):
    """Conditions come from the explanations file; only their descriptions can be corrected."""

    model = Condition
    fields = ("name", "method", "data_variant", "student", "explanation_count", "truncated_count")
    readonly_fields = ("name", "explanation_count", "truncated_count")
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Condition]:
        # Explicit order: Meta.ordering is not applied to aggregating queries.
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_explanations=Count("explanations"),
                n_truncated=Count("explanations", filter=Q(explanations__truncated=True)),
            )
            .order_by("name")
        )

    @admin.display(description="explanations")
    def explanation_count(self, obj: Condition) -> int:
        return getattr(obj, "n_explanations", 0)

    @admin.display(description="cut at the generation cap")
    def truncated_count(self, obj: Condition) -> str:
        count = getattr(obj, "n_truncated", 0)
        if not count:
            return "0"
        url = reverse("admin:studyapp_explanation_changelist")
        return format_html(
            '<a href="{}?condition__id__exact={}&amp;truncated__exact=1">{}</a>', url, obj.pk, count
        )


@admin.register(Study)
class StudyAdmin(ProlificAdminMixin, admin.ModelAdmin):
    form = StudyChangeForm
    list_display = (
        "slug",
        "title",
        "status",
        "participants_started",
        "participants_completed",
        "plan_label",
        "questionnaire_label",
        "created_at",
        "dashboard_link",
    )
    list_filter = ("status",)
    search_fields = ("slug", "title")
    readonly_fields = (
        "slug",
        "status",
        "created_at",
        "dashboard_link",
        "plan_summary",
        "plan_text_shown",
        "questionnaire_shown",
    )
    inlines = [ConditionInline]
    actions = ["study_open", "study_pause", "study_close", "ratings_export"]
    fieldsets = (
        (None, {"fields": ("slug", "title", "status", "dashboard_link", "created_at")}),
        (
            "Participants",
            {
                "fields": (
                    "completion_code",
                    "failed_checks_code",
                    "prolific_study_id",
                    "per_condition",
                    "attention_checks",
                    "time_limit_minutes",
                    "max_participants",
                    "max_ratings_per_explanation",
                )
            },
        ),
        ("Texts", {"fields": ("consent_text", "instructions_text")}),
        ("Questionnaire", {"fields": ("questionnaire_shown", "questionnaire_choice")}),
    )
    PLAN_INPUTS = ("plan", "plan_file", "plan_toml")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # Once the study has gone live its plan is shown, never offered for editing.
        inputs = () if obj is not None and obj.plan_frozen else self.PLAN_INPUTS
        plan = ("Analysis plan", {"fields": ("plan_summary", *inputs, "plan_text_shown")})
        return (*self.fieldsets, plan)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_started=Count(
                    "participants", filter=~Q(participants__status=Participant.Status.NO_CONSENT)
                ),
                n_completed=Count(
                    "participants", filter=Q(participants__status=Participant.Status.COMPLETED)
                ),
            )
        )

    @admin.display(description="started", ordering="n_started")
    def participants_started(self, obj: Study) -> int:
        return getattr(obj, "n_started", 0)

    @admin.display(description="completed", ordering="n_completed")
    def participants_completed(self, obj: Study) -> int:
        return getattr(obj, "n_completed", 0)

    @admin.display(description="plan")
    def plan_label(self, obj: Study) -> str:
        name = obj.plan_name or "none"
        return f"{name} (frozen)" if obj.plan_frozen else name

    @admin.display(description="questionnaire")
    def questionnaire_label(self, obj: Study) -> str:
        return str(obj.questionnaire) if obj.questionnaire_id else "plain-5 (default)"

    @admin.display(description="current questionnaire")
    def questionnaire_shown(self, obj: Study) -> str:
        questionnaire = obj.questionnaire
        if questionnaire is None:
            return "plain-5, the default"
        frozen = " (frozen)" if questionnaire.is_frozen else ""
        return format_html(
            '{}{}: <a href="{}">preview its item page</a>',
            questionnaire,
            frozen,
            reverse("admin:studyapp_questionnaire_preview", args=[questionnaire.pk]),
        )

    @admin.display(description="registered plan")
    def plan_summary(self, obj: Study) -> str:
        return obj.plan_description()

    @admin.display(description="registered plan text")
    def plan_text_shown(self, obj: Study) -> str:
        if not obj.plan_text:
            return "-"
        return format_html('<pre id="plan-text">{}</pre>', obj.plan_text)

    def save_model(self, request: HttpRequest, obj: Study, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if getattr(form, "plan_given", False):
            try:
                study_plan_set(study=obj, plan=form.plan_new)
            except StudyPlanFrozenError as exc:
                # The study went live between the form's check and now.
                self.message_user(request, f"The plan was not changed: {exc}.", messages.ERROR)
        if getattr(form, "questionnaire_given", False):
            chosen = form.cleaned_data.get("questionnaire_choice") or questionnaire_default()
            try:
                study_questionnaire_set(study=obj, questionnaire=chosen)
            except StudyConflictError as exc:
                # A participant started between the form's check and now.
                self.message_user(
                    request, f"The questionnaire was not changed: {exc}.", messages.ERROR
                )

    @admin.display(description="dashboard")
    def dashboard_link(self, obj: Study) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:studyapp_study_dashboard", args=[obj.pk])
        return format_html('<a href="{}">Dashboard</a>', url)

    # ---- status actions -------------------------------------------------------------

    def _status_action(self, request: HttpRequest, queryset: QuerySet[Study], key: str) -> None:
        status, verb = STATUS_ACTIONS[key]
        changed: list[str] = []
        client = prolific_client_or_none()
        for study in queryset:
            done, prolific_note = study_status_set(
                study=study, status=status, client=client, by=request.user
            )
            if done:
                # The admin's history of the study then shows who opened or closed it, and when.
                self.log_change(request, study, f"{verb} the study")
                changed.append(study.slug)
            if prolific_note:
                self.message_user(request, f"{study.slug}: {prolific_note}", messages.INFO)
        if client is not None:
            client.close()
        unchanged = queryset.count() - len(changed)
        if changed:
            self.message_user(request, f"{verb.capitalize()}: {', '.join(changed)}.")
        if unchanged:
            self.message_user(
                request,
                f"{unchanged} study/studies could not be {verb} (already {verb}, or a pause of "
                "a study that is not live).",
                messages.WARNING,
            )

    @admin.action(description="Open the selected studies to participants", permissions=["change"])
    def study_open(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        self._status_action(request, queryset, "open")

    @admin.action(description="Pause the selected studies", permissions=["change"])
    def study_pause(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        self._status_action(request, queryset, "pause")

    @admin.action(description="Close the selected studies", permissions=["change"])
    def study_close(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        self._status_action(request, queryset, "close")

    def has_ratings_permission(self, request: HttpRequest) -> bool:
        """May read what participants answered (the rule the API's ratings endpoints use)."""
        return user_may(request.user, RATINGS_VIEW)

    @admin.action(
        description="Export ratings of the selected studies (CSV)", permissions=["ratings"]
    )
    def ratings_export(
        self, request: HttpRequest, queryset: QuerySet[Study]
    ) -> HttpResponse | None:
        studies = list(queryset.order_by("slug"))
        name = studies[0].slug if len(studies) == 1 else f"{len(studies)}-studies"
        response = ratings_download(name)
        try:
            ratings_export_write(studies, response)
        except RatingsExportError as exc:
            self.message_user(request, f"Nothing was exported: {exc}.", messages.ERROR)
            return None
        return response

    # ---- extra pages ------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        extra = [
            path("upload/", wrap(self.upload_view), name="studyapp_study_upload"),
            path(
                "<path:object_id>/dashboard/",
                wrap(self.dashboard_view),
                name="studyapp_study_dashboard",
            ),
            path(
                "<path:object_id>/status/<str:key>/",
                wrap(require_POST(self.status_view)),
                name="studyapp_study_status",
            ),
            path(
                "<path:object_id>/release-excluded/",
                wrap(require_POST(self.release_excluded_view)),
                name="studyapp_study_release_excluded",
            ),
            path(
                "<path:object_id>/analyze/",
                wrap(require_POST(self.analyze_view)),
                name="studyapp_study_analyze",
            ),
            path(
                "<path:object_id>/demographics/",
                wrap(require_POST(self.demographics_view)),
                name="studyapp_study_demographics",
            ),
            path(
                "<path:object_id>/reports/<int:report_id>/",
                # django-csp types a view as taking the request alone.
                wrap(csp(REPORT_POLICY)(self.report_view)),  # type: ignore[arg-type]
                name="studyapp_study_report",
            ),
            path(
                "<path:object_id>/ratings.csv",
                wrap(self.ratings_csv_view),
                name="studyapp_study_ratings_csv",
            ),
        ]
        # The Prolific pages first: '<path:object_id>/demographics/' would match theirs too.
        return self.prolific_urls() + extra + super().get_urls()

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # A study without an item pool cannot run, so "add" means "upload its explanations".
        return HttpResponseRedirect(reverse("admin:studyapp_study_upload"))

    def _study_or_404(self, request: HttpRequest, object_id: str) -> Study:
        study = self.get_object(request, object_id)
        if study is None:
            raise Http404(f"no study with id {object_id!r}")
        return study

    def _dashboard_redirect(self, study: Study) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:studyapp_study_dashboard", args=[study.pk]))

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StudyUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                study = study_create_from_explanations(
                    slug=data["slug"],
                    records=form.records,
                    title=data["title"] or None,
                    completion_code=data["completion_code"] or None,
                    per_condition=data["per_condition"],
                    live=data["live"],
                    plan=form.plan_new if form.plan_given else None,
                    questionnaire=data.get("questionnaire"),
                )
            except StudyConflictError as exc:
                form.add_error(None, f"Nothing was imported: {exc}")
            else:
                self.log_addition(request, study, f"imported {len(form.records)} explanations")
                self.message_user(
                    request,
                    f"Study '{study.slug}' ({study.get_status_display().lower()}) now has "
                    f"{study.conditions.count()} conditions and {study.questions.count()} "
                    "questions.",
                    messages.SUCCESS,
                )
                return self._dashboard_redirect(study)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Create a study from an explanations file",
            "form": form,
            "file_errors": form.file_errors,
        }
        return TemplateResponse(request, "admin/studyapp/study/upload.html", context)

    def dashboard_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._study_or_404(request, object_id)
        if not self.has_view_permission(request, study):
            raise PermissionDenied
        progress = study_progress(study=study)
        condition_bars, condition_height = bars_layout(
            [(name, float(n)) for name, n in progress.ratings_per_condition.items()]
        )
        exposure_bars, exposure_height = bars_layout(
            [
                (f"rated {times}×", float(n))
                for times, n in sorted(progress.exposure_histogram.items())
            ]
        )
        latest = study_latest_report(study)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Dashboard: {study.title}",
            "study": study,
            "progress": progress,
            "condition_bars": condition_bars,
            "condition_height": condition_height,
            "exposure_bars": exposure_bars,
            "exposure_height": exposure_height,
            # Only the buttons that would change something in the current status.
            "status_buttons": [
                (key, label)
                for key, label in STATUS_BUTTONS
                if study.status in STUDY_STATUS_CHANGES[STATUS_ACTIONS[key][0]]
            ],
            "entry_url": request.build_absolute_uri(
                reverse("studyapp:entry", kwargs={"slug": study.slug})
            )
            + "?"
            + PROLIFIC_QUERY,
            "median_completion": duration_text(progress.median_completion_seconds),
            "attention_fail_rate": (
                f"{progress.attention_fail_rate:.1%}"
                if progress.attention_fail_rate is not None
                else "-"
            ),
            "attention_flag": Participant.ATTENTION_FAILURES_TO_FLAG,
            "truncated_count": Explanation.objects.filter(
                condition__study=study, truncated=True
            ).count(),
            "latest_report": latest,
            "latest_report_available": latest is not None and report_html_path(latest) is not None,
            "demographics_form": DemographicsUploadForm(),
            "prolific": prolific_comparison(study) if study.prolific_study_id else None,
            "can_change": self.has_change_permission(request, study),
            "can_download_ratings": self.has_ratings_permission(request),
            "can_release_excluded": user_may(request.user, PARTICIPANTS_CHANGE),
            "can_analyze": request.user.has_perm("studyapp.add_studyreport"),
            "can_import_demographics": request.user.has_perm("studyapp.add_participantdemographics")
            and request.user.has_perm("studyapp.change_participantdemographics"),
        }
        return TemplateResponse(request, "admin/studyapp/study/dashboard.html", context)

    def status_view(self, request: HttpRequest, object_id: str, key: str) -> HttpResponse:
        study = self._study_or_404(request, object_id)
        if not self.has_change_permission(request, study):
            raise PermissionDenied
        if key not in STATUS_ACTIONS:
            raise Http404(f"unknown status action {key!r}")
        self._status_action(request, Study.objects.filter(pk=study.pk), key)
        return self._dashboard_redirect(study)

    def release_excluded_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._study_or_404(request, object_id)
        if not user_may(request.user, PARTICIPANTS_CHANGE):
            raise PermissionDenied
        stopped = excluded_release(study=study)
        self.message_user(
            request,
            f"Stopped {stopped} excluded participant(s) still working; their unrated items "
            "went back to the pool.",
            messages.SUCCESS,
        )
        return self._dashboard_redirect(study)

    def analyze_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._study_or_404(request, object_id)
        if not request.user.has_perm("studyapp.add_studyreport"):
            raise PermissionDenied
        try:
            report = study_report_run(study=study)
        except ReportError as exc:
            self.message_user(request, f"The analysis could not run: {exc}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Analysis report written to {report.out_dir} "
                f"({report.n_ratings} ratings of {report.n_participants} participants).",
                messages.SUCCESS,
            )
        return self._dashboard_redirect(study)

    def demographics_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._study_or_404(request, object_id)
        if not (
            request.user.has_perm("studyapp.add_participantdemographics")
            and request.user.has_perm("studyapp.change_participantdemographics")
        ):
            raise PermissionDenied
        form = DemographicsUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            self.message_user(request, "Choose Prolific's demographic export file.", messages.ERROR)
            return self._dashboard_redirect(study)
        try:
            summary = demographics_import(
                study=study, lines=upload_lines(form.cleaned_data["demographics"])
            )
        except UploadError as exc:
            self.message_user(request, f"Nothing was imported: {exc}", messages.ERROR)
        except DemographicsFileError as exc:
            for error in [f"Nothing was imported: {exc.summary}.", *exc.errors]:
                self.message_user(request, error, messages.ERROR)
        else:
            self.message_user(
                request,
                f"Demographics of {summary.matched} participants stored ({summary.created} new, "
                f"{summary.updated} updated).",
                messages.SUCCESS,
            )
            if summary.unmatched_ids:
                self.message_user(
                    request, unmatched_message(summary.unmatched_ids), messages.WARNING
                )
        return self._dashboard_redirect(study)

    def report_view(self, request: HttpRequest, object_id: str, report_id: int) -> HttpResponseBase:
        study = self._study_or_404(request, object_id)
        if not request.user.has_perm("studyapp.view_studyreport"):
            raise PermissionDenied
        report = get_object_or_404(StudyReport, pk=report_id, study=study)
        html = report_html_path(report)
        if html is None:
            raise Http404(f"the report in {report.out_dir} was moved or deleted")
        dashboard = reverse("admin:studyapp_study_dashboard", args=[study.pk])
        return HttpResponse(
            report_with_back_link(html.read_text(encoding="utf-8"), dashboard, str(study)),
            content_type="text/html; charset=utf-8",
        )

    def ratings_csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._study_or_404(request, object_id)
        if not self.has_ratings_permission(request):
            raise PermissionDenied
        response = ratings_download(study.slug)
        ratings_export_write([study], response)
        return response
