"""Security properties of the site, as tests.

* ``check --deploy`` with a production environment is tested in tests/config/test_settings.py;
  here the same production environment is started for real and its responses are checked.
* Every participant POST is refused without a valid CSRF token.
* One participant cannot read or write another's items.
* Every admin and API address refuses anonymous visitors; the addresses are found by
  walking the URL configuration, so a page added later is covered without a new test.
* Every page carries a strict Content-Security-Policy and holds no inline code for it to block.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from django.core import signing
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch

from studyapp.models import (
    Assignment,
    AttentionCheckResponse,
    Participant,
    Rating,
    Study,
    StudyReport,
)
from studyapp.participation.binding import PARTICIPANT_COOKIE, PARTICIPANT_COOKIE_SALT
from tests.config.test_settings import PROD_SECRET, _run
from tests.studyapp.participant_pool import (
    entry_url,
    page_step_token,
    rating_post,
    step_url,
    study_make,
)
from tests.studyapp.researcher_data import client_for

pytestmark = pytest.mark.django_db

PARTICIPANT_PAGES = ("entry", "consent", "instructions", "step", "done", "ended")


@pytest.fixture
def study() -> Study:
    return study_make()


def _rows() -> tuple[int, ...]:
    return (
        Participant.objects.count(),
        Assignment.objects.filter(answered_at__isnull=False).count(),
        Rating.objects.count(),
        AttentionCheckResponse.objects.filter(answered_at__isnull=False).count(),
    )


def _url(study: Study, name: str) -> str:
    return reverse(f"studyapp:{name}", kwargs={"slug": study.slug})


def _consented(study: Study, pid: str, **client_options: bool) -> Client:
    client = Client(**client_options)
    client.get(entry_url(study, pid))
    consent_page = client.get(_url(study, "consent"))
    client.post(
        _url(study, "consent"),
        {"decision": "agree", "csrfmiddlewaretoken": _csrf_from(consent_page.content)},
    )
    return client


def _csrf_from(html: bytes) -> str:
    marker = b'name="csrfmiddlewaretoken" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index(b'"', start)].decode()


# --------------------------------------------------------------------------- production


def test_the_production_configuration_serves_https_only_with_secure_cookies(
    tmp_path: Path,
) -> None:
    probe = (
        "import json; from django.conf import settings; from django.test import Client; "
        "plain = Client().get('/healthz'); "
        "secure = Client().get('/healthz', secure=True); "
        "print(json.dumps({'plain': [plain.status_code, plain.get('Location')], "
        "'secure': [secure.status_code, secure.get('Strict-Transport-Security'), "
        "secure.get('X-Frame-Options'), secure.get('X-Content-Type-Options'), "
        "secure.get('Referrer-Policy')], "
        "'cookies': [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, "
        "settings.SESSION_COOKIE_HTTPONLY]}))"
    )
    result = _run(
        ["shell", "-c", probe],
        {
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": PROD_SECRET,
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        },
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["plain"] == [301, "https://testserver/healthz"]
    status, hsts, frame, sniff, referrer = seen["secure"]
    assert status == 200
    assert "max-age=31536000" in hsts
    assert "includeSubDomains" in hsts
    assert (frame, sniff, referrer) == ("DENY", "nosniff", "same-origin")
    assert seen["cookies"] == [True, True, True]


# --------------------------------------------------------------------------- CSRF


def test_every_participant_page_refuses_a_post_without_a_csrf_token(study: Study) -> None:
    browser = _consented(study, "p1", enforce_csrf_checks=True)
    before = _rows()
    token = page_step_token(browser.get(step_url(study)).content.decode())

    for name in PARTICIPANT_PAGES:
        response = browser.post(_url(study, name), {"decision": "agree", **rating_post(token, 3)})
        assert response.status_code == 403, name

    assert _rows() == before


def test_an_htmx_rating_without_the_csrf_header_is_refused(study: Study) -> None:
    browser = _consented(study, "p1", enforce_csrf_checks=True)
    token = page_step_token(browser.get(step_url(study)).content.decode())
    before = _rows()

    response = browser.post(step_url(study), rating_post(token, 3), headers={"HX-Request": "true"})

    assert response.status_code == 403
    assert _rows() == before


def test_a_csrf_token_from_another_browser_is_refused(study: Study) -> None:
    first = _consented(study, "p1", enforce_csrf_checks=True)
    second = _consented(study, "p2", enforce_csrf_checks=True)
    page = second.get(step_url(study)).content
    before = _rows()

    stolen = _csrf_from(first.get(step_url(study)).content)
    posted = second.post(
        step_url(study),
        {**rating_post(page_step_token(page.decode()), 3), "csrfmiddlewaretoken": stolen},
    )

    assert posted.status_code == 403
    assert _rows() == before


def test_consent_and_ratings_with_the_pages_own_token_are_accepted(study: Study) -> None:
    browser = _consented(study, "p1", enforce_csrf_checks=True)
    assert Participant.objects.filter(prolific_pid="p1").exists()
    page = browser.get(step_url(study)).content

    posted = browser.post(
        step_url(study),
        {**rating_post(page_step_token(page.decode()), 3), "csrfmiddlewaretoken": _csrf_from(page)},
    )

    assert posted.status_code == 302
    assert Rating.objects.count() == 5


# --------------------------------------------------------------------------- isolation


def _first_item_text(participant: Participant) -> str:
    return participant.assignments.get(position=1).explanation.text


def test_a_participant_sees_only_their_own_items(study: Study) -> None:
    first, second = _consented(study, "p1"), _consented(study, "p2")
    own = Participant.objects.get(prolific_pid="p2")

    page = second.get(step_url(study)).content.decode()

    assert _first_item_text(own) in page
    other = Participant.objects.get(prolific_pid="p1")
    other_texts = {a.explanation.text for a in other.assignments.all()}
    own_texts = {a.explanation.text for a in own.assignments.all()}
    assert not any(text in page for text in other_texts - own_texts)
    assert first.get(step_url(study)).status_code == 200


def _binding_cookie(client: Client, study: Study, **changes: object) -> dict[str, Any]:
    """The bindings the browser's cookie holds (signature checked), with ``changes``."""
    signed = client.cookies[PARTICIPANT_COOKIE].value
    bindings: dict[str, Any] = signing.loads(signed, salt=PARTICIPANT_COOKIE_SALT)
    bindings[study.slug].update(changes)
    return bindings


