"""Questionnaire admin: the versions, each edited as its TOML document, with a preview of the
item page participants see under it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from studyapp.admin.forms import QuestionnaireAdminForm
from studyapp.models import Questionnaire
from studyapp.questionnaires import (
    questionnaire_from_text,
    questionnaire_from_upload,
    questionnaire_preview_html,
)
from studyapp.studies.services import questionnaire_import
from studyformats.questionnaire import Questionnaire as QuestionnaireDocument
from studyformats.questionnaire import QuestionnaireError, questionnaire_toml


def preview_context(
    request: HttpRequest, document: QuestionnaireDocument | None, error: str = ""
) -> dict[str, Any]:
    """What the preview panel shows: the item page under ``document``, or why there is none."""
    if document is None:
        return {"preview_error": error or "There is no document to preview yet."}
    dimensions = len(document.dimensions)
    return {
        "preview_html": questionnaire_preview_html(document, csrf_token=get_token(request)),
        "preview_summary": (
            f"{document.name}: {dimensions} statement{'s' if dimensions != 1 else ''} on a "
            f"{document.scale.points}-point scale, {document.attention_checks.count} "
            "attention check(s)"
        ),
    }


@admin.register(Questionnaire)
class QuestionnaireAdmin(admin.ModelAdmin):
    form = QuestionnaireAdminForm
    change_form_template = "admin/studyapp/questionnaire/change_form.html"
    list_display = (
        "name",
        "version",
        "title",
        "dimension_count",
        "scale_points",
        "frozen",
        "studies_using",
        "preview_link",
    )
    list_filter = ("name",)
    search_fields = ("name", "title")
    readonly_fields = ("name", "version", "title", "frozen_at", "created_at", "studies_list")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Questionnaire]:
        return super().get_queryset(request).annotate(n_studies=Count("studies"))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        about = ("name", "version", "title", "frozen_at", "created_at", "studies_list")
        if obj is None:
            return ((None, {"fields": ("toml", "upload")}),)
        if not self.has_change_permission(request, obj):
            return ((None, {"fields": about}), ("Document", {"fields": ("document_text",)}))
        return ((None, {"fields": about}), ("Document", {"fields": ("toml", "upload")}))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return (*self.readonly_fields, "document_text")
        return self.readonly_fields

    # ---- columns and read-only fields ---------------------------------------------------

    @admin.display(description="dimensions")
    def dimension_count(self, obj: Questionnaire) -> int:
        return len(obj.document.dimensions)

    @admin.display(description="points")
    def scale_points(self, obj: Questionnaire) -> int:
        return obj.document.scale.points

    @admin.display(description="frozen", boolean=True, ordering="frozen_at")
    def frozen(self, obj: Questionnaire) -> bool:
        return obj.is_frozen

    @admin.display(description="studies using it", ordering="n_studies")
    def studies_using(self, obj: Questionnaire) -> int:
        return getattr(obj, "n_studies", 0)

    @admin.display(description="preview")
    def preview_link(self, obj: Questionnaire) -> str:
        url = reverse("admin:studyapp_questionnaire_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview {}</a>', url, obj)

    @admin.display(description="studies")
    def studies_list(self, obj: Questionnaire) -> str:
        studies = list(obj.studies.order_by("slug")) if obj.pk is not None else []
        if not studies:
            return "none yet"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:studyapp_study_change", args=[s.pk]), s.slug) for s in studies),
        )

    @admin.display(description="document (TOML)")
    def document_text(self, obj: Questionnaire) -> str:
        return format_html(
            '<pre class="questionnaire-toml">{}</pre>', questionnaire_toml(obj.document)
        )

    # ---- saving through questionnaire_import ------------------------------------------

    def save_form(self, request: HttpRequest, form: Form, change: bool) -> Questionnaire:
        # The document is stored as questionnaire_import stores it: unchanged, updating a
        # version no study with participants uses, or as the next version.
        document = getattr(form, "document", None)
        if document is None:  # save_form runs only after the form validated
            raise ValueError("the questionnaire form has no document")
        before = Questionnaire.objects.filter(name=document.name).order_by("-version").first()
        stored, changed = questionnaire_import(document)
        if not changed:
            self.message_user(
                request, f"Nothing changed: {stored} already holds this document.", messages.INFO
            )
        elif before is None or stored.version == before.version:
            self.message_user(request, f"Saved {stored}.", messages.SUCCESS)
        else:
            self.message_user(
                request,
                f"Saved as {stored}: version {before.version} is frozen (a study using it has "
                "participants), so the change became a new version.",
                messages.SUCCESS,
            )
        return stored

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Stored by ``save_form`` already."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """A questionnaire has no related objects to save."""

    def _saved_redirect(self, request: HttpRequest, obj: Questionnaire) -> HttpResponse:
        if "_addanother" in request.POST:
            return HttpResponseRedirect(reverse("admin:studyapp_questionnaire_add"))
        if "_continue" in request.POST or QuestionnaireAdminForm.SAVE_AS_NEW_VERSION in (
            request.POST
        ):
            return HttpResponseRedirect(
                reverse("admin:studyapp_questionnaire_change", args=[obj.pk])
            )
        return HttpResponseRedirect(reverse("admin:studyapp_questionnaire_changelist"))

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        return self._saved_redirect(request, obj)

    def response_change(self, request: HttpRequest, obj: Any) -> Any:
        return self._saved_redirect(request, obj)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        # The preview panel under the form: the posted document when the form was sent back
        # with its messages, else the stored version's.
        form = context["adminform"].form
        document = getattr(form, "document", None)
        if document is None and obj is not None and obj.pk is not None and not form.is_bound:
            document = obj.document
        error = ""
        if document is None and form.is_bound:
            error = "The document has problems (see above); the preview shows a valid one."
        context.update(preview_context(request, document, error))
        context["save_as_new_version"] = QuestionnaireAdminForm.SAVE_AS_NEW_VERSION
        return super().render_change_form(request, context, add, change, form_url, obj)

    # ---- preview pages ----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        extra = [
            path(
                "preview/",
                wrap(require_POST(self.preview_text_view)),
                name="studyapp_questionnaire_preview_text",
            ),
            path(
                "<path:object_id>/preview/",
                wrap(self.preview_view),
                name="studyapp_questionnaire_preview",
            ),
        ]
        return extra + super().get_urls()

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """One item page under this version, as a participant sees it."""
        questionnaire = self.get_object(request, object_id)
        if questionnaire is None:
            raise Http404(f"no questionnaire with id {object_id!r}")
        if not self.has_view_permission(request, questionnaire):
            raise PermissionDenied
        return self._preview_page(
            request,
            f"Preview: {questionnaire}",
            preview_context(request, questionnaire.document),
            questionnaire=questionnaire,
        )

    def preview_text_view(self, request: HttpRequest) -> HttpResponse:
        """The item page under the document posted from the change form (not stored): the
        panel for htmx, the whole page for a plain form post."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        upload = request.FILES.get("upload")
        try:
            if upload:
                document = questionnaire_from_upload(upload)
            else:
                text = request.POST.get("toml", "")
                if not text.strip():
                    raise QuestionnaireError("the document is empty")
                document = questionnaire_from_text(text, source="the document")
        except QuestionnaireError as exc:
            context = preview_context(request, None, f"No preview: {exc}")
        else:
            context = preview_context(request, document)
        if getattr(request, "htmx", False):
            return TemplateResponse(request, "admin/studyapp/questionnaire/_preview.html", context)
        return self._preview_page(request, "Preview of the document (not saved)", context)

    def _preview_page(
        self,
        request: HttpRequest,
        title: str,
        preview: dict[str, Any],
        questionnaire: Questionnaire | None = None,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "questionnaire": questionnaire,
            **preview,
        }
        return TemplateResponse(request, "admin/studyapp/questionnaire/preview.html", context)
