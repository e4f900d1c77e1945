"""Participant pages: Prolific entry, consent, instructions, the items and completion.

Each view is thin: it finds the study and the participant bound to this browser
(``binding``), validates the form and calls one service (``services``), which owns any
transaction. Every page is a plain HTML form that works without JavaScript; when htmx
posts an item the view answers with the next item's partial.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh
from django_htmx.middleware import HtmxDetails

from studyapp import selectors
from studyapp.forms import ConsentForm, EntryForm, RatingForm
from studyapp.middleware import participant_body_limited
from studyapp.models import Participant, Study
from studyapp.participation import queries, services
from studyapp.participation.binding import Binding, Bindings, bindings_read, bindings_store
from studyapp.ratelimit import client_address, participant_start_counter
from studyformats.questionnaire import Questionnaire


class HtmxHttpRequest(HttpRequest):
    """A request after django-htmx's middleware, which adds ``htmx``."""

    htmx: HtmxDetails


STALE_MESSAGE = (
    "That page had already been answered (or was opened in another tab), so nothing was "
    "changed. Here is where you are now."
)


def _bound_participant(binding: Binding | None, slug: str) -> Participant | None:
    """The participant ``binding`` names in the study ``slug``, with the study, in one query."""
    if binding is None or binding.participant is None:
        return None
    return queries.participant_bound(
        participant_id=binding.participant, prolific_pid=binding.pid, slug=slug
    )


def _page(
    request: HtmxHttpRequest, template: str, study: Study | None, status: int = 200, **context: Any
) -> HttpResponse:
    return render(request, f"studyapp/{template}", {"study": study, **context}, status=status)


def _unavailable(request: HtmxHttpRequest, study: Study | None, reason: str) -> HttpResponse:
    status = 404 if study is None else 403 if reason == "wrong_study" else 200
    return _page(request, "unavailable.html", study, status=status, reason=reason)


def _session_missing(request: HtmxHttpRequest, study: Study) -> HttpResponse:
    return _page(request, "session_missing.html", study, status=400)


def _continue(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    """Send a participant to the page that matches where they are in the study."""
    services.participant_expire_if_late(participant=participant)
    if participant.status == Participant.Status.COMPLETED:
        return redirect("studyapp:done", slug=study.slug)
    if participant.status != Participant.Status.ACTIVE:
        return redirect("studyapp:ended", slug=study.slug)
    # A paused or closed study admits no one new, but whoever already started may finish,
    # as on Prolific: their ratings are as valid as everyone else's.
    if not participant.assignments.filter(answered_at__isnull=False).exists():
        return redirect("studyapp:instructions", slug=study.slug)
    return redirect("studyapp:step", slug=study.slug)


def study_page(
    view: Callable[[HtmxHttpRequest, Study, Bindings], HttpResponse],
) -> Callable[[HtmxHttpRequest, str], HttpResponse]:
    """Resolve the study in the URL (a clear 404 page when there is none) and read this
    browser's bindings; never cached, so the back button re-asks the server where the
    participant is instead of re-showing an old item. Like every participant page, it takes
    no uploads and only small bodies."""

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, slug: str) -> HttpResponse:
        study = selectors.study_get(slug=slug)
        if study is None:
            return _unavailable(request, None, "missing")
        bindings = bindings_read(request)
        return bindings_store(bindings, view(request, study, bindings))

    return never_cache(participant_body_limited(wrapper))


ParticipantView = Callable[[HtmxHttpRequest, Study, Participant], HttpResponse]


def participant_page(view: ParticipantView) -> Callable[[HtmxHttpRequest, str], HttpResponse]:
    """Resolve the study in the URL and this browser's participant in it, or explain why not.

    Pages behind it only ever show the participant bound to this browser, so no URL or form
    field can reach another participant's items.
    """

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, slug: str) -> HttpResponse:
        binding = bindings_read(request).get(slug)
        return _participant_respond(request, slug, _bound_participant(binding, slug), view)

    return never_cache(participant_body_limited(wrapper))


def _participant_respond(
    request: HtmxHttpRequest, slug: str, participant: Participant | None, view: ParticipantView
) -> HttpResponse:
    # The participant and their study come in one query; only a browser without a
    # participant here needs the study looked up on its own.
    if participant is not None:
        return _htmx_reloaded(request, view(request, participant.study, participant))
    study = selectors.study_get(slug=slug)
    if study is None:
        return _unavailable(request, None, "missing")
    return _htmx_reloaded(request, _session_missing(request, study))


def _htmx_reloaded(request: HtmxHttpRequest, response: HttpResponse) -> HttpResponse:
    if request.htmx and response.status_code >= 400:
        # htmx leaves the page as it is on an error status; reload it so the participant
        # sees the explanation instead of a button that does nothing.
        return HttpResponseClientRefresh()
    return response