def _assert_refused_without_writing(intruder: Client, study: Study, victim: Participant) -> None:
    before = _rows()

    page = intruder.get(step_url(study))
    posted = intruder.post(step_url(study), rating_post("item-1", 1))

    assert page.status_code == posted.status_code == 400
    assert _first_item_text(victim) not in page.content.decode()
    assert _rows() == before


def test_a_binding_re_signed_to_another_participant_is_refused(study: Study) -> None:
    _consented(study, "p1")
    intruder = _consented(study, "p2")
    victim = Participant.objects.get(prolific_pid="p1")
    # Even with the victim's database id in a validly signed cookie (as a leaked secret
    # key would allow), the Prolific ID bound alongside it must match.
    bindings = _binding_cookie(intruder, study, participant=victim.pk)
    intruder.cookies[PARTICIPANT_COOKIE] = signing.dumps(bindings, salt=PARTICIPANT_COOKIE_SALT)
    _assert_refused_without_writing(intruder, study, victim)


def test_a_binding_edited_without_the_signature_is_refused(study: Study) -> None:
    _consented(study, "p1")
    intruder = _consented(study, "p2")
    victim = Participant.objects.get(prolific_pid="p1")
    # The victim's id and Prolific ID in place of the intruder's, signed with any key but
    # the server's: the signature does not match, so the cookie binds nobody.
    forged = _binding_cookie(intruder, study, participant=victim.pk, pid="p1")
    intruder.cookies[PARTICIPANT_COOKIE] = signing.dumps(
        forged, key="k" * 50, salt=PARTICIPANT_COOKIE_SALT
    )
    _assert_refused_without_writing(intruder, study, victim)


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "garbage",
        "a:b:c",
        "é" * 3000,
        signing.dumps(["not", "a", "mapping"], salt=PARTICIPANT_COOKIE_SALT),
        signing.dumps({"pilot": "not a binding"}, salt=PARTICIPANT_COOKIE_SALT),
        signing.dumps({"pilot": {"participant": "1", "pid": "p1"}}, salt=PARTICIPANT_COOKIE_SALT),
        signing.dumps({"pilot": {"participant": 1, "pid": ["p1"]}}, salt=PARTICIPANT_COOKIE_SALT),
    ],
    ids=["empty", "garbage", "colons", "oversize", "list", "string", "id-as-text", "pid-as-list"],
)
def test_a_malformed_binding_cookie_binds_nobody_and_writes_nothing(
    study: Study, cookie: str
) -> None:
    _consented(study, "p1")
    browser = Client()
    browser.cookies[PARTICIPANT_COOKIE] = cookie
    before = _rows()

    pages = [browser.get(step_url(study)), browser.post(step_url(study), rating_post("item-1", 1))]
    pages += [browser.get(f"/s/{study.slug}/{page}/") for page in ("instructions", "done")]

    assert [page.status_code for page in pages] == [400] * 4
    assert "Prolific" in pages[0].content.decode()  # the page says how to get back in
    assert _rows() == before


