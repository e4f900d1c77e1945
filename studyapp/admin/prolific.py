"""The study's Prolific page: create and publish, sync, review, bonuses and demographics.

Every view here works on one study and needs the right to change it. Nothing that costs
money happens in one click: creating and publishing are separate, a bonus batch is set up
(priced by Prolific) before a second, confirmed request pays it, and review actions offer a
dry run that records and shows the request without sending it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from studyapp.demographics import DemographicsFileError, unmatched_message
from studyapp.models import ProlificAction, ProlificBonusBatch, Study
from studyapp.prolific.client import TOKEN_HELP, ProlificClient, ProlificError, token_setting
from studyapp.prolific.services import (
    REJECTION_CATEGORIES,
    REJECTION_MESSAGE_MIN,
    STUDY_UNPUBLISHED,
    ProlificServiceError,
    StudyDraft,
    bonus_lines_completed,
    bonus_lines_parse,
    bonus_pay,
    bonus_setup,
    bulk_approve,
    demographics_fetch,
    prolific_client_or_none,
    prolific_comparison,
    prolific_sync,
    review_rows,
    study_create_on_prolific,
    study_create_request,
    study_publish,
    submission_reject,
    submission_request_return,
)
from studyapp.uploads import UploadError, upload_lines

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    StudyAdminBase = ModelAdmin[Study]
else:
    StudyAdminBase = object

AUDIT_SHOWN = 50
# A second completion code posted back from a preview (codes are made as letters and digits).
FAILED_CODE_PATTERN = re.compile(r"[A-Za-z0-9]{1,64}")


def money(cents: Decimal | int) -> str:
    """An amount in cents (pence) in the major unit, for example 1234 -> '12.34'."""
    return f"{Decimal(cents) / 100:.2f}"


def form_problems(form: forms.Form) -> list[str]:
    """Each of a form's errors as "Label: message"."""
    problems = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = str(field.label or name.replace("_", " ").capitalize()) if field else ""
        for error in errors:
            problems.append(f"{label}: {error}" if label else str(error))
    return problems


# ---- forms ----------------------------------------------------------------------------------


class ProlificCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="The title participants see on Prolific.")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="What participants read before taking part (simple HTML allowed).",
    )
    reward = forms.IntegerField(
        min_value=1,
        help_text="Per participant, in pence or cents (your workspace's currency): 150 is 1.50.",
    )
    estimated_completion_time = forms.IntegerField(
        min_value=1, max_value=1440, label="Estimated minutes"
    )
    total_available_places = forms.IntegerField(min_value=1, label="Places")
    site_url = forms.URLField(
        assume_scheme="https",
        label="Site address",
        help_text="Where participants reach this platform, for example https://study.example.org. "
        "The study link is built from it with Prolific's PROLIFIC_PID, STUDY_ID and SESSION_ID.",
    )
    completed_action = forms.ChoiceField(
        choices=(
            ("approve", "Approve automatically"),
            ("review", "Wait for my review"),
        ),
        initial="approve",
        label="Completed submissions",
        help_text="Participants who failed two or more attention checks get a second code, "
        "which always waits for your review.",
    )
    devices = forms.MultipleChoiceField(
        choices=(("desktop", "Desktop"), ("tablet", "Tablet"), ("mobile", "Mobile")),
        initial=["desktop", "tablet", "mobile"],
        widget=forms.CheckboxSelectMultiple,
        help_text="The devices participants may use.",
    )
    filter_set_id = forms.CharField(
        max_length=64,
        required=False,
        label="Filter set id",
        help_text="A filter set saved on Prolific; leave blank to give filters below instead.",
    )
    filters = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='Prolific\'s filters as JSON, for example [{"filter_id": "age", '
        '"selected_range": {"lower": 18, "upper": 65}}]; blank: everyone.',
    )

    def clean_filters(self) -> list[dict[str, Any]]:
        text = self.cleaned_data["filters"].strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Filters are not JSON: {exc}.") from None
        if not isinstance(value, list) or not all(
            isinstance(item, dict) and isinstance(item.get("filter_id"), str) for item in value
        ):
            raise forms.ValidationError(
                'Filters must be a JSON list of objects, each with a "filter_id".'
            )
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("filter_set_id") and data.get("filters"):
            self.add_error("filters", "Give a filter set id or filters, not both.")
        return data

    def draft(self) -> StudyDraft:
        data = self.cleaned_data
        return StudyDraft(
            name=data["name"],
            description=data["description"],
            reward=data["reward"],
            estimated_completion_time=data["estimated_completion_time"],
            total_available_places=data["total_available_places"],
            site_url=data["site_url"],
            review_completed=data["completed_action"] == "review",
            filters=data["filters"],
            filter_set_id=data["filter_set_id"].strip(),
            device_compatibility=tuple(data["devices"]),
        )


