"""Every API endpoint refuses anonymous and non-staff callers (session or token), refuses
staff without the admin's model permission for the action, and serves researchers."""

from __future__ import annotations

import secrets

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from studyapp.api.permissions import ResearcherRateThrottle
from studyapp.models import Participant, Study
from studyapp.permissions import (
    PARTICIPANTS_VIEW,
    RATINGS_VIEW,
    STUDY_ADD,
    STUDY_CHANGE,
    STUDY_VIEW,
)
from studyapp.plans import plan_shipped
from studyapp.studies.services import study_plan_set
from tests.studyapp.participant_pool import explanation_lines, study_make
from tests.studyapp.researcher_data import (
    client_for,
    participant_finish,
    token_client_for,
    user_make,
)

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "study list": reverse("api:study-list"),
    "study detail": reverse("api:study-detail", kwargs={"slug": "pilot"}),
    "plan": reverse("api:study-plan", kwargs={"slug": "pilot"}),
    "progress": reverse("api:study-progress", kwargs={"slug": "pilot"}),
    "participants": reverse("api:study-participants", kwargs={"slug": "pilot"}),
    "ratings": reverse("api:study-ratings", kwargs={"slug": "pilot"}),
    "ratings csv": reverse("api:study-ratings-csv", kwargs={"slug": "pilot"}),
    "schema": reverse("api:schema"),
    "docs": reverse("api:docs"),
}


@pytest.fixture
def study():
    study = study_make(slug="pilot")
    participant_finish(study, "P1")
    return study


def statuses(client) -> dict[str, int]:
    return {name: client.get(url).status_code for name, url in ENDPOINTS.items()}


def status_post(client):
    url = reverse("api:study-status", kwargs={"slug": "pilot"})
    return client.post(url, {"status": "closed"}, content_type="application/json")


def plan_put(client):
    url = reverse("api:study-plan", kwargs={"slug": "draft"})
    return client.put(url, {"plan": "paper"}, content_type="application/json")


def upload(client):
    content = "\n".join(explanation_lines()).encode()
    return client.post(
        reverse("api:study-list"),
        {"slug": "created", "explanations": SimpleUploadedFile("e.jsonl", content)},
    )


@pytest.mark.parametrize(
    ("make_client", "kind", "code"),
    [
        (client_for, "anonymous", 401),
        (client_for, "member", 403),
        (token_client_for, "member", 403),
    ],
    ids=["anonymous", "non-staff session", "non-staff token"],
)
def test_anonymous_and_non_staff_callers_are_refused_everywhere(study, make_client, kind, code):
    client = make_client(kind)
    assert statuses(client) == dict.fromkeys(ENDPOINTS, code)
    assert upload(client).status_code == code
    assert status_post(client).status_code == code
    study_make(slug="draft", live=False)
    assert plan_put(client).status_code == code
    assert not Study.objects.get(slug="draft").plan_registered
    assert not Study.objects.filter(slug="created").exists()
    study.refresh_from_db()
    assert study.status == "live"


@pytest.mark.parametrize("make_client", [client_for, token_client_for], ids=["session", "token"])
def test_staff_reach_every_endpoint(study, make_client):
    client = make_client("researcher")
    assert statuses(client) == dict.fromkeys(ENDPOINTS, 200)
    assert upload(client).status_code == 201
    assert status_post(client).status_code == 200
    study_make(slug="draft", live=False)
    assert plan_put(client).status_code == 200


def test_a_wrong_token_is_refused(study):
    client = Client(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    assert statuses(client) == dict.fromkeys(ENDPOINTS, 401)


@pytest.fixture
def rates(settings, monkeypatch):
    """Small rates: three calls a minute per account, two refused calls per client."""
    small = {"user": "3/minute", "anon": "2/minute", "failed_auth": "2/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": small}
    # REST framework's own throttle read its rates when imported.
    monkeypatch.setattr(ResearcherRateThrottle, "THROTTLE_RATES", small)
    cache.clear()
    yield settings
    cache.clear()


WRONG = "0123456789abcdef0123456789abcdef01234567"


def test_calls_beyond_the_rate_are_throttled(study, rates):
    url = ENDPOINTS["study list"]
    staff = token_client_for("researcher")
    assert [staff.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
    guesser = Client(HTTP_AUTHORIZATION=f"Token {WRONG}")
    assert [guesser.get(url).status_code for _ in range(3)] == [401, 401, 429]


def test_failed_tokens_from_an_address_never_block_a_valid_token_from_it(study, rates):
    url = ENDPOINTS["study list"]
    for _ in range(10):
        Client(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}", REMOTE_ADDR="192.0.2.1").get(
            url
        )
    user = user_make("researcher")
    assert user is not None
    valid = Token.objects.create(user=user).key

    colleague = Client(HTTP_AUTHORIZATION=f"Token {valid}", REMOTE_ADDR="192.0.2.1")

    assert colleague.get(url).status_code == 200
    guesser = Client(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}", REMOTE_ADDR="192.0.2.1")
    assert guesser.get(url).status_code == 429


def test_a_random_forwarded_for_does_not_escape_the_count(study, rates):
    url = ENDPOINTS["study list"]
    statuses = [
        Client(
            HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}",
            REMOTE_ADDR="192.0.2.1",
            HTTP_X_FORWARDED_FOR=f"10.{n}.0.1",
        )
        .get(url)
        .status_code
        for n in range(4)
    ]
    assert statuses == [401, 401, 429, 429]


