"""The questionnaire endpoints of the API and a study's questionnaire: reading, storing
through questionnaire_import, the bad-input messages, freezing and the permissions."""

from __future__ import annotations

import random

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.authtoken.models import Token

from studyapp.models import Questionnaire, Study
from studyapp.participation.services import participant_start
from studyapp.studies.services import questionnaire_import
from studyformats.questionnaire import PLAIN_5, questionnaire_parse
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import client_for, token_client_for
from tests.studyapp.test_questionnaires import BAD_FILES, FAITH_7

pytestmark = pytest.mark.django_db

LIST = reverse("api:questionnaire-list")
FAITH_DATA = questionnaire_parse(FAITH_7).as_data()


def detail_url(name: str) -> str:
    return reverse("api:questionnaire-detail", kwargs={"slug": name})


def study_url(slug: str = "pilot") -> str:
    return reverse("api:study-questionnaire", kwargs={"slug": slug})


@pytest.fixture
def api():
    return token_client_for("researcher")


@pytest.fixture
def faith() -> Questionnaire:
    return questionnaire_import(questionnaire_parse(FAITH_7))[0]


def test_the_list_describes_each_version(api, faith):
    study_make(questionnaire=faith)

    listing = api.get(LIST).json()

    assert listing["count"] == 1
    row = listing["results"][0]
    assert (row["name"], row["version"], row["frozen"], row["frozen_at"]) == (
        "faith-7",
        1,
        False,
        None,
    )
    assert row["dimensions"] == ["faithfulness", "helpfulness", "clarity"]
    assert (row["scale_points"], row["studies"]) == (7, ["pilot"])


def test_one_version_is_read_with_its_document(api, faith):
    body = api.get(detail_url("faith-7")).json()

    assert (body["name"], body["version"], body["frozen"]) == ("faith-7", 1, False)
    assert body["document"] == FAITH_DATA
    assert api.get(detail_url("faith-7") + "?version=1").json() == body
    assert api.get(detail_url("faith-7") + "?version=2").status_code == 404
    assert api.get(detail_url("nope")).status_code == 404
    refused = api.get(detail_url("faith-7") + "?version=x")
    assert refused.status_code == 400
    assert "'x' is not a version" in refused.json()["version"][0]


def test_a_json_document_is_stored_then_unchanged(api):
    created = api.post(LIST, FAITH_DATA, content_type="application/json")

    assert created.status_code == 201
    assert (created.json()["name"], created.json()["version"]) == ("faith-7", 1)
    again = api.post(LIST, FAITH_DATA, content_type="application/json")
    assert again.status_code == 200
    assert Questionnaire.objects.count() == 1


def test_a_toml_file_is_stored(api):
    upload = SimpleUploadedFile("faith.toml", FAITH_7.encode())

    response = api.post(LIST, {"file": upload})

    assert response.status_code == 201
    assert Questionnaire.objects.get().document == questionnaire_parse(FAITH_7)


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_bad_file_gets_the_formats_message_and_nothing_is_stored(api, case):
    text, message = BAD_FILES[case]
    upload = SimpleUploadedFile("bad.toml", text.encode())

    response = api.post(LIST, {"file": upload})

    assert response.status_code == 400
    [error] = response.json()["file"]
    assert __import__("re").search(message, error), error
    assert error.startswith("bad.toml: ")
    assert not Questionnaire.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dimensions": []}, r"dimensions"),
        ({"colour": "red"}, r"colour"),
        ({"scale": {"points": 12, "labels": {"1": "a", "12": "b"}}}, r"scale\.points"),
        (
            {"attention_checks": {"labels": ["Sometimes"]}},
            r"attention_checks\.labels names 'Sometimes', which the scale lacks",
        ),
    ],
)
def test_a_bad_json_document_is_explained_and_nothing_is_stored(api, change, message):
    response = api.post(LIST, {**FAITH_DATA, **change}, content_type="application/json")

    assert response.status_code == 400
    [error] = response.json()["document"]
    assert __import__("re").search(message, error), error
    assert not Questionnaire.objects.exists()


def test_malformed_json_is_a_400(api):
    response = api.post(LIST, '{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert not Questionnaire.objects.exists()


def test_a_change_to_a_frozen_version_becomes_the_next_version(api, faith):
    study = study_make(questionnaire=faith)
    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))
    changed = {**FAITH_DATA, "title": "Three statements"}

    response = api.post(LIST, changed, content_type="application/json")

    assert response.status_code == 201
    assert (response.json()["version"], response.json()["frozen"]) == (2, False)
    faith.refresh_from_db()
    assert (faith.definition, faith.is_frozen) == (FAITH_DATA, True)
    assert api.get(detail_url("faith-7") + "?version=1").json()["frozen"] is True