class RejectForm(forms.Form):
    submission_id = forms.CharField(max_length=64, widget=forms.HiddenInput)
    rejection_category = forms.ChoiceField(choices=REJECTION_CATEGORIES, label="Category")
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        min_length=REJECTION_MESSAGE_MIN,
        help_text=f"What the participant reads: at least {REJECTION_MESSAGE_MIN} characters "
        "that say what went wrong.",
    )
    dry_run = forms.BooleanField(required=False, label="Dry run: show, do not send")


class ReturnForm(forms.Form):
    submission_id = forms.CharField(max_length=64, widget=forms.HiddenInput)
    reasons = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One reason a line; the participant reads them.",
    )
    dry_run = forms.BooleanField(required=False, label="Dry run: show, do not send")


class BonusForm(forms.Form):
    rule_amount = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        decimal_places=2,
        label="Everyone who completed gets",
        help_text="In pounds or dollars, for example 0.50. Excluded participants are left out.",
    )
    csv_bonuses = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Or a list",
        help_text="Lines of 'participant id,amount' (amount in pounds or dollars, e.g. 1.50).",
    )
    csv_file = forms.FileField(
        required=False,
        label="Or a CSV file",
        help_text="The same lines as a file; a header line is allowed.",
    )
    dry_run = forms.BooleanField(required=False, label="Dry run: show, do not send")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("csv_file")
        if upload is not None:
            try:
                data["csv_bonuses_file"] = "".join(upload_lines(upload))
            except UploadError as exc:
                raise forms.ValidationError(f"The CSV file cannot be read: {exc}.") from None
        given = [
            bool(data.get("rule_amount")),
            bool((data.get("csv_bonuses") or "").strip()),
            upload is not None,
        ]
        if given.count(True) != 1:
            raise forms.ValidationError(
                "Give one of: an amount for everyone, a list, or a CSV file."
            )
        return data

    def bonus_text(self) -> str:
        """The list given, typed or uploaded ("" for the rule)."""
        return str(
            self.cleaned_data.get("csv_bonuses_file") or self.cleaned_data.get("csv_bonuses") or ""
        )


# ---- views ----------------------------------------------------------------------------------


