from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from studyapp.api.serializers import RatingRowSerializer
from studyapp.exports import participant_pseudonym, ratings_columns, ratings_rows
from studyapp.models import Explanation, Participant, ParticipantDemographics, Study
from studyapp.participation.services import participant_decline
from tests.studyapp.participant_pool import explanation_lines, explanation_record, study_make
from tests.studyapp.researcher_data import participant_finish, token_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return token_client_for("researcher")


@pytest.fixture
def study():
    study = study_make(slug="pilot")
    participant_finish(study, "P1", seed=1)
    participant_finish(study, "P2", seed=2, fail_checks=2)
    participant_finish(study, "P3", seed=3, items=4)
    participant_decline(study=study, prolific_pid="no")
    return study


def jsonl_upload(lines: list[str], name: str = "explanations.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "\n".join(lines).encode(), content_type="application/jsonl")


def test_the_list_and_detail_describe_studies_and_their_conditions(api, study):
    listing = api.get(reverse("api:study-list")).json()
    assert listing["count"] == 1
    detail = api.get(reverse("api:study-detail", kwargs={"slug": "pilot"})).json()
    assert listing["results"][0] == detail
    assert detail["slug"] == "pilot"
    assert detail["status"] == "live"
    assert detail["questions"] == 16
    assert {c["name"]: c["explanations"] for c in detail["conditions"]} == {
        "CF:original": 16,
        "MT+CF:original": 16,
        "MT+CF:revised": 16,
        "MT:original": 16,
    }


def test_an_unknown_study_is_a_404_everywhere(api):
    for name in ("study-detail", "study-progress", "study-participants", "study-ratings"):
        response = api.get(reverse(f"api:{name}", kwargs={"slug": "nope"}))
        assert response.status_code == 404, name
    assert api.get(reverse("api:study-ratings-csv", kwargs={"slug": "nope"})).status_code == 404


def test_progress_counts_participants_ratings_and_coverage(api, study):
    progress = api.get(reverse("api:study-progress", kwargs={"slug": "pilot"})).json()
    assert progress["participants_started"] == 3
    assert progress["participants_completed"] == 2
    assert progress["participants_active"] == 1
    assert progress["participants_no_consent"] == 1
    assert progress["participants_attention_flagged"] == 1
    assert progress["ratings_total"] == 28
    assert sum(progress["ratings_per_condition"].values()) == 28
    assert progress["explanations_total"] == 64
    histogram = {int(k): v for k, v in progress["exposure_histogram"].items()}
    assert sum(histogram.values()) == 64
    assert sum(times * n for times, n in histogram.items()) == 28
    assert progress["attention_checks_failed"] == 2
    assert progress["attention_fail_rate"] == pytest.approx(
        2 / progress["attention_checks_answered"]
    )
    assert progress["median_completion_seconds"] == pytest.approx(14 * 7)


def test_participants_are_listed_with_their_pseudonym(api, study):
    body = api.get(reverse("api:study-participants", kwargs={"slug": "pilot"})).json()
    assert body["count"] == 4
    by_pid = {p["prolific_pid"]: p for p in body["results"]}
    assert by_pid["P1"]["participant"] == participant_pseudonym("P1")
    assert by_pid["P1"]["items_rated"] == 12
    assert by_pid["P3"]["items_rated"] == 4
    assert by_pid["P2"]["attention_failures"] == 2
    assert by_pid["no"]["status"] == "no_consent"


def test_ratings_are_paginated_json_rows_of_the_export(api, study):
    url = reverse("api:study-ratings", kwargs={"slug": "pilot"})
    first = api.get(url, {"page_size": 10}).json()
    assert first["count"] == 28
    rows = list(first["results"])
    next_url = first["next"]
    while next_url:
        page = api.get(next_url).json()
        rows.extend(page["results"])
        next_url = page["next"]
    assert rows == json.loads(json.dumps(ratings_rows(study)))
    assert list(rows[0]) == ratings_columns()


def test_the_row_serializer_names_every_export_column():
    assert list(RatingRowSerializer().fields) == ratings_columns(
        covariates=ParticipantDemographics.COVARIATES
    )


def test_the_csv_endpoint_serves_the_export_format(api, study):
    response = api.get(reverse("api:study-ratings-csv", kwargs={"slug": "pilot"}))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 28
    assert list(rows[0]) == ratings_columns()


def test_the_csv_endpoint_is_csv_whatever_the_accept_header(api, study):
    url = reverse("api:study-ratings-csv", kwargs={"slug": "pilot"})
    response = api.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.content.decode().startswith("participant,study,position")


def test_a_study_is_created_from_an_uploaded_explanations_file(api):
    response = api.post(
        reverse("api:study-list"),
        {
            "slug": "from-api",
            "title": "From the API",
            "completion_code": "C0DE1234",
            "per_condition": 2,
            "live": "true",
            "explanations": jsonl_upload(explanation_lines(questions=10)),
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["slug"], body["status"], body["per_condition"]) == ("from-api", "live", 2)
    study = Study.objects.get(slug="from-api")
    assert study.completion_code == "C0DE1234"
    assert Explanation.objects.filter(condition__study=study).count() == 40


def test_a_bad_upload_lists_every_bad_line_and_imports_nothing(api):
    lines = explanation_lines(questions=12)
    lines[2] = "{not json"
    lines[6] = json.dumps(explanation_record("MT:original", 99, answer="moon"))
    response = api.post(
        reverse("api:study-list"), {"slug": "bad", "explanations": jsonl_upload(lines)}
    )
    assert response.status_code == 400
    errors = response.json()["explanations"]
    assert errors[0].startswith("line 3: not valid JSON")
    assert errors[1] == "line 7: answer 'moon' is not among the choices"
    assert not Study.objects.filter(slug="bad").exists()


def test_a_file_that_is_not_utf8_is_reported_with_its_line(api):
    content = "\n".join(explanation_lines(questions=12)[:3]).encode() + b"\n\xff\xfe\n"
    upload = SimpleUploadedFile("e.jsonl", content)
    response = api.post(reverse("api:study-list"), {"slug": "bad", "explanations": upload})
    assert response.status_code == 400
    assert response.json()["explanations"] == ["line 4: the file is not UTF-8 text"]


def test_a_conflict_with_the_stored_study_is_a_400_with_the_reason(api, study):
    lines = explanation_lines()
    changed = json.loads(lines[0])
    changed["explanation"] = "A different explanation."
    lines[0] = json.dumps(changed)
    response = api.post(
        reverse("api:study-list"), {"slug": "pilot", "explanations": jsonl_upload(lines)}
    )
    assert response.status_code == 400
    assert "differs from the stored one" in response.json()["detail"]


def test_missing_fields_are_reported_by_name(api):
    response = api.post(reverse("api:study-list"), {"slug": "not a slug!"})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"slug", "explanations"}
    assert Participant.objects.count() == 0


@pytest.mark.parametrize(
    ("start", "target", "code", "end"),
    [
        ("live", "paused", 200, "paused"),
        ("paused", "live", 200, "live"),
        ("live", "closed", 200, "closed"),
        ("closed", "closed", 200, "closed"),
        ("draft", "paused", 409, "draft"),
    ],
)
def test_a_study_is_opened_paused_and_closed(api, start, target, code, end):
    study = study_make(slug="pilot", live=False)
    # A study that is (or was) open has its plan frozen; the database holds to that.
    frozen_at = None if start == "draft" else timezone.now()
    Study.objects.filter(pk=study.pk).update(status=start, plan_frozen_at=frozen_at)
    url = reverse("api:study-status", kwargs={"slug": "pilot"})
    response = api.post(url, {"status": target}, content_type="application/json")
    assert response.status_code == code
    study.refresh_from_db()
    assert study.status == end
    if code == 200:
        assert response.json()["status"] == end


def test_an_unknown_status_is_refused_by_name(api):
    study_make(slug="pilot")
    url = reverse("api:study-status", kwargs={"slug": "pilot"})
    response = api.post(url, {"status": "draft"}, content_type="application/json")
    assert response.status_code == 400
    assert "status" in response.json()


def test_an_out_of_range_items_per_condition_is_a_400_not_a_server_error(api):
    response = api.post(
        reverse("api:study-list"),
        {
            "slug": "big",
            "per_condition": 40000,
            "explanations": jsonl_upload(explanation_lines(questions=12)),
        },
    )
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("nothing was imported: ")
    assert not Study.objects.filter(slug="big").exists()
