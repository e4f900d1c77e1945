from __future__ import annotations

import csv
import io

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from studyapp import selectors
from studyapp.models import Participant, ParticipantExclusion
from studyapp.participation.services import participant_decline
from tests.studyapp.participant_pool import study_make
from tests.studyapp.researcher_data import client_for, participant_finish

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:studyapp_participant_changelist")


@pytest.fixture
def researcher():
    return client_for("researcher")


@pytest.fixture
def people():
    study = study_make()
    return {
        "done": participant_finish(study, "DONE-1", seed=1),
        "flagged": participant_finish(study, "FLAG-2", seed=2, fail_checks=2),
        "working": participant_finish(study, "WORK-3", seed=3, items=3),
        "declined": participant_decline(study=study, prolific_pid="NO-4"),
    }


def listed(client, **query) -> list[str]:
    page = BeautifulSoup(client.get(CHANGELIST, query).content, "html.parser")
    return sorted(cell.get_text() for cell in page.select("#result_list th.field-prolific_pid"))


def action(client, name: str, participants, **extra):
    data = {"action": name, "_selected_action": [p.pk for p in participants], **extra}
    return client.post(CHANGELIST, data)


def test_participants_are_filtered_and_searched(researcher, people):
    assert listed(researcher) == ["DONE-1", "FLAG-2", "NO-4", "WORK-3"]
    assert listed(researcher, status__exact="active") == ["WORK-3"]
    assert listed(researcher, attention="flagged") == ["FLAG-2"]
    assert listed(researcher, attention="passed") == ["DONE-1", "NO-4", "WORK-3"]
    assert listed(researcher, completed="yes") == ["DONE-1", "FLAG-2"]
    assert listed(researcher, completed="no") == ["NO-4", "WORK-3"]
    assert listed(researcher, excluded__exact="0") == ["DONE-1", "FLAG-2", "NO-4", "WORK-3"]
    assert listed(researcher, q="FLAG") == ["FLAG-2"]


def test_excluding_asks_for_a_reason_first(researcher, people):
    response = action(researcher, "participants_exclude", [people["flagged"]])
    assert response.status_code == 200
    page = BeautifulSoup(response.content, "html.parser")
    assert page.find("textarea", attrs={"name": "reason"}) is not None
    assert "FLAG-2" in page.get_text()
    people["flagged"].refresh_from_db()
    assert people["flagged"].excluded is False
    assert not ParticipantExclusion.objects.exists()


def test_an_empty_reason_is_refused(researcher, people):
    response = action(researcher, "participants_exclude", [people["flagged"]], reason="   ")
    assert response.status_code == 200
    assert b"This field is required" in response.content
    assert not ParticipantExclusion.objects.exists()


def test_exclusion_and_re_inclusion_are_kept_as_an_audit_trail(researcher, people):
    flagged = people["flagged"]
    response = action(
        researcher, "participants_exclude", [flagged], reason="failed both attention checks"
    )
    assert response.status_code == 302
    flagged.refresh_from_db()
    assert flagged.excluded is True
    action(researcher, "participants_exclude", [flagged], reason="again")
    action(researcher, "participants_include", [flagged], reason="checks were ambiguous")
    flagged.refresh_from_db()
    assert flagged.excluded is False
    trail = list(
        ParticipantExclusion.objects.filter(participant=flagged).values_list(
            "excluded", "reason", "decided_by__username"
        )
    )
    assert trail == [
        (True, "failed both attention checks", "researcher"),
        (False, "checks were ambiguous", "researcher"),
    ]
    change = researcher.get(reverse("admin:studyapp_participant_change", args=[flagged.pk]))
    assert b"checks were ambiguous" in change.content


def test_marking_returned_releases_the_unrated_items(researcher, people):
    working = people["working"]
    study = working.study
    now = timezone.now()
    held_before = selectors.assignments_holding(study=study, now=now).filter(participant=working)
    assert held_before.count() == 12
    action(researcher, "participants_mark_returned", [working, people["done"]])
    working.refresh_from_db()
    people["done"].refresh_from_db()
    assert working.status == Participant.Status.RETURNED
    assert people["done"].status == Participant.Status.COMPLETED
    held_after = selectors.assignments_holding(study=study, now=now).filter(participant=working)
    assert held_after.count() == 3  # the rated ones stay


def test_marking_timed_out_sets_the_status(researcher, people):
    action(researcher, "participants_mark_timed_out", [people["working"]])
    people["working"].refresh_from_db()
    assert people["working"].status == Participant.Status.TIMED_OUT


def test_the_ratings_of_selected_participants_are_exported(researcher, people):
    response = action(researcher, "ratings_export", [people["done"], people["working"]])
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 12 + 3
    assert len({row["participant"] for row in rows}) == 2


def test_participants_cannot_be_added_or_edited_by_hand(researcher, people):
    assert researcher.get(reverse("admin:studyapp_participant_add")).status_code == 403
    url = reverse("admin:studyapp_participant_change", args=[people["done"].pk])
    researcher.post(url, {"excluded": "on", "status": "active"})
    people["done"].refresh_from_db()
    assert (people["done"].excluded, people["done"].status) == (False, "completed")


def test_view_only_staff_cannot_run_the_changing_actions(people):
    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_participant"))
    client = client_for("anonymous")
    client.force_login(user)
    response = action(client, "participants_exclude", [people["done"]], reason="x")
    assert not ParticipantExclusion.objects.exists()
    # The action is not offered: the list comes back (with no action at all left to a
    # view-only account, as the ratings export needs the ratings permission too).
    assert response.status_code in (200, 302)
    assert b"Exclude participants" not in response.content
    people["done"].refresh_from_db()
    assert people["done"].excluded is False