def test_behind_a_trusted_proxy_each_client_is_counted_on_its_own(study, rates):
    rates.TRUSTED_PROXY_COUNT = 1
    url = ENDPOINTS["study list"]

    def call(client_address: str, n: int) -> int:
        forwarded = f"10.{n}.0.1, {client_address}"  # the proxy appends the address it saw
        return (
            Client(
                HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}",
                REMOTE_ADDR="127.0.0.1",
                HTTP_X_FORWARDED_FOR=forwarded,
            )
            .get(url)
            .status_code
        )

    assert [call("198.51.100.7", n) for n in range(3)] == [401, 401, 429]
    assert call("198.51.100.8", 7) == 401


def test_one_bad_token_from_many_addresses_is_throttled_by_its_prefix(study, rates):
    url = ENDPOINTS["study list"]
    statuses = [
        Client(HTTP_AUTHORIZATION=f"Token {WRONG}", REMOTE_ADDR=f"192.0.2.{n}").get(url).status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_failed_logins_are_counted_in_the_shared_cache(study, rates):
    Client(HTTP_AUTHORIZATION=f"Token {WRONG}").get(ENDPOINTS["study list"])

    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM django_cache")
        keys = [row[0] for row in cursor.fetchall()]
    assert sum("api-failed-auth" in key for key in keys) == 2  # the client and the prefix


# ---- the admin's model permissions, endpoint by endpoint ------------------------------

# name: (method, address, the permissions it needs, the status it answers when allowed)
OPERATIONS = {
    "list studies": ("get", reverse("api:study-list"), STUDY_VIEW, 200),
    "create a study": ("post", reverse("api:study-list"), STUDY_ADD, 201),
    "study detail": ("get", ENDPOINTS["study detail"], STUDY_VIEW, 200),
    "change status": (
        "post",
        reverse("api:study-status", kwargs={"slug": "pilot"}),
        STUDY_CHANGE,
        200,
    ),
    "read the plan": ("get", ENDPOINTS["plan"], STUDY_VIEW, 200),
    "register a plan": (
        "put",
        reverse("api:study-plan", kwargs={"slug": "draft"}),
        STUDY_CHANGE,
        200,
    ),
    "remove the plan": (
        "delete",
        reverse("api:study-plan", kwargs={"slug": "draft"}),
        STUDY_CHANGE,
        200,
    ),
    "progress": ("get", ENDPOINTS["progress"], STUDY_VIEW, 200),
    "participants": ("get", ENDPOINTS["participants"], PARTICIPANTS_VIEW, 200),
    "ratings": ("get", ENDPOINTS["ratings"], RATINGS_VIEW, 200),
    "ratings csv": ("get", ENDPOINTS["ratings csv"], RATINGS_VIEW, 200),
    "schema": ("get", ENDPOINTS["schema"], STUDY_VIEW, 200),
    "docs": ("get", ENDPOINTS["docs"], STUDY_VIEW, 200),
}


def staff_token_client(*permissions: str) -> Client:
    """An API token of a staff account holding exactly ``permissions`` (no group)."""
    user = User.objects.create_user("limited", is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    token = Token.objects.create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def call(client: Client, name: str):
    method, url, _, _ = OPERATIONS[name]
    if name == "create a study":
        return upload(client)
    if name == "change status":
        return status_post(client)
    if name == "register a plan":
        return plan_put(client)
    return getattr(client, method)(url)


def data_state() -> tuple[object, ...]:
    return (
        tuple(Study.objects.order_by("slug").values_list("slug", "status", "plan_sha256")),
        Participant.objects.count(),
    )


@pytest.fixture
def studies(study):
    draft = study_make(slug="draft", live=False)
    study_plan_set(study=draft, plan=plan_shipped("standard"))
    return study


def test_staff_without_model_permissions_are_refused_everywhere(studies):
    client = staff_token_client()
    before = data_state()

    refused = {name: call(client, name).status_code for name in OPERATIONS}

    assert refused == dict.fromkeys(OPERATIONS, 403)
    assert data_state() == before


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_endpoint_needs_exactly_its_permissions(studies, name):
    needed = OPERATIONS[name][2]
    for missing in needed:
        client = staff_token_client(*(p for p in needed if p != missing))
        before = data_state()
        assert call(client, name).status_code == 403, missing
        assert data_state() == before
        User.objects.filter(username="limited").delete()

    assert call(staff_token_client(*needed), name).status_code == OPERATIONS[name][3]


def test_the_ratings_rule_is_the_same_in_the_admin_and_the_api(studies):
    viewer = staff_token_client(*STUDY_VIEW)
    admin = Client()
    admin.force_login(User.objects.get(username="limited"))
    csv_page = reverse("admin:studyapp_study_ratings_csv", args=[studies.pk])
    dashboard = reverse("admin:studyapp_study_dashboard", args=[studies.pk])

    assert admin.get(dashboard).status_code == 200
    assert b"Download ratings" not in admin.get(dashboard).content
    assert admin.get(csv_page).status_code == viewer.get(ENDPOINTS["ratings csv"]).status_code
    assert admin.get(csv_page).status_code == 403

    user = User.objects.get(username="limited")
    for permission in RATINGS_VIEW:
        user.user_permissions.add(Permission.objects.get(codename=permission.split(".")[1]))
    admin.force_login(User.objects.get(pk=user.pk))
    assert admin.get(csv_page).status_code == viewer.get(ENDPOINTS["ratings csv"]).status_code
    assert admin.get(csv_page).status_code == 200