def test_a_rating_naming_another_participants_assignment_is_stored_for_the_sender_only(
    study: Study,
) -> None:
    _consented(study, "p1")
    sender = _consented(study, "p2")
    victim = Participant.objects.get(prolific_pid="p1")
    token = page_step_token(sender.get(step_url(study)).content.decode())

    sender.post(
        step_url(study),
        {
            **rating_post(token, 2),
            "assignment": victim.assignments.get(position=1).pk,
            "participant": victim.pk,
        },
    )

    assert not Rating.objects.filter(assignment__participant=victim).exists()
    assert Rating.objects.filter(assignment__participant__prolific_pid="p2").count() == 5


# --------------------------------------------------------------------------- researcher side


CANDIDATE_VALUES = ("1", "studyapp", "pilot")
PUBLIC_ADMIN_PAGES = {"login", "logout", "view_on_site"}


def _named_routes(
    resolver: URLResolver, namespace: str = "", params: tuple[str, ...] = ()
) -> Iterator[tuple[str, tuple[str, ...]]]:
    for entry in resolver.url_patterns:
        found = (*params, *entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _named_routes(entry, inner, found)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", found


def _addresses(namespace: str) -> dict[str, str]:
    """One concrete address for every named route in ``namespace``, filled with sample values."""
    addresses = {}
    for name, params in _named_routes(get_resolver()):
        if not name.startswith(f"{namespace}:"):
            continue
        for values in itertools.product(CANDIDATE_VALUES, repeat=len(params)):
            try:
                addresses[name] = reverse(name, kwargs=dict(zip(params, values, strict=True)))
                break
            except NoReverseMatch:
                continue
        else:
            raise AssertionError(f"no sample address for {name} {params}")
    return addresses


def test_every_admin_page_sends_anonymous_visitors_to_the_login(study: Study) -> None:
    addresses = _addresses("admin")
    assert len(addresses) > 20  # the walk found the model pages, not just the index

    for name, address in addresses.items():
        if name.split(":")[1] in PUBLIC_ADMIN_PAGES:
            continue
        for method in ("get", "post"):
            response = getattr(Client(), method)(address)
            assert response.status_code == 302, (name, method, response.status_code)
            assert response["Location"].startswith(reverse("admin:login")), name
    assert Study.objects.get() == study


def test_every_api_address_refuses_anonymous_callers(study: Study) -> None:
    addresses = _addresses("api")
    assert addresses, "no API routes found"
    before = _rows()

    for name, address in addresses.items():
        for method in ("get", "post", "put", "patch", "delete"):
            response = getattr(Client(), method)(address)
            assert response.status_code in (401, 403), (name, method, response.status_code)
    assert _rows() == before
    assert Study.objects.filter(slug=study.slug, status=Study.Status.LIVE).exists()


# --------------------------------------------------------------------------- CSP


def _policy(response: Any) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _assert_strict(response: Any, page: str) -> None:
    policy = _policy(response)
    assert policy["default-src"] == ["'self'"], page
    assert policy["script-src"] == ["'self'"], page
    assert policy["style-src"] == ["'self'"], page
    assert policy["object-src"] == ["'none'"], page
    assert policy["frame-ancestors"] == ["'none'"], page
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header, page
    assert "unsafe-eval" not in header, page


def _assert_no_inline_code(html: bytes, page: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    for script in soup.find_all("script"):
        # A script element with a src, or one holding JSON data, never code to run.
        assert script.get("src") or script.get("type") == "application/json", (page, script)
    assert not soup.find_all("style"), page
    for element in soup.find_all(True):
        handlers = [a for a in element.attrs if a.startswith(("on", "hx-on"))]
        assert not handlers, (page, element.name, handlers)
        assert "style" not in element.attrs, (page, element.name)
        for name in ("href", "src", "action"):
            assert not str(element.get(name, "")).lower().startswith("javascript:"), page


def test_participant_pages_have_a_strict_policy_and_no_inline_code(study: Study) -> None:
    browser = Client()
    pages = {"entry": browser.get(entry_url(study, "p1"))}
    pages["consent"] = browser.get(_url(study, "consent"))
    browser.post(_url(study, "consent"), {"decision": "agree"})
    pages["instructions"] = browser.get(_url(study, "instructions"))
    pages["step"] = browser.get(step_url(study))
    pages["step partial"] = browser.get(step_url(study), headers={"HX-Request": "true"})
    pages["bad link"] = Client().get(_url(study, "entry") + "?PROLIFIC_PID=%0A")
    pages["no study"] = Client().get("/s/nothing-here/")

    for name, response in pages.items():
        _assert_strict(response, name)
        _assert_no_inline_code(response.content, name)


def test_htmx_is_configured_to_need_no_eval_and_no_injected_styles(study: Study) -> None:
    page = Client().get(_url(study, "consent"))
    soup = BeautifulSoup(Client().get(entry_url(study, "p1"), follow=True).content, "html.parser")

    meta = soup.find("meta", attrs={"name": "htmx-config"})
    assert meta is not None
    assert json.loads(str(meta["content"])) == {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
    }
    assert page.status_code == 400  # no binding in this browser: the page says so


@pytest.mark.parametrize("kind", ["researcher"])
def test_the_admin_and_the_api_docs_have_the_same_strict_policy(study: Study, kind: str) -> None:
    client = client_for(kind)
    pages = {
        "admin index": reverse("admin:index"),
        "study list": reverse("admin:studyapp_study_changelist"),
        "study change": reverse("admin:studyapp_study_change", args=[study.pk]),
        "dashboard": reverse("admin:studyapp_study_dashboard", args=[study.pk]),
        "upload": reverse("admin:studyapp_study_upload"),
        "api docs": reverse("api:docs"),
        "api list": reverse("api:study-list"),
    }
    for name, address in pages.items():
        response = client.get(address)
        assert response.status_code == 200, name
        _assert_strict(response, name)
        if name in ("dashboard", "upload", "api docs"):
            _assert_no_inline_code(response.content, name)
    login = Client().get(reverse("admin:login"))
    _assert_strict(login, "login")


def test_a_report_is_served_with_its_own_narrow_policy(study: Study, tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("<html><style>p{}</style><body>report</body></html>")
    report = StudyReport.objects.create(study=study, out_dir=str(tmp_path))

    response = client_for("researcher").get(
        reverse("admin:studyapp_study_report", args=[study.pk, report.pk])
    )

    policy = _policy(response)
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["data:"]
    assert policy["style-src"] == ["'unsafe-inline'"]
    assert "script-src" not in policy  # falls back to default-src 'none': no script runs
