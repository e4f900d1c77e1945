"""Participant pages: Prolific entry, consent, instructions, the items and completion.

Each view is thin: it finds the study and the participant bound to this browser,
validates the form and calls one service. Every page is a plain HTML form that works
without JavaScript; when htmx posts an item the view answers with the next item's partial.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh
from django_htmx.middleware import HtmxDetails

from studyapp import rows, selectors, services
from studyapp.forms import ConsentForm, EntryForm, RatingForm
from studyapp.middleware import participant_body_limited
from studyapp.models import (
    DIMENSION_DEFINITIONS,
    DIMENSION_STATEMENTS,
    LIKERT_LABELS,
    Dimension,
    Participant,
    Study,
)
from studyapp.ratelimit import client_address, participant_start_counter


class HtmxHttpRequest(HttpRequest):
    """A request after django-htmx's middleware, which adds ``htmx``."""

    htmx: HtmxDetails


# The participant a browser is bound to, per study, lives in a signed cookie rather than
# in a database session: every participant page would otherwise read (and often write) a
# session row before doing its own work. The signature (HMAC with the secret key) makes it
# as tamper-proof as a session key; a forged, altered or expired cookie binds nobody.
PARTICIPANT_COOKIE = "studyapp"
PARTICIPANT_COOKIE_SALT = "studyapp.participant-binding"
PARTICIPANT_COOKIE_STUDIES = 8  # studies remembered per browser, the most recent kept
STALE_MESSAGE = (
    "That page had already been answered (or was opened in another tab), so nothing was "
    "changed. Here is where you are now."
)


def _bindings(request: HtmxHttpRequest) -> dict[str, dict[str, Any]]:
    """Every study this browser is bound to, read from the cookie once per request."""
    bindings: dict[str, dict[str, Any]] | None = getattr(request, "_studyapp_bindings", None)
    if bindings is None:
        try:
            value = signing.loads(
                request.COOKIES.get(PARTICIPANT_COOKIE, ""),
                salt=PARTICIPANT_COOKIE_SALT,
                max_age=settings.SESSION_COOKIE_AGE,
            )
        except signing.BadSignature:  # also a missing, expired or garbled cookie
            value = {}
        bindings = {
            slug: binding
            for slug, binding in (value.items() if isinstance(value, dict) else ())
            if isinstance(slug, str) and isinstance(binding, dict)
        }
        request._studyapp_bindings = bindings  # type: ignore[attr-defined]
    return bindings


def _binding(request: HtmxHttpRequest, study: Study) -> dict[str, Any] | None:
    """What this browser knows about its participant in ``study``."""
    return _bindings(request).get(study.slug)


def _bind(request: HtmxHttpRequest, study: Study, **values: Any) -> None:
    bindings = _bindings(request)
    previous = bindings.pop(study.slug, None) or {}
    if previous.get("pid") != values.get("pid", previous.get("pid")):
        # A different Prolific ID in this browser: nothing of the previous participant
        # (their items, their place) stays reachable.
        previous = {}
    bindings[study.slug] = {**previous, **values}  # last, as the most recent
    while len(bindings) > PARTICIPANT_COOKIE_STUDIES:
        bindings.pop(next(iter(bindings)))
    request._studyapp_bindings_changed = True  # type: ignore[attr-defined]


def _bindings_store(request: HtmxHttpRequest, response: HttpResponse) -> HttpResponse:
    if getattr(request, "_studyapp_bindings_changed", False):
        response.set_cookie(
            PARTICIPANT_COOKIE,
            signing.dumps(_bindings(request), salt=PARTICIPANT_COOKIE_SALT, compress=True),
            max_age=settings.SESSION_COOKIE_AGE,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",  # sent when Prolific links here, never on cross-site POSTs
        )
    return response


def _bound_participant(
    request: HtmxHttpRequest, slug: str, *, lock: bool = False
) -> Participant | None:
    """This browser's participant in the study ``slug``, with the study, in one query
    (with ``lock``, the participant's row locked until the transaction ends)."""
    binding = _bindings(request).get(slug)
    if binding is None or not isinstance(binding.get("participant"), int):
        return None
    pid = binding.get("pid")
    if not isinstance(pid, str):
        return None
    return rows.participant_bound(
        participant_id=binding["participant"], prolific_pid=pid, slug=slug, lock=lock
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
    view: Callable[[HtmxHttpRequest, Study], HttpResponse],
) -> Callable[[HtmxHttpRequest, str], HttpResponse]:
    """Resolve the study in the URL (a clear 404 page when there is none); never cached,
    so the back button re-asks the server where the participant is instead of re-showing
    an old item. Like every participant page, it takes no uploads and only small bodies."""

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, slug: str) -> HttpResponse:
        study = selectors.study_get(slug=slug)
        if study is None:
            return _unavailable(request, None, "missing")
        return _bindings_store(request, view(request, study))

    return never_cache(participant_body_limited(wrapper))