@require_GET
@study_page
def entry(request: HtmxHttpRequest, study: Study, bindings: Bindings) -> HttpResponse:
    if not request.GET:
        # A bare study address in a browser that already took part (a bookmark, a
        # reopened tab) continues; anyone else needs the full Prolific link.
        bound = _bound_participant(bindings.get(study.slug), study.slug)
        if bound is not None:
            return _continue(request, study, bound)
    form = EntryForm(request.GET)
    if not form.is_valid():
        return _page(request, "link_incomplete.html", study, status=400, problems=form.problems())
    pid, study_id = form.cleaned_data["PROLIFIC_PID"], form.cleaned_data["STUDY_ID"]
    try:
        participant = services.participant_enter(
            study=study, prolific_pid=pid, prolific_study_id=study_id
        )
    except services.StudyUnavailableError as exc:
        return _unavailable(request, study, exc.reason)
    bindings.bind(
        study.slug,
        pid=pid,
        study_id=study_id,
        session_id=form.cleaned_data["SESSION_ID"],
        participant=participant.pk if participant else None,
    )
    if participant is not None:
        return _continue(request, study, participant)
    return redirect("studyapp:consent", slug=study.slug)


@require_http_methods(["GET", "POST"])
@study_page
def consent(request: HtmxHttpRequest, study: Study, bindings: Bindings) -> HttpResponse:
    binding = bindings.get(study.slug)
    if binding is None:
        return _session_missing(request, study)
    participant = _bound_participant(binding, study.slug)
    if participant is not None:
        return _continue(request, study, participant)
    if study.status != Study.Status.LIVE:
        return _unavailable(request, study, study.status)

    form = ConsentForm(request.POST) if request.method == "POST" else ConsentForm()
    if not form.is_bound:
        return _page(request, "consent.html", study, form=form)
    if not form.is_valid():
        return _page(request, "consent.html", study, status=400, form=form)

    agree = form.cleaned_data["decision"] != "decline"
    if agree:
        limited = _arrivals_limited(request, study, binding.pid)
        if limited is not None:
            return limited
    try:
        participant = services.consent_record(study=study, binding=binding, agree=agree)
    except services.StudyUnavailableError as exc:
        return _unavailable(request, study, exc.reason)
    bindings.bind(study.slug, participant=participant.pk)
    return _continue(request, study, participant)


def _arrivals_limited(request: HtmxHttpRequest, study: Study, pid: str) -> HttpResponse | None:
    """Refuse a new participant from an address that admitted too many lately (429).

    Counted before the start, so refused attempts count too; a Prolific ID that already
    has a participant (a second tab, another device) is never held back.
    """
    if selectors.participant_get(study=study, prolific_pid=pid) is not None:
        return None
    counter = participant_start_counter()
    address = client_address(request)
    if counter.hit(address) > counter.rate.count:
        response = _page(request, "unavailable.html", study, status=429, reason="busy")
        response["Retry-After"] = str(counter.retry_after())
        return response
    return None