class ProlificAdminMixin(StudyAdminBase):
    """The Prolific pages of a study, mixed into the study admin."""

    def prolific_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        pages: list[tuple[str, Callable[..., HttpResponse], str, bool]] = [
            ("", self.prolific_view, "prolific", False),
            ("create/", self.prolific_create_view, "prolific_create", False),
            ("publish/", self.prolific_publish_view, "prolific_publish", True),
            ("sync/", self.prolific_sync_view, "prolific_sync", True),
            ("approve/", self.prolific_approve_view, "prolific_approve", True),
            ("reject/", self.prolific_reject_view, "prolific_reject", True),
            ("return/", self.prolific_return_view, "prolific_return", True),
            ("bonuses/", self.prolific_bonus_view, "prolific_bonuses", True),
            ("demographics/", self.prolific_demographics_view, "prolific_demographics", True),
        ]
        urls = [
            path(
                f"<path:object_id>/prolific/{route}",
                wrap(require_POST(view) if post_only else view),
                name=f"studyapp_study_{name}",
            )
            for route, view, name, post_only in pages
        ]
        urls.append(
            path(
                "<path:object_id>/prolific/bonuses/<int:batch_id>/pay/",
                wrap(require_POST(self.prolific_bonus_pay_view)),
                name="studyapp_study_prolific_bonus_pay",
            )
        )
        return urls

    # -- helpers

    def _prolific_study(self, request: HttpRequest, object_id: str) -> Study:
        study = self.get_object(request, object_id)
        if study is None:
            raise PermissionDenied
        if not self.has_change_permission(request, study):
            raise PermissionDenied
        return study

    def _prolific_page(self, study: Study) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:studyapp_study_prolific", args=[study.pk]))

    def _client(self, request: HttpRequest) -> ProlificClient | None:
        client = prolific_client_or_none()
        if client is None:
            self.message_user(request, f"Nothing was sent. {TOKEN_HELP}", messages.ERROR)
        return client

    def _run(self, request: HttpRequest, action: Callable[[ProlificClient], str]) -> None:
        """Run one Prolific action and report its outcome as a message."""
        client = self._client(request)
        if client is None:
            return
        with client:
            try:
                done = action(client)
            except (ProlificError, ProlificServiceError) as exc:
                self.message_user(request, f"Nothing changed: {exc}", messages.ERROR)
            else:
                self.message_user(request, done, messages.SUCCESS)

    # -- pages

    def prolific_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        rows = review_rows(study)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Prolific: {study.title}",
            "study": study,
            "configured": bool(token_setting()),
            "token_help": TOKEN_HELP,
            "unpublished": study.prolific_status in ("", STUDY_UNPUBLISHED),
            "comparison": prolific_comparison(study),
            "rows": rows,
            "approvable": [row for row in rows if row.approvable],
            "rejectable": [row for row in rows if row.rejectable],
            "reject_form": RejectForm(),
            "return_form": ReturnForm(),
            "bonus_form": BonusForm(),
            "bonuses": list(study.prolific_bonuses.all()),
            "audit": list(
                ProlificAction.objects.filter(study=study).select_related("decided_by")[
                    :AUDIT_SHOWN
                ]
            ),
            "hook_url": request.build_absolute_uri(reverse("prolific_hook")),
        }
        return TemplateResponse(request, "admin/studyapp/study/prolific.html", context)

    def prolific_create_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        if study.prolific_study_id:
            self.message_user(
                request,
                f"This study is already on Prolific as {study.prolific_study_id}.",
                messages.WARNING,
            )
            return self._prolific_page(study)
        initial = {
            "name": study.title,
            "site_url": request.build_absolute_uri("/").rstrip("/"),
            "estimated_completion_time": 15,
        }
        form = ProlificCreateForm(request.POST or None, initial=initial)
        preview: dict[str, Any] | None = None
        if request.method == "POST" and form.is_valid():
            draft = form.draft()
            # The second completion code is made for the first preview and posted back with
            # the confirmation, so the request confirmed is the one previewed.
            given = request.POST.get("failed_checks_code", "")
            code = given if FAILED_CODE_PATTERN.fullmatch(given) else ""
            preview = self._create_preview(study, draft, code)
            # Created only as previewed: a change after the preview is previewed again.
            if (
                request.POST.get("confirm") == "yes"
                and request.POST.get("previewed") == preview["digest"]
            ):
                code = preview["failed_checks_code"]
                self._run(request, lambda client: self._create(request, study, draft, code, client))
                return self._prolific_page(study)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Create {study.slug} on Prolific",
            "study": study,
            "form": form,
            "preview": preview,
            "configured": bool(token_setting()),
            "token_help": TOKEN_HELP,
        }
        return TemplateResponse(request, "admin/studyapp/study/prolific_create.html", context)

    def _create_preview(
        self, study: Study, draft: StudyDraft, failed_checks_code: str
    ) -> dict[str, Any]:
        """What would be sent, the hourly rate, and Prolific's price when it can be asked."""
        sent = study_create_request(study, draft, failed_checks_code=failed_checks_code)
        body = json.dumps(sent.body, indent=2, sort_keys=True)
        total_cost: str | None = None
        cost_problem = ""
        try:
            with ProlificClient.from_settings() as client:
                cost = client.study_cost(draft.reward, draft.total_available_places)
            total_cost = money(cost)
        except ProlificError as exc:
            cost_problem = str(exc)
        return {
            "request": f"{sent.method} /{sent.path}",
            "body": body,
            "digest": hashlib.sha256(body.encode()).hexdigest(),
            "failed_checks_code": (sent.body or {})["completion_codes"][1]["code"],
            "hourly_rate": money(draft.hourly_rate()),
            "reward": money(draft.reward),
            "total_cost": total_cost,
            "cost_problem": cost_problem,
        }

    def _create(
        self,
        request: HttpRequest,
        study: Study,
        draft: StudyDraft,
        failed_checks_code: str,
        client: ProlificClient,
    ) -> str:
        study_create_on_prolific(
            study=study,
            draft=draft,
            client=client,
            by=request.user,
            failed_checks_code=failed_checks_code,
        )
        self.log_change(request, study, f"created on Prolific as {study.prolific_study_id}")
        return (
            f"Created on Prolific as draft {study.prolific_study_id}. Check it there if you like, "
            "then publish it from this page."
        )

    def prolific_publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        if request.POST.get("confirm") != "yes":
            self.message_user(
                request,
                "Tick the confirmation to publish: it starts paying participants.",
                messages.ERROR,
            )
            return self._prolific_page(study)

        def publish(client: ProlificClient) -> str:
            study_publish(study=study, client=client, by=request.user)
            self.log_change(request, study, "published on Prolific")
            return (
                f"Published on Prolific ({study.prolific_status.lower()}); the study is open here."
            )

        self._run(request, publish)
        return self._prolific_page(study)

    def prolific_sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)

        def sync(client: ProlificClient) -> str:
            summary = prolific_sync(study=study, client=client)
            followed = f" Our study is now {summary.followed}." if summary.followed else ""
            return (
                f"Read {summary.submissions} submissions from Prolific: {summary.changed} "
                f"changed, {summary.released} participant(s) released.{followed}"
            )

        self._run(request, sync)
        return self._prolific_page(study)

    def prolific_approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        dry_run = request.POST.get("dry_run") == "on"

        def approve(client: ProlificClient) -> str:
            sent, rows = bulk_approve(study=study, client=client, by=request.user, dry_run=dry_run)
            if dry_run:
                return f"Dry run, nothing sent. Would send: {sent.describe()}"
            return f"Asked Prolific to approve {len(rows)} submission(s)."

        self._run(request, approve)
        return self._prolific_page(study)

    def prolific_reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        form = RejectForm(request.POST)
        if not form.is_valid():
            for problem in form_problems(form):
                self.message_user(request, f"Nothing sent: {problem}", messages.ERROR)
            return self._prolific_page(study)
        data = form.cleaned_data

        def reject(client: ProlificClient) -> str:
            sent = submission_reject(
                study=study,
                submission_id=data["submission_id"],
                category=data["rejection_category"],
                message=data["message"],
                client=client,
                by=request.user,
                dry_run=data["dry_run"],
            )
            if data["dry_run"]:
                return f"Dry run, nothing sent. Would send: {sent.describe()}"
            return f"Rejected submission {data['submission_id']}."

        self._run(request, reject)
        return self._prolific_page(study)

    def prolific_return_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        form = ReturnForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Nothing sent: give at least one reason.", messages.ERROR)
            return self._prolific_page(study)
        data = form.cleaned_data

        def ask(client: ProlificClient) -> str:
            sent = submission_request_return(
                study=study,
                submission_id=data["submission_id"],
                reasons=data["reasons"].splitlines(),
                client=client,
                by=request.user,
                dry_run=data["dry_run"],
            )
            if data["dry_run"]:
                return f"Dry run, nothing sent. Would send: {sent.describe()}"
            return f"Asked the participant of submission {data['submission_id']} to return it."

        self._run(request, ask)
        return self._prolific_page(study)

    def prolific_bonus_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        form = BonusForm(request.POST, request.FILES)
        if not form.is_valid():
            for problem in form_problems(form):
                self.message_user(request, f"Nothing set up: {problem}", messages.ERROR)
            return self._prolific_page(study)
        data = form.cleaned_data

        def set_up(client: ProlificClient) -> str:
            if data["rule_amount"]:
                lines = bonus_lines_completed(study, data["rule_amount"])
            else:
                lines = bonus_lines_parse(form.bonus_text(), study)
            sent, batch = bonus_setup(
                study=study, lines=lines, client=client, by=request.user, dry_run=data["dry_run"]
            )
            if batch is None:
                return f"Dry run, nothing sent. Would send: {sent.describe()}"
            return (
                f"Bonus batch {batch.bonus_id} set up for {batch.participants} participant(s): "
                f"{money(batch.amount)} in bonuses, {money(batch.total_amount)} with fees and "
                "VAT. Nothing is paid until you pay it below."
            )

        self._run(request, set_up)
        return self._prolific_page(study)

    def prolific_bonus_pay_view(
        self, request: HttpRequest, object_id: str, batch_id: int
    ) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        batch = get_object_or_404(ProlificBonusBatch, pk=batch_id, study=study)
        if request.POST.get("confirm") != "yes":
            self.message_user(
                request,
                f"Tick the confirmation to pay {money(batch.total_amount)}; nothing was paid.",
                messages.ERROR,
            )
            return self._prolific_page(study)

        def pay(client: ProlificClient) -> str:
            bonus_pay(batch=batch, client=client, by=request.user)
            self.log_change(request, study, f"paid bonus batch {batch.bonus_id}")
            return (
                f"Paid bonus batch {batch.bonus_id}: {money(batch.total_amount)} with fees and "
                "VAT. Prolific pays participants within minutes."
            )

        self._run(request, pay)
        return self._prolific_page(study)

    def prolific_demographics_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._prolific_study(request, object_id)
        if not (
            request.user.has_perm("studyapp.add_participantdemographics")
            and request.user.has_perm("studyapp.change_participantdemographics")
        ):
            raise PermissionDenied

        def fetch(client: ProlificClient) -> str:
            try:
                summary = demographics_fetch(study=study, client=client, by=request.user)
            except DemographicsFileError as exc:
                raise ProlificServiceError(f"{exc.summary}: {'; '.join(exc.errors[:5])}") from None
            if summary.unmatched_ids:
                self.message_user(
                    request, unmatched_message(summary.unmatched_ids), messages.WARNING
                )
            return (
                f"Demographics of {summary.matched} participants stored ({summary.created} new, "
                f"{summary.updated} updated)."
            )

        self._run(request, fetch)
        return self._prolific_page(study)