def participant_page(
    view: Callable[[HtmxHttpRequest, Study, Participant], HttpResponse],
) -> Callable[[HtmxHttpRequest, str], HttpResponse]:
    """Resolve the study in the URL and this browser's participant in it, or explain why not.

    Pages behind it only ever show the participant bound to this browser, so no URL or form
    field can reach another participant's items.
    """

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, slug: str) -> HttpResponse:
        if request.method == "POST":
            # A submission writes under the participant's row lock; taking it in the read
            # that finds the participant spares a second read of the same row.
            with transaction.atomic():
                return respond(request, slug, _bound_participant(request, slug, lock=True))
        return respond(request, slug, _bound_participant(request, slug))

    def respond(
        request: HtmxHttpRequest, slug: str, participant: Participant | None
    ) -> HttpResponse:
        # The participant and their study come in one query; only a browser without a
        # participant here needs the study looked up on its own.
        if participant is not None:
            response = view(request, participant.study, participant)
        else:
            study = selectors.study_get(slug=slug)
            if study is None:
                return _unavailable(request, None, "missing")
            response = _session_missing(request, study)
        if request.htmx and response.status_code >= 400:
            # htmx leaves the page as it is on an error status; reload it so the
            # participant sees the explanation instead of a button that does nothing.
            return HttpResponseClientRefresh()
        return response

    return never_cache(participant_body_limited(wrapper))


@require_GET
@study_page
def entry(request: HtmxHttpRequest, study: Study) -> HttpResponse:
    if not request.GET:
        # A bare study address in a browser that already took part (a bookmark, a
        # reopened tab) continues; anyone else needs the full Prolific link.
        bound = _bound_participant(request, study.slug)
        if bound is not None:
            return _continue(request, study, bound)
    form = EntryForm(request.GET)
    if not form.is_valid():
        return _page(request, "link_incomplete.html", study, status=400, problems=form.problems())

    pid = form.cleaned_data["PROLIFIC_PID"]
    if not study.admits_prolific_study(form.cleaned_data["STUDY_ID"]):
        # A link made up, or meant for another Prolific study: nobody is bound or created.
        return _unavailable(request, study, "wrong_study")
    participant = selectors.participant_get(study=study, prolific_pid=pid)
    if participant is None:
        if study.status != Study.Status.LIVE:
            return _unavailable(request, study, study.status)
        if selectors.study_is_full(study=study, now=timezone.now()):
            return _unavailable(request, study, "full")
    _bind(
        request,
        study,
        pid=pid,
        study_id=form.cleaned_data["STUDY_ID"],
        session_id=form.cleaned_data["SESSION_ID"],
        participant=participant.pk if participant else None,
    )
    if participant is not None:
        return _continue(request, study, participant)
    return redirect("studyapp:consent", slug=study.slug)


@require_http_methods(["GET", "POST"])
@study_page
def consent(request: HtmxHttpRequest, study: Study) -> HttpResponse:
    binding = _binding(request, study)
    if binding is None:
        return _session_missing(request, study)
    participant = _bound_participant(request, study.slug)
    if participant is not None:
        return _continue(request, study, participant)
    if study.status != Study.Status.LIVE:
        return _unavailable(request, study, study.status)

    form = ConsentForm(request.POST) if request.method == "POST" else ConsentForm()
    if not form.is_bound:
        return _page(request, "consent.html", study, form=form)
    if not form.is_valid():
        return _page(request, "consent.html", study, status=400, form=form)

    ids = {
        "prolific_pid": binding["pid"],
        "prolific_study_id": binding.get("study_id", ""),
        "prolific_session_id": binding.get("session_id", ""),
    }
    if form.cleaned_data["decision"] == "decline":
        participant = services.participant_decline(study=study, **ids)
    else:
        limited = _arrivals_limited(request, study, binding["pid"])
        if limited is not None:
            return limited
        try:
            participant = services.participant_start(study=study, **ids)
        except services.StudyUnavailableError as exc:
            return _unavailable(request, study, exc.reason)
    _bind(request, study, participant=participant.pk)
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
    statements = [(d.label, DIMENSION_STATEMENTS[d], DIMENSION_DEFINITIONS[d]) for d in Dimension]
    # Back (or a bookmark) can bring a participant here mid-study: the button then says
    # "Continue" rather than promising the first item.
    started = (
        participant.assignments.filter(shown_at__isnull=False).exists()
        or participant.attention_checks.filter(shown_at__isnull=False).exists()
    )
    return _page(
        request,
        "instructions.html",
        study,
        statements=statements,
        item_total=participant.assignments.count(),
        started=started,
    )