@require_GET
@participant_page
def instructions(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    if participant.status != Participant.Status.ACTIVE:
        return _continue(request, study, participant)
    questionnaire = study.questionnaire_document
    # Back (or a bookmark) can bring a participant here mid-study: the button then says
    # "Continue" rather than promising the first item.
    started = (
        participant.assignments.filter(shown_at__isnull=False).exists()
        or participant.attention_checks.filter(shown_at__isnull=False).exists()
    )
    named = questionnaire.scale.named
    return _page(
        request,
        "instructions.html",
        study,
        questionnaire=questionnaire,
        # Every scale labels its two ends, which the page names.
        scale_low=named[1],
        scale_high=named[questionnaire.scale.points],
        item_total=participant.assignments.count(),
        started=started,
    )


def _step_show(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    if participant.status != Participant.Status.ACTIVE or participant.is_expired():
        return _after_step(request, study, participant)
    current = queries.participant_current_step(participant)
    if current is None:
        return _after_step(request, study, participant)
    return _step_render(request, study, current)


_step_get = participant_page(_step_show)
STEP_TOKEN = re.compile(r"(item|check)-[0-9]{1,3}")


@require_http_methods(["GET", "POST"])
@never_cache
@participant_body_limited
def step(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """The current item or attention check; a POST answers it and moves on.

    The answers are checked against the study's questionnaire by ``item_submit``, which
    reads the study with the participant, so a valid answer costs no read of its own.
    """
    if request.method != "POST":
        return _step_get(request, slug)
    binding = bindings_read(request).get(slug)
    token = request.POST.get("step", "")
    if binding is not None and STEP_TOKEN.fullmatch(token):
        submission = services.item_submit(
            binding=binding,
            slug=slug,
            step_token=token,
            values=request.POST,
            show_following=bool(request.htmx),
        )
        if submission is not None:
            return _htmx_reloaded(request, _step_submitted(request, submission))

    def refused(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
        return _step_refused(request, study, participant)

    return _participant_respond(request, slug, _bound_participant(binding, slug), refused)


def _step_submitted(request: HtmxHttpRequest, submission: services.Submission) -> HttpResponse:
    participant = submission.participant
    study = participant.study
    if submission.outcome is None or participant.status != Participant.Status.ACTIVE:
        return _after_step(request, study, participant)
    if submission.outcome is services.RecordOutcome.INVALID and submission.following is not None:
        # The same step again with the messages; nothing was saved.
        form = _rating_form(study, request.POST, submission.following)
        form.is_valid()
        status = 200 if request.htmx else 400
        return _step_render(request, study, submission.following, form, status=status)
    stale = submission.outcome is not services.RecordOutcome.RECORDED
    if not request.htmx:
        # Post/redirect/get: a reload after submitting re-shows the page, never re-posts.
        if stale:
            messages.info(request, STALE_MESSAGE)
        return redirect("studyapp:step", slug=study.slug)
    following = submission.following or queries.participant_current_step(participant)
    if following is None:
        return _after_step(request, study, participant)
    return _step_render(request, study, following, stale=stale)


def _rating_form(study: Study, data: Any, step: queries.Step) -> RatingForm:
    """The rating rows of ``step``, bound to ``data``: statements on an item, the
    dimensions' labels on an attention check."""
    return RatingForm(
        data, questionnaire=study.questionnaire_document, check=step.check is not None
    )


def _step_refused(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    """A form that could not be matched to a step: the current step again, with its messages."""
    if participant.status != Participant.Status.ACTIVE or participant.is_expired():
        return _after_step(request, study, participant)
    current = queries.participant_current_step(participant)
    if current is None:
        return _after_step(request, study, participant)
    form = _rating_form(study, request.POST, current)
    if not form.is_valid() or form.data.get("step") == current.token:
        # Same item again with the messages; nothing is saved.
        return _step_render(request, study, current, form, status=200 if request.htmx else 400)
    # Incomplete answers to a page that is no longer current (an old tab): show the
    # current one rather than errors about a page the participant has left.
    return _step_render(request, study, current, stale=True)


# The rating rows with nothing chosen are the same on every item page of a questionnaire,
# and on every attention check, so they are drawn once per process, questionnaire and kind
# of page (except in development, where templates are edited while the server runs). Each
# entry keeps its questionnaire, so the questionnaire's id() cannot be taken by another one
# while the entry exists.
_likert_blanks: dict[tuple[int, bool], tuple[Questionnaire, str]] = {}


def _likert_blank(questionnaire: Questionnaire, *, check: bool = False) -> str:
    key = (id(questionnaire), check)
    found = _likert_blanks.get(key)
    if found is not None and found[0] is questionnaire and not settings.DEBUG:
        return found[1]
    html = render_to_string(
        "studyapp/_likert_rows.html",
        {"form": RatingForm(questionnaire=questionnaire, check=check)},
    )
    if len(_likert_blanks) > 64:
        _likert_blanks.clear()
    _likert_blanks[key] = (questionnaire, html)
    return html


def _step_render(
    request: HtmxHttpRequest,
    study: Study,
    current: queries.Step,
    form: RatingForm | None = None,
    *,
    status: int = 200,
    stale: bool = False,
) -> HttpResponse:
    """The page (or, for htmx, the partial) of ``current``; ``form`` is a refused submission
    to show with its messages, None for a fresh page."""
    services.step_mark_shown(step=current)
    questionnaire = study.questionnaire_document
    instructed = None
    if current.check is not None:
        value = current.check.instructed_value
        label = questionnaire.scale.label_of(value) or str(value)
        instruction = questionnaire.attention_checks.instruction.replace("{label}", label)
        instructed = {"value": value, "label": label, "instruction": instruction}
    template = "_step.html" if request.htmx else "step.html"
    return _page(
        request,
        template,
        study,
        status=status,
        step=current,
        form=form,
        instructed=instructed,
        stale_message=STALE_MESSAGE if stale else None,
        questionnaire=questionnaire,
        # A refused form is drawn with its choices and messages; a fresh one is always alike.
        likert_blank=(
            None if form is not None else _likert_blank(questionnaire, check=instructed is not None)
        ),
    )


def _after_step(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    """Leave the item pages: to completion, or to the page for a stopped participant."""
    response = _continue(request, study, participant)
    if request.htmx and response.status_code in (301, 302):
        return HttpResponseClientRedirect(response["Location"])
    return response


@require_GET
@participant_page
def done(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    if participant.status != Participant.Status.COMPLETED:
        return _continue(request, study, participant)
    code = study.completion_code_for(participant)
    return _page(
        request, "done.html", study, completion_code=code, completion_url=study.completion_url(code)
    )


@require_GET
@participant_page
def ended(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    if participant.status in (Participant.Status.ACTIVE, Participant.Status.COMPLETED):
        return _continue(request, study, participant)
    return _page(request, "ended.html", study, participant=participant)
