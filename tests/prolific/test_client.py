"""ProlificClient against the fake Prolific over real HTTP, and the fake's own rules."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from studyapp.demographics import demographics_read
from studyapp.prolific.client import (
    ProlificClient,
    ProlificError,
    ProlificNotConfigured,
    Retry,
    StudyRecord,
    error_text,
    retry_after_seconds,
)
from tests.prolific.conftest import TOKEN
from tests.prolific.fake import (
    EXPORT_COLUMNS,
    STUDY_ACTIONS,
    STUDY_STATUSES,
    STUDY_TRANSITIONS,
    FakeProlific,
    FakeProlificError,
    closed_port_url,
    error_body,
    signed_delivery,
)

LONG_MESSAGE = "Your answers did not follow the instructions given on the first page. " * 2


def study_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Rate explanations",
        "internal_name": "explainstudy-1",
        "description": "<p>Rate how helpful each explanation is.</p>",
        "external_study_url": (
            "https://study.example.org/start/?PROLIFIC_PID={{%PROLIFIC_PID%}}"
            "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
        ),
        "prolific_id_option": "url_parameters",
        "completion_codes": [
            {"code": "DONE1", "code_type": "COMPLETED", "actions": [{"action": "MANUALLY_REVIEW"}]},
            {
                "code": "AUTO1",
                "code_type": "OTHER",
                "actions": [{"action": "AUTOMATICALLY_APPROVE"}],
            },
        ],
        "total_available_places": 20,
        "estimated_completion_time": 10,
        "reward": 150,
        "device_compatibility": ["desktop"],
        "peripheral_requirements": [],
        "filters": [{"filter_id": "age", "selected_range": {"lower": 18, "upper": 65}}],
        "submissions_config": {"max_submissions_per_participant": 1},
    }
    body.update(changes)
    return body


def active_study(client: ProlificClient, **changes: Any) -> str:
    study = client.study_create(study_body(**changes))
    client.study_transition(study.id, "PUBLISH")
    return study.id


def awaiting_review(fake: FakeProlific, study_id: str, participant_id: str | None = None) -> str:
    submission_id, _ = fake.participant_arrive(study_id, participant_id)
    fake.participant_complete(submission_id, "DONE1")
    return submission_id


def sent(fake: FakeProlific, method: str, prefix: str) -> int:
    return sum(1 for m, path, _, _ in fake.requests if m == method and path.startswith(prefix))


# ---- reading ----------------------------------------------------------------------------


def test_me_sends_the_token(fake_prolific: FakeProlific, client_fast: ProlificClient) -> None:
    assert client_fast.me()["email"] == "researcher@example.org"
    assert fake_prolific.requests == [("GET", "/api/v1/users/me/", {}, None)]


@pytest.mark.parametrize("next_links", [True, False])
def test_submissions_over_four_pages(
    fake_prolific: FakeProlific, client_fast: ProlificClient, next_links: bool
) -> None:
    fake_prolific.next_links = next_links
    study_id = active_study(client_fast)
    made = [fake_prolific.participant_arrive(study_id)[0] for _ in range(10)]

    got = list(client_fast.submissions(study_id, page_size=3))

    assert [s.id for s in got] == made  # every one, once, in started_at order
    pages = [q for m, p, q, _ in fake_prolific.requests if p == "/api/v1/submissions/"]
    assert [q["page"] for q in pages] == ["1", "2", "3", "4"]
    assert all(q["study"] == study_id and q["page_size"] == "3" for q in pages)


def test_page_number_fallback_stops_at_the_count(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    fake_prolific.next_links = False
    study_id = active_study(client_fast)
    for _ in range(9):
        fake_prolific.participant_arrive(study_id)

    assert len(list(client_fast.submissions(study_id, page_size=3))) == 9
    # the third page is full, but meta.count says there is no fourth: not asked for
    assert sent(fake_prolific, "GET", "/api/v1/submissions/") == 3


def test_page_number_fallback_without_count_ends_on_404() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page"]
        asked.append(page)
        if page == "1":
            return httpx.Response(200, json={"results": [{"n": 1}, {"n": 2}]})
        return httpx.Response(404, json=error_body(404, "Invalid page."))

    client = ProlificClient("t", "https://api.example.org", transport=httpx.MockTransport(answer))
    got = list(client.pages("api/v1/x/", {"page": 1, "page_size": 2}, page_size=2))
    assert got == [{"n": 1}, {"n": 2}]
    assert asked == ["1", "2"]


def test_a_next_link_to_another_host_is_refused(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    for _ in range(3):
        fake_prolific.participant_arrive(study_id)
    fake_prolific.link_base = "http://elsewhere.example.org"

    with pytest.raises(ProlificError, match=r"another host: http://elsewhere\.example\.org/api"):
        list(client_fast.submissions(study_id, page_size=2))
    assert sent(fake_prolific, "GET", "/api/v1/submissions/") == 1


def test_typed_records(fake_prolific: FakeProlific, client_fast: ProlificClient) -> None:
    study_id = active_study(client_fast)
    submission_id = awaiting_review(fake_prolific, study_id, "p" * 24)
    stored = fake_prolific.submissions[submission_id]

    study = client_fast.study_get(study_id)
    assert study == StudyRecord(
        id=study_id,
        name="Rate explanations",
        internal_name="explainstudy-1",
        status="ACTIVE",
        total_available_places=20,
        places_taken=1,
        reward=150,
        estimated_completion_time=10,
        external_study_url=study_body()["external_study_url"],
    )
    (got,) = client_fast.submissions(study_id)
    assert got.id == submission_id
    assert got.participant_id == "p" * 24
    assert got.status == "AWAITING REVIEW"
    assert got.study_code == "DONE1"
    assert got.started_at == stored["started_at"]
    assert got.completed_at == stored["completed_at"]
    assert got.started_at is not None
    assert got.started_at.tzinfo is not None
    assert got.return_requested is None


def test_a_draft_without_a_name_reads(client_fast: ProlificClient) -> None:
    study = client_fast.study_create({"internal_name": "draft"})
    assert (study.name, study.status) == ("", "UNPUBLISHED")


def test_study_cost(fake_prolific: FakeProlific, client_fast: ProlificClient) -> None:
    assert client_fast.study_cost(150, 20) == Decimal("4200")  # 150 * 20 * 1.4
    assert fake_prolific.requests[-1][3] == {"reward": 150, "total_available_places": 20}


def test_demographic_export_is_the_csv_the_importer_reads(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    first = awaiting_review(fake_prolific, study_id, "a" * 24)
    fake_prolific.participant_arrive(study_id, "b" * 24)
    fake_prolific.demographics["a" * 24] = {"age": 34, "sex": "Female", "country": "UK"}

    text = client_fast.demographic_export(study_id)

    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert [row[:3] for row in rows[1:]] == [
        [first, "a" * 24, "AWAITING REVIEW"],
        [fake_prolific.submissions_of(study_id)[1]["id"], "b" * 24, "ACTIVE"],
    ]
    assert fake_prolific.requests[-1][3] == {"filters": []}
    fields, people = demographics_read(text.splitlines())
    assert {"age", "sex", "country"} <= set(fields)
    assert people["a" * 24]["age"] == 34
    assert people["a" * 24]["sex"] == "Female"
    assert people["b" * 24]["age"] is None  # DATA_EXPIRED


# ---- retries --------------------------------------------------------------------------


def test_429_waits_the_retry_after_seconds(
    fake_prolific: FakeProlific, client_fast: ProlificClient, sleeps: list[float]
) -> None:
    study_id = fake_prolific.add_study(name="x", status="ACTIVE")
    fake_prolific.fail_next("GET", "/api/v1/studies/", 429, retry_after=7)

    assert client_fast.study_get(study_id).status == "ACTIVE"
    assert sleeps == [7.0]
    assert sent(fake_prolific, "GET", "/api/v1/studies/") == 2


def test_429_waits_until_an_http_date(
    fake_prolific: FakeProlific, client_fast: ProlificClient, sleeps: list[float]
) -> None:
    study_id = fake_prolific.add_study(name="x")
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake_prolific.fail_next("GET", "/api/v1/studies/", 429, retry_after=when)

    client_fast.study_get(study_id)
    (waited,) = sleeps
    assert 27 < waited <= 30


def test_500_on_a_get_is_retried(
    fake_prolific: FakeProlific, client_fast: ProlificClient, sleeps: list[float]
) -> None:
    study_id = fake_prolific.add_study(name="x")
    fake_prolific.fail_next("GET", "/api/v1/studies/", 500, times=2)

    assert client_fast.study_get(study_id).id == study_id
    assert sleeps == [0.5, 1.0]  # backoff 0.5 s, doubling
    assert sent(fake_prolific, "GET", "/api/v1/studies/") == 3


def test_500_on_every_try_gives_up_quoting_prolific(
    fake_prolific: FakeProlific, client_fast: ProlificClient, sleeps: list[float]
) -> None:
    study_id = fake_prolific.add_study(name="x")
    fake_prolific.fail_next("GET", "/api/v1/", 503, times=10, body=error_body(503, "Down"))

    with pytest.raises(ProlificError, match=r"answered 503 to GET .*Down") as caught:
        client_fast.study_get(study_id)
    assert caught.value.status == 503
    assert len(sleeps) == 3
    assert sent(fake_prolific, "GET", "/api/v1/") == 4


def test_500_on_a_study_create_is_not_retried(
    fake_prolific: FakeProlific, client_fast: ProlificClient, sleeps: list[float]
) -> None:
    fake_prolific.fail_next(
        "POST", "/api/v1/studies/", 500, body=error_body(500, "The database is on fire")
    )

    with pytest.raises(ProlificError, match="The database is on fire") as caught:
        client_fast.study_create(study_body())
    assert caught.value.status == 500
    assert caught.value.answer["error"]["detail"] == "The database is on fire"
    assert sent(fake_prolific, "POST", "/api/v1/studies/") == 1
    assert sleeps == []


def test_500_on_a_bonus_pay_is_not_retried(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    awaiting_review(fake_prolific, study_id, "c" * 24)
    bonus = client_fast.bonus_setup(study_id, f"{'c' * 24},1.50\n")
    fake_prolific.fail_next("POST", "/api/v1/bulk-bonus-payments/", 500)

    with pytest.raises(ProlificError, match="answered 500 to POST"):
        client_fast.bonus_pay(bonus.id)
    assert sent(fake_prolific, "POST", "/api/v1/bulk-bonus-payments/") == 1
    assert fake_prolific.payments == []


def test_a_post_refused_with_429_is_sent_again_and_done_once(
    fake_prolific: FakeProlific, client_fast: ProlificClient, sleeps: list[float]
) -> None:
    fake_prolific.fail_next("POST", "/api/v1/studies/", 429, retry_after=1)

    study = client_fast.study_create(study_body())

    assert list(fake_prolific.studies) == [study.id]
    assert sent(fake_prolific, "POST", "/api/v1/studies/") == 2
    assert sleeps == [1.0]


def test_a_read_timeout_on_a_get_is_retried(
    fake_prolific: FakeProlific, sleeps: list[float]
) -> None:
    study_id = fake_prolific.add_study(name="x")
    fake_prolific.delay_next("GET", "/api/v1/studies/", 1.0)
    with ProlificClient.from_settings(retry=Retry(sleep=sleeps.append), timeout=0.3) as client:
        assert client.study_get(study_id).id == study_id
    assert sleeps == [0.5]
    assert sent(fake_prolific, "GET", "/api/v1/studies/") == 2


def test_a_read_timeout_on_a_post_is_not_retried(
    fake_prolific: FakeProlific, sleeps: list[float]
) -> None:
    fake_prolific.delay_next("POST", "/api/v1/studies/", 1.0)
    with (
        ProlificClient.from_settings(retry=Retry(sleep=sleeps.append), timeout=0.3) as client,
        pytest.raises(ProlificError, match="may or may not have been done") as caught,
    ):
        client.study_create(study_body())
    assert "POST api/v1/studies/" in str(caught.value)
    assert sent(fake_prolific, "POST", "/api/v1/studies/") == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "lost", [httpx.RemoteProtocolError("Server disconnected"), httpx.ReadError("reset")]
)
def test_a_connection_lost_after_sending(lost: httpx.TransportError, sleeps: list[float]) -> None:
    tries: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        tries.append(request.method)
        if len(tries) == 1:
            raise lost
        return httpx.Response(200, json={"id": "s1", "status": "ACTIVE"})

    transport = httpx.MockTransport(answer)
    client = ProlificClient("t", retry=Retry(sleep=sleeps.append), transport=transport)
    assert client.study_get("s1").status == "ACTIVE"  # a read: asked again
    assert tries == ["GET", "GET"]
    tries.clear()
    with pytest.raises(ProlificError, match=r"broke .* may or may not have been done"):
        client.study_create({"name": "x"})  # a create: never repeated
    assert tries == ["POST"]
    assert sleeps == [0.5]


def test_a_refused_connection_says_where(sleeps: list[float]) -> None:
    url = closed_port_url()
    client = ProlificClient(TOKEN, url, retry=Retry(sleep=sleeps.append))
    with pytest.raises(ProlificError, match=f"gave up after 4 tries: could not connect to {url}/"):
        client.me()
    assert sleeps == [0.5, 1.0, 2.0]


# ---- refusals -------------------------------------------------------------------------


def test_a_bad_token_is_a_401_naming_the_setting(fake_prolific: FakeProlific) -> None:
    client = ProlificClient("not-the-token", fake_prolific.base_url)
    with pytest.raises(ProlificError, match="PROLIFIC_API_TOKEN") as caught:
        client.me()
    assert caught.value.status == 401
    assert "Invalid token." in str(caught.value)


def test_no_token_is_not_configured(settings: Any) -> None:
    settings.PROLIFIC_API_TOKEN = ""
    with pytest.raises(ProlificNotConfigured, match="PROLIFIC_API_TOKEN"):
        ProlificClient.from_settings()


def test_a_bad_completion_code_type_quotes_the_field(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    codes = [{"code": "X", "code_type": "DONE", "actions": []}]
    with pytest.raises(ProlificError) as caught:
        client_fast.study_create(study_body(completion_codes=codes))
    assert caught.value.status == 400
    message = str(caught.value)
    assert "completion_codes[0].code_type" in message
    assert '\\"DONE\\" is not a valid choice' in message
    assert fake_prolific.studies == {}


def test_a_short_rejection_message_quotes_the_rule(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    submission_id = awaiting_review(fake_prolific, active_study(client_fast))
    with pytest.raises(ProlificError, match=r'"message": \["It must be at least 100 chars'):
        client_fast.submission_transition(
            submission_id, "REJECT", message="Too short.", rejection_category="LOW_EFFORT"
        )
    assert fake_prolific.submissions[submission_id]["status"] == "AWAITING REVIEW"


def test_an_unknown_study_is_404(client_fast: ProlificClient) -> None:
    with pytest.raises(ProlificError, match="no such object") as caught:
        client_fast.study_get("0" * 24)
    assert caught.value.status == 404


def test_a_disallowed_transition_quotes_prolific(client_fast: ProlificClient) -> None:
    study = client_fast.study_create(study_body())
    with pytest.raises(ProlificError, match="Cannot PAUSE a study that is UNPUBLISHED") as caught:
        client_fast.study_transition(study.id, "PAUSE")
    assert caught.value.status == 400


# ---- acting on submissions and paying -------------------------------------------------


def test_approve_reject_and_repeat(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    good, bad = awaiting_review(fake_prolific, study_id), awaiting_review(fake_prolific, study_id)

    approved = client_fast.submission_transition(good, "APPROVE")
    assert (approved.id, approved.status) == (good, "APPROVED")
    assert approved.participant == fake_prolific.submissions[good]["participant_id"]
    assert client_fast.submission_transition(good, "APPROVE").status == "APPROVED"  # ignored
    rejected = client_fast.submission_transition(
        bad, "REJECT", message=LONG_MESSAGE, rejection_category="FAILED_INSTRUCTIONS"
    )
    assert rejected.status == "REJECTED"
    with pytest.raises(ProlificError, match="Cannot APPROVE a submission that is REJECTED"):
        client_fast.submission_transition(bad, "APPROVE")


def test_bulk_approve_and_request_return(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    done = [awaiting_review(fake_prolific, study_id) for _ in range(2)]
    active, _ = fake_prolific.participant_arrive(study_id)

    assert client_fast.submissions_bulk_approve(done) == "Bulk approve in progress"
    assert [fake_prolific.submissions[s]["status"] for s in done] == ["APPROVED"] * 2
    with pytest.raises(ProlificError, match=f"Not awaiting review: {active}"):
        client_fast.submissions_bulk_approve([active])

    change = client_fast.submission_request_return(active, ["Didn't finish the study"])
    assert (change.id, change.status) == (active, "ACTIVE")
    assert fake_prolific.submissions[active]["return_requested"] is not None


def test_bonus_set_up_then_paid_once(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    by_submission = awaiting_review(fake_prolific, study_id, "d" * 24)
    awaiting_review(fake_prolific, study_id, "e" * 24)

    bonus = client_fast.bonus_setup(study_id, f"{by_submission},4.25\n{'e' * 24},1.50\n")
    assert bonus.study == study_id
    assert bonus.amount == Decimal("575")  # cents
    assert bonus.fees == Decimal("189.75")
    assert bonus.vat == Decimal("37.95")
    assert bonus.total_amount == Decimal("802.7")
    assert fake_prolific.payments == []

    assert client_fast.bonus_pay(bonus.id) == "Bonus payments are being processed"
    assert sent(fake_prolific, "POST", "/api/v1/bulk-bonus-payments/") == 1
    (payment,) = fake_prolific.payments
    assert payment["lines"] == [(by_submission, Decimal("4.25")), ("e" * 24, Decimal("1.50"))]
    assert fake_prolific.paid_total() == Decimal("5.75")


def test_a_bonus_for_someone_not_in_the_study_is_refused(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    awaiting_review(fake_prolific, study_id, "f" * 24)
    with pytest.raises(ProlificError, match=r"not taken part in study .*: stranger") as caught:
        client_fast.bonus_setup(study_id, f"{'f' * 24},1.00\nstranger,2.00\n")
    assert caught.value.status == 400
    assert fake_prolific.bonuses == {}


# ---- the client's helpers -------------------------------------------------------------


def test_retry_after_seconds() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    assert retry_after_seconds("Sat, 01 Mar 2025 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Sat, 01 Mar 2025 11:59:00 GMT", now=now) == -60.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None
    assert retry_after_seconds("inf") is None
    assert Retry().wait(0, "-5") == 0.0
    assert Retry().wait(2, None) == 2.0
    assert Retry().wait(0, "3600") == 60.0


def test_error_text() -> None:
    def text(status: int, **kwargs: Any) -> str:
        return error_text(httpx.Response(status, **kwargs))

    nested = error_body(400, {"reward": ["Ensure this value is greater than 0."]})
    assert text(400, json=nested) == (
        'Invalid request: {"reward": ["Ensure this value is greater than 0."]}'
    )
    assert text(404, json=error_body(404, "Not found.", "Not found")) == "Not found."
    assert text(400, json={"message": "Bad study", "detail": "no reward"}) == (
        "Bad study: no reward"
    )
    assert text(401, json={"error": "Invalid token"}) == "Invalid token"
    assert text(502, text="<html>Bad gateway</html>") == "<html>Bad gateway</html>"
    assert text(503, content=b"") == "Service Unavailable"


# ---- the fake's own rules -------------------------------------------------------------


def call(fake: FakeProlific, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Token {TOKEN}"}
    return httpx.request(method, fake.base_url + path, json=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (study_body(colour="red"), "colour", "Unknown field."),
        (study_body(prolific_id_option="url"), "prolific_id_option", '"url" is not a valid'),
        (study_body(reward=0), "reward", "greater than 0"),
        (study_body(reward="150"), "reward", "A valid integer"),
        (study_body(total_available_places=True), "total_available_places", "A valid integer"),
        (study_body(external_study_url="ftp://x.org/"), "external_study_url", "http or https"),
        (study_body(device_compatibility=["watch"]), "device_compatibility[0]", "valid choice"),
        (study_body(filter_set_id="fs1"), "filter_set_id", "cannot be combined"),
        (
            study_body(filters=[{"filter_id": "age", "selected_range": {}}]),
            "filters[0].selected_range",
            "lower or an upper",
        ),
        (
            study_body(filters=[{"filter_id": "sex", "selected_values": [0]}]),
            "filters[0].selected_values",
            "list of strings",
        ),
        (
            study_body(completion_codes=[{"code": "A", "code_type": "COMPLETED"}]),
            "completion_codes[0].actions",
            "This field is required.",
        ),
        (
            study_body(
                completion_codes=[
                    {"code": "A", "code_type": "COMPLETED", "actions": [{"action": "PAY"}]}
                ]
            ),
            "completion_codes[0].actions[0].action",
            '"PAY" is not a valid choice',
        ),
        (
            study_body(
                completion_codes=[
                    {
                        "code": "A",
                        "code_type": "COMPLETED",
                        "actions": [{"action": "ADD_TO_PARTICIPANT_GROUP"}],
                    }
                ]
            ),
            "completion_codes[0].actions[0].participant_group",
            "This field is required.",
        ),
        (
            study_body(
                completion_codes=[
                    {
                        "code": "A",
                        "code_type": "COMPLETED",
                        "actions": [
                            {"action": "AUTOMATICALLY_APPROVE"},
                            {"action": "MANUALLY_REVIEW"},
                        ],
                    }
                ]
            ),
            "completion_codes[0].actions",
            "cannot be combined",
        ),
        (
            study_body(estimated_completion_time=10, maximum_allowed_time=20),
            "maximum_allowed_time",
            "at least 29 minutes",
        ),
    ],
)
def test_the_fake_refuses_a_bad_study(
    fake_prolific: FakeProlific, body: dict[str, Any], field: str, message: str
) -> None:
    answer = call(fake_prolific, "POST", "/api/v1/studies/", body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == 400
    assert isinstance(error["error_code"], int)
    assert isinstance(error["title"], str)
    assert any(message in text for text in error["detail"][field]), error["detail"]
    assert fake_prolific.studies == {}


def test_the_fake_refuses_missing_and_unknown_fields_elsewhere(
    fake_prolific: FakeProlific,
) -> None:
    cost = call(fake_prolific, "POST", "/api/v1/study-cost-calculator/", {"reward": 100})
    assert cost.status_code == 400
    assert cost.json()["error"]["detail"] == {"total_available_places": ["This field is required."]}
    extra = {"reward": 1, "total_available_places": 1, "currency": "GBP"}
    assert call(fake_prolific, "POST", "/api/v1/study-cost-calculator/", extra).json()["error"][
        "detail"
    ] == {"currency": ["Unknown field."]}
    bad_json = httpx.post(
        fake_prolific.base_url + "/api/v1/studies/",
        content=b"{nope",
        headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert call(fake_prolific, "GET", "/api/v1/nothing/").status_code == 404
    assert call(fake_prolific, "DELETE", "/api/v1/users/me/").status_code == 405
    assert httpx.get(fake_prolific.base_url + "/api/v1/users/me/").status_code == 401


def test_publish_needs_a_configured_study(fake_prolific: FakeProlific) -> None:
    draft = call(fake_prolific, "POST", "/api/v1/studies/", {"name": "Only a name"}).json()
    assert draft["status"] == "UNPUBLISHED"
    assert draft["is_ready_to_publish"] is False
    answer = call(
        fake_prolific, "POST", f"/api/v1/studies/{draft['id']}/transition/", {"action": "PUBLISH"}
    )
    assert answer.status_code == 400
    assert set(answer.json()["error"]["detail"]) == {
        "description",
        "external_study_url",
        "completion_codes",
        "total_available_places",
        "estimated_completion_time",
        "reward",
    }
    assert fake_prolific.studies[draft["id"]]["status"] == "UNPUBLISHED"


@pytest.mark.parametrize("status", [s for s in STUDY_STATUSES if s != "PUBLISHING"])
def test_the_fake_study_transition_table(fake_prolific: FakeProlific, status: str) -> None:
    for action in STUDY_ACTIONS:
        study_id = fake_prolific.add_study(
            **study_body(publish_at="2030-01-01T00:00:00Z"), status=status
        )
        path = f"/api/v1/studies/{study_id}/transition/"
        answer = call(fake_prolific, "POST", path, {"action": action})
        target = STUDY_TRANSITIONS.get((status, action))
        if target is None:
            assert answer.status_code == 400, (status, action)
            assert fake_prolific.studies[study_id]["status"] == status
        else:
            assert answer.status_code == 200, (status, action, answer.text)
            assert answer.json()["status"] == target
    assert call(fake_prolific, "POST", path, {"action": "LAUNCH"}).status_code == 400


def test_the_fake_submission_transition_rules(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    active, _ = fake_prolific.participant_arrive(study_id)
    path = f"/api/v1/submissions/{active}/transition/"
    assert call(fake_prolific, "POST", path, {"action": "APPROVE"}).status_code == 400
    no_category = call(fake_prolific, "POST", path, {"action": "REJECT", "message": LONG_MESSAGE})
    assert no_category.json()["error"]["detail"] == {
        "rejection_category": ["This field is required."]
    }
    wrong_category = {"action": "REJECT", "message": LONG_MESSAGE, "rejection_category": "RUDE"}
    assert (
        "rejection_category"
        in call(fake_prolific, "POST", path, wrong_category).json()["error"]["detail"]
    )
    assert fake_prolific.submissions[active]["status"] == "ACTIVE"


def test_the_fake_participants(fake_prolific: FakeProlific, client_fast: ProlificClient) -> None:
    draft = client_fast.study_create(study_body(total_available_places=2))
    with pytest.raises(FakeProlificError, match="not ACTIVE"):
        fake_prolific.participant_arrive(draft.id)
    client_fast.study_transition(draft.id, "PUBLISH")

    first, url = fake_prolific.participant_arrive(draft.id, "g" * 24)
    assert url == (
        f"https://study.example.org/start/?PROLIFIC_PID={'g' * 24}"
        f"&STUDY_ID={draft.id}&SESSION_ID={first}"
    )
    assert len(first) == 24
    assert int(first, 16) >= 0
    with pytest.raises(FakeProlificError, match="already taken"):
        fake_prolific.participant_arrive(draft.id, "g" * 24)
    second, _ = fake_prolific.participant_arrive(draft.id)
    with pytest.raises(FakeProlificError, match="no place left"):
        fake_prolific.participant_arrive(draft.id)
    fake_prolific.participant_time_out(second)  # frees the place
    third, _ = fake_prolific.participant_arrive(draft.id)

    assert fake_prolific.participant_complete(first, "AUTO1") == "APPROVED"
    fake_prolific.participant_return(third)
    statuses = [fake_prolific.submissions[s]["status"] for s in (first, second, third)]
    assert statuses == ["APPROVED", "TIMED-OUT", "RETURNED"]


def test_signed_delivery_verifies_with_hmac() -> None:
    payload = {
        "resource_id": "s1",
        "event_type": "submission.status.change",
        "participant_id": "p1",
        "status": "RETURNED",
    }
    body, headers = signed_delivery(payload, "sekret", timestamp=1700000000, event_id="e1")
    assert body == json.dumps(payload).encode()
    assert headers["X-Prolific-Request-Timestamp"] == "1700000000"
    assert headers["X-Timestamp"] == "1700000000"
    assert headers["X-Event-ID"] == "e1"
    assert headers["Content-Type"] == "application/json"
    expected = base64.b64encode(
        hmac.new(b"sekret", b"1700000000" + body, hashlib.sha256).digest()
    ).decode()
    assert headers["X-Prolific-Request-Signature"] == expected
    # the docs' own check (re-dumping the parsed body) agrees
    again = json.dumps(json.loads(body))
    docs = base64.b64encode(hmac.new(b"sekret", ("1700000000" + again).encode(), "sha256").digest())
    assert hmac.compare_digest(docs, headers["X-Prolific-Request-Signature"].encode())
    other, _ = signed_delivery(payload, "other", timestamp=1700000000)
    assert signed_delivery(payload, "other", timestamp=1700000000)[1] != headers
    assert other == body


def test_the_fake_sends_signed_hooks_on_every_change(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    def sink(body: bytes, headers: dict[str, str]) -> int:
        received.append((body, headers))
        return 200

    fake_prolific.hook_sink = sink
    study_id = active_study(client_fast)
    submission_id = awaiting_review(fake_prolific, study_id, "h" * 24)
    client_fast.submission_transition(submission_id, "APPROVE")

    statuses = [json.loads(body)["status"] for body, _ in received]
    assert statuses == ["ACTIVE", "AWAITING REVIEW", "APPROVED"]
    body, headers = received[-1]
    assert json.loads(body) == {
        "resource_id": submission_id,
        "event_type": "submission.status.change",
        "participant_id": "h" * 24,
        "status": "APPROVED",
    }
    signed = headers["X-Prolific-Request-Timestamp"].encode() + body
    digest = hmac.new(fake_prolific.hook_secret.encode(), signed, hashlib.sha256).digest()
    assert headers["X-Prolific-Request-Signature"] == base64.b64encode(digest).decode()
    assert len({h["X-Event-ID"] for _, h in received}) == 3
    assert [status for _, _, status in fake_prolific.deliveries] == [200] * 3


def test_the_fake_can_hold_api_hooks_back(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    received: list[bytes] = []

    def sink(body: bytes, headers: dict[str, str]) -> int:
        received.append(body)
        return 204

    fake_prolific.hook_sink = sink
    fake_prolific.defer_api_hooks = True
    submission_id = awaiting_review(fake_prolific, active_study(client_fast))
    client_fast.submission_transition(submission_id, "APPROVE")
    assert len(received) == 2  # the participant's own steps went at once
    assert fake_prolific.deliver_hooks() == 1
    assert json.loads(received[-1])["status"] == "APPROVED"


def test_the_fake_hook_subscription_is_confirmed(fake_prolific: FakeProlific) -> None:
    subscription = {
        "workspace_id": "w1",
        "event_type": "submission.status.change",
        "target_url": "https://study.example.org/prolific/hook/",
    }
    no_secret = call(fake_prolific, "POST", "/api/v1/hooks/subscriptions/", subscription)
    assert no_secret.status_code == 400
    secret = call(fake_prolific, "POST", "/api/v1/hooks/secrets/", {"workspace_id": "w1"})
    assert secret.status_code == 201
    assert secret.json()["value"] == fake_prolific.hook_secret
    local = {**subscription, "target_url": "https://localhost/hook/"}
    assert call(fake_prolific, "POST", "/api/v1/hooks/subscriptions/", local).status_code == 400

    made = call(fake_prolific, "POST", "/api/v1/hooks/subscriptions/", subscription)
    assert made.status_code == 201
    assert made.json() == {**subscription, "id": made.json()["id"], "is_enabled": True}
    confirm = f"/api/v1/hooks/subscriptions/{made.json()['id']}/"
    assert call(fake_prolific, "POST", confirm, {"secret": "wrong"}).status_code == 400
    confirmed = call(fake_prolific, "POST", confirm, {"secret": made.headers["X-Hook-Secret"]})
    assert confirmed.status_code == 200
    assert fake_prolific.subscriptions[made.json()["id"]]["confirmed"] is True


def test_the_fake_pays_a_repeated_pay_again(
    fake_prolific: FakeProlific, client_fast: ProlificClient
) -> None:
    study_id = active_study(client_fast)
    awaiting_review(fake_prolific, study_id, "i" * 24)
    bonus = client_fast.bonus_setup(study_id, f"{'i' * 24},2\n")
    for _ in range(2):
        answer = call(fake_prolific, "POST", f"/api/v1/bulk-bonus-payments/{bonus.id}/pay/")
        assert answer.status_code == 202
    assert fake_prolific.paid_total() == Decimal("4")
