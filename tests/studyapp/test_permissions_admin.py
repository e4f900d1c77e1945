"""Every researcher admin page refuses anonymous and non-staff users and serves researchers."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from studyapp.models import ParticipantExclusion, StudyReport
from studyapp.studies.services import participant_exclusion_set
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import client_for, participant_finish, token_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(tmp_path):
    study = study_make()
    participant = participant_finish(study, "P1")
    participant_exclusion_set(participant=participant, excluded=True, reason="test")
    (tmp_path / "report.html").write_text("<html><body>report</body></html>")
    report = StudyReport.objects.create(study=study, out_dir=str(tmp_path))
    return {"study": study, "participant": participant, "report": report}


GET_PAGES = {
    "index": lambda o: reverse("admin:index"),
    "study list": lambda o: reverse("admin:studyapp_study_changelist"),
    "study change": lambda o: reverse("admin:studyapp_study_change", args=[o["study"].pk]),
    "study upload": lambda o: reverse("admin:studyapp_study_upload"),
    "study dashboard": lambda o: reverse("admin:studyapp_study_dashboard", args=[o["study"].pk]),
    "study ratings csv": lambda o: reverse(
        "admin:studyapp_study_ratings_csv", args=[o["study"].pk]
    ),
    "study report": lambda o: reverse(
        "admin:studyapp_study_report", args=[o["study"].pk, o["report"].pk]
    ),
    "participant list": lambda o: reverse("admin:studyapp_participant_changelist"),
    "participant change": lambda o: reverse(
        "admin:studyapp_participant_change", args=[o["participant"].pk]
    ),
    "exclusion list": lambda o: reverse("admin:studyapp_participantexclusion_changelist"),
    "explanation list": lambda o: reverse("admin:studyapp_explanation_changelist"),
    "demographics list": lambda o: reverse("admin:studyapp_participantdemographics_changelist"),
    "report list": lambda o: reverse("admin:studyapp_studyreport_changelist"),
    "prolific page": lambda o: reverse("admin:studyapp_study_prolific", args=[o["study"].pk]),
    "prolific create": lambda o: reverse(
        "admin:studyapp_study_prolific_create", args=[o["study"].pk]
    ),
    "prolific request list": lambda o: reverse("admin:studyapp_prolificaction_changelist"),
    "prolific submission list": lambda o: reverse("admin:studyapp_prolificsubmission_changelist"),
}

POST_PAGES = {
    "study pause": lambda o: reverse("admin:studyapp_study_status", args=[o["study"].pk, "pause"]),
    "study analyze": lambda o: reverse("admin:studyapp_study_analyze", args=[o["study"].pk]),
    "study demographics": lambda o: reverse(
        "admin:studyapp_study_demographics", args=[o["study"].pk]
    ),
    "prolific sync": lambda o: reverse("admin:studyapp_study_prolific_sync", args=[o["study"].pk]),
    "prolific bonuses": lambda o: reverse(
        "admin:studyapp_study_prolific_bonuses", args=[o["study"].pk]
    ),
}


def login_redirect(response) -> bool:
    return response.status_code == 302 and reverse("admin:login") in response["Location"]


def statuses(client, pages, objects, *, method="get") -> dict[str, int | str]:
    """Each page's status code, or 'login' for a redirect to the admin login."""
    result: dict[str, int | str] = {}
    for name, url in pages.items():
        response = getattr(client, method)(url(objects))
        result[name] = "login" if login_redirect(response) else response.status_code
    return result


@pytest.mark.parametrize("kind", ["anonymous", "member"])
def test_anonymous_and_non_staff_users_are_sent_to_the_login(objects, kind):
    client = client_for(kind)
    assert statuses(client, GET_PAGES, objects) == dict.fromkeys(GET_PAGES, "login")
    assert statuses(client, POST_PAGES, objects, method="post") == dict.fromkeys(
        POST_PAGES, "login"
    )
    objects["study"].refresh_from_db()
    assert objects["study"].status == "live"
    assert StudyReport.objects.count() == 1


def test_an_api_token_does_not_open_the_admin(objects):
    client = token_client_for("superuser")
    assert statuses(client, GET_PAGES, objects) == dict.fromkeys(GET_PAGES, "login")


@pytest.mark.parametrize("kind", ["researcher", "superuser"])
def test_researchers_and_superusers_reach_every_page(objects, kind):
    assert statuses(client_for(kind), GET_PAGES, objects) == dict.fromkeys(GET_PAGES, 200)


def test_staff_without_the_researcher_group_are_refused(objects):
    client = client_for("staff")
    expected: dict[str, int | str] = dict.fromkeys(GET_PAGES, 403)
    expected["index"] = 200  # the admin index opens, listing nothing
    assert statuses(client, GET_PAGES, objects) == expected
    assert statuses(client, POST_PAGES, objects, method="post") == dict.fromkeys(POST_PAGES, 403)
    objects["study"].refresh_from_db()
    assert objects["study"].status == "live"
    assert StudyReport.objects.count() == 1


def test_researchers_cannot_edit_or_delete_ratings_or_audit_records(objects):
    client = client_for("researcher")
    record = ParticipantExclusion.objects.get()
    change = reverse("admin:studyapp_participantexclusion_change", args=[record.pk])
    delete = reverse("admin:studyapp_participantexclusion_delete", args=[record.pk])
    assert client.post(change, {"reason": "edited"}).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    record.refresh_from_db()
    assert record.reason == "test"
    participant_delete = reverse(
        "admin:studyapp_participant_delete", args=[objects["participant"].pk]
    )
    assert client.post(participant_delete, {"post": "yes"}).status_code == 403


def test_the_migration_creates_the_researcher_group_with_view_and_change_permissions():
    codenames = set(
        Group.objects.get(name="researcher").permissions.values_list("codename", flat=True)
    )
    assert {"view_study", "add_study", "change_study", "change_participant"} <= codenames
    assert {"view_rating", "add_participantexclusion", "add_studyreport"} <= codenames
    assert {"view_prolificaction", "view_prolificsubmission"} <= codenames
    assert not {"add_prolificaction", "change_prolificsubmission"} & codenames
    assert not {"change_rating", "delete_rating", "delete_participant", "delete_study"} & codenames