# ---- a study's questionnaire ----------------------------------------------------------------


def test_a_study_without_one_reads_as_the_default(api):
    study = study_make(live=False)
    Study.objects.filter(pk=study.pk).update(questionnaire=None)

    body = api.get(study_url()).json()

    assert (body["study"], body["name"], body["version"], body["frozen"]) == (
        "pilot",
        "plain-5",
        None,
        False,
    )
    assert body["document"] == PLAIN_5.as_data()


def test_put_sets_a_stored_questionnaire(api, faith):
    study_make()

    response = api.put(study_url(), {"questionnaire": "faith-7@1"}, content_type="application/json")

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["version"]) == ("faith-7", 1)
    assert Study.objects.get().questionnaire_id == faith.pk


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope", "no questionnaire 'nope'"),
        ("faith-7@3", "no questionnaire 'faith-7@3'"),
        ("/etc/passwd.toml", "give a stored questionnaire as NAME or NAME@VERSION"),
        ("../faith.json", "give a stored questionnaire as NAME or NAME@VERSION"),
    ],
)
def test_put_explains_an_unknown_name_and_never_reads_a_file(api, faith, value, message):
    study_make()

    response = api.put(study_url(), {"questionnaire": value}, content_type="application/json")

    assert response.status_code == 400
    assert message in response.json()["questionnaire"][0]
    assert Study.objects.get().questionnaire_id is None


def test_put_is_refused_with_409_once_the_study_has_participants(api, faith):
    study = study_make()
    participant_start(study=study, prolific_pid="P1", rng=random.Random(1))

    response = api.put(study_url(), {"questionnaire": "faith-7"}, content_type="application/json")

    assert response.status_code == 409
    assert (
        "already has participants; its questionnaire (plain-5 v1) can no longer change"
        in (response.json()["detail"])
    )
    study.refresh_from_db()
    assert study.questionnaire.name == "plain-5"


# ---- permissions -------------------------------------------------------------------------------


def calls(client) -> dict[str, int]:
    return {
        "list": client.get(LIST).status_code,
        "detail": client.get(detail_url("faith-7")).status_code,
        "store": client.post(
            LIST, {**FAITH_DATA, "title": "changed"}, content_type="application/json"
        ).status_code,
        "study get": client.get(study_url()).status_code,
        "study put": client.put(
            study_url(), {"questionnaire": "faith-7"}, content_type="application/json"
        ).status_code,
    }


def token_client_with(*codenames: str):
    user = User.objects.create_user(username="limited", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    token = Token.objects.create(user=user)
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


@pytest.mark.parametrize(
    ("make_client", "expected"),
    [
        (lambda: client_for("anonymous"), dict.fromkeys(["list", "detail", "store"], 401)),
        (lambda: token_client_for("member"), dict.fromkeys(["list", "detail", "store"], 403)),
        (lambda: token_client_for("staff"), dict.fromkeys(["list", "detail", "store"], 403)),
        (
            lambda: token_client_with("view_questionnaire"),
            {"list": 200, "detail": 200, "store": 403},
        ),
        (
            lambda: token_client_with("view_questionnaire", "add_questionnaire"),
            {"list": 200, "detail": 200, "store": 403},
        ),
        (lambda: token_client_for("researcher"), {"list": 200, "detail": 200, "store": 201}),
    ],
    ids=["anonymous", "member", "staff", "viewer", "viewer who may add", "researcher"],
)
def test_who_may_read_and_store_questionnaires(faith, make_client, expected):
    study_make(live=False)
    result = calls(make_client())
    assert {key: result[key] for key in expected} == expected
    if expected["store"] != 201:
        assert Questionnaire.objects.get().definition == FAITH_DATA


@pytest.mark.parametrize(
    ("codenames", "expected"),
    [
        (("view_study",), {"study get": 200, "study put": 403}),
        (("view_study", "change_study"), {"study get": 200, "study put": 200}),
        ((), {"study get": 403, "study put": 403}),
    ],
    ids=["study viewer", "study changer", "no study permission"],
)
def test_who_may_read_and_set_a_studys_questionnaire(faith, codenames, expected):
    study_make(live=False)
    result = calls(token_client_with(*codenames))
    assert {key: result[key] for key in expected} == expected
    changed = expected["study put"] == 200
    assert (Study.objects.get().questionnaire_id == faith.pk) is changed


def test_anonymous_callers_cannot_read_or_set_a_studys_questionnaire(faith):
    study_make(live=False)
    result = calls(client_for("anonymous"))
    assert (result["study get"], result["study put"]) == (401, 401)