@require_http_methods(["GET", "POST"])
@participant_page
def step(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    if participant.status != Participant.Status.ACTIVE or participant.is_expired():
        return _after_step(request, study, participant)
    if request.method == "POST":
        return _step_post(request, study, participant)
    current = selectors.participant_current_step(participant)
    if current is None:
        return _after_step(request, study, participant)
    return _step_render(request, study, current)


def _step_post(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    form = RatingForm(request.POST)
    if not form.is_valid():
        # Only a refused form needs the current step here; a valid one is matched to it by
        # the service, under the participant lock, so the busiest request reads it once.
        current = selectors.participant_current_step(participant)
        if current is None:
            return _after_step(request, study, participant)
        if "step" in form.errors or form.data.get("step") == current.token:
            # Same item again with the messages; nothing is saved.
            return _step_render(request, study, current, form, status=200 if request.htmx else 400)
        # Incomplete answers to a page that is no longer current (an old tab): show the
        # current one rather than errors about a page the participant has left.
        return _step_render(request, study, current, stale=True)
    try:
        record = services.step_record(
            participant=participant,
            step_token=form.cleaned_data["step"],
            values=form.values(),
            show_following=bool(request.htmx),
            already_locked=True,  # participant_page read it locked for this POST
        )
    except services.ParticipantInactiveError:
        return _after_step(request, study, participant)
    if participant.status != Participant.Status.ACTIVE:
        return _after_step(request, study, participant)
    stale = record.outcome is not services.RecordOutcome.RECORDED
    if not request.htmx:
        # Post/redirect/get: a reload after submitting re-shows the page, never re-posts.
        if stale:
            messages.info(request, STALE_MESSAGE)
        return redirect("studyapp:step", slug=study.slug)
    following = record.following or selectors.participant_current_step(participant)
    if following is None:
        return _after_step(request, study, participant)
    return _step_render(request, study, following, stale=stale)


def _likert_blank_render() -> str:
    return render_to_string(
        "studyapp/_likert_rows.html", {"form": RatingForm(), "likert_labels": LIKERT_LABELS}
    )


_likert_blank_cached = cache(_likert_blank_render)


def _likert_blank() -> str:
    """The five rating rows with nothing chosen: the same on every item page, so drawn once
    per process (except in development, where templates are edited while the server runs)."""
    return _likert_blank_render() if settings.DEBUG else _likert_blank_cached()


def _step_render(
    request: HtmxHttpRequest,
    study: Study,
    current: selectors.Step,
    form: RatingForm | None = None,
    *,
    status: int = 200,
    stale: bool = False,
) -> HttpResponse:
    """The page (or, for htmx, the partial) of ``current``; ``form`` is a refused submission
    to show with its messages, None for a fresh page."""
    services.step_mark_shown(step=current)
    instructed = None
    if current.check is not None:
        value = current.check.instructed_value
        instructed = {"value": value, "label": LIKERT_LABELS[value]}
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
        likert_labels=LIKERT_LABELS,
        # A refused form is drawn with its choices and messages; a fresh one is always alike.
        likert_blank=None if form is not None else _likert_blank(),
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
    return _page(request, "done.html", study, completion_url=study.completion_url())


@require_GET
@participant_page
def ended(request: HtmxHttpRequest, study: Study, participant: Participant) -> HttpResponse:
    if participant.status in (Participant.Status.ACTIVE, Participant.Status.COMPLETED):
        return _continue(request, study, participant)
    return _page(request, "ended.html", study, participant=participant)
