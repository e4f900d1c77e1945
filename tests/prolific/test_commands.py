"""The prolific_sync and prolific_hook_setup commands, against the fake Prolific."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from studyapp.models import Participant, ProlificSubmission, Study
from studyapp.participation.services import participant_start
from studyapp.prolific.client import ProlificClient
from tests.prolific.fake import FakeProlific
from tests.studyapp.participant_pool import study_make

pytestmark = pytest.mark.django_db

PAGE_SIZE = 3


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(name: str, *args: str) -> tuple[str, str, str]:
    """Run a command expected to fail: its error, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(name, *args, stdout=out, stderr=err)
    return str(raised.value), out.getvalue(), err.getvalue()


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read submissions PAGE_SIZE at a time, so a few submissions span several pages."""
    original = ProlificClient.submissions

    def submissions(self: ProlificClient, study_id: str, page_size: int = 100) -> Any:
        return original(self, study_id, page_size=PAGE_SIZE)

    monkeypatch.setattr(ProlificClient, "submissions", submissions)


def on_fake(fake: FakeProlific, slug: str, **fields: Any) -> Study:
    """A live study here whose Prolific study on the fake is active."""
    study_id = fake.add_study(status="ACTIVE", total_available_places=100, **fields)
    return study_make(slug=slug, prolific_study_id=study_id, prolific_status="ACTIVE")


def working(fake: FakeProlific, study: Study, pid: str) -> tuple[str, Participant]:
    """A participant who arrived from Prolific and is half-way through here."""
    submission_id, _ = fake.participant_arrive(study.prolific_study_id, pid)
    participant = participant_start(
        study=study,
        prolific_pid=pid,
        prolific_study_id=study.prolific_study_id,
        prolific_session_id=submission_id,
    )
    return submission_id, participant


# ---- prolific_sync -----------------------------------------------------------------------


def test_sync_reads_every_page_and_releases_the_returned(
    fake_prolific: FakeProlific, small_pages: None
) -> None:
    study = on_fake(fake_prolific, "cqa")
    people = [working(fake_prolific, study, f"P{i}") for i in range(8)]
    for submission_id, _ in people[::3]:  # P0, P3, P6
        fake_prolific.participant_return(submission_id)
    fake_prolific.participant_time_out(people[1][0])

    out, err = run("prolific_sync", "cqa")

    assert err == ""
    assert out == (
        "cqa: 8 submissions read, 8 changed, 4 participant(s) released; on Prolific: ACTIVE.\n"
    )
    pages = [q for m, path, q, _ in fake_prolific.requests if path == "/api/v1/submissions/"]
    assert [q.get("page") for q in pages] == ["1", "2", "3"]
    statuses = dict(Participant.objects.values_list("prolific_pid", "status"))
    assert statuses == {
        "P0": "returned",
        "P1": "timed_out",
        "P2": "active",
        "P3": "returned",
        "P4": "active",
        "P5": "active",
        "P6": "returned",
        "P7": "active",
    }
    assert ProlificSubmission.objects.filter(study=study).count() == 8
    study.refresh_from_db()
    assert (study.prolific_status, study.prolific_synced_at is not None) == ("ACTIVE", True)

    # Again: nothing changes, nobody is released twice.
    out, _ = run("prolific_sync", "cqa")
    assert out.startswith("cqa: 8 submissions read, 0 changed, 0 participant(s) released;")


def test_sync_follows_a_study_paused_on_prolific(fake_prolific: FakeProlific) -> None:
    study = on_fake(fake_prolific, "cqa")
    fake_prolific.studies[study.prolific_study_id]["status"] = "PAUSED"

    out, _ = run("prolific_sync", "cqa")

    assert out == (
        "cqa: 0 submissions read, 0 changed, 0 participant(s) released; on Prolific: PAUSED; "
        "our study is now paused.\n"
    )
    study.refresh_from_db()
    assert (study.status, study.prolific_status) == ("paused", "PAUSED")


def test_sync_without_a_slug_syncs_every_study_not_finished_on_both_sides(
    fake_prolific: FakeProlific,
) -> None:
    first = on_fake(fake_prolific, "alpha")
    second = on_fake(fake_prolific, "beta")
    finished = on_fake(fake_prolific, "done")
    Study.objects.filter(pk=finished.pk).update(status="closed", prolific_status="COMPLETED")
    fake_prolific.studies[finished.prolific_study_id]["status"] = "COMPLETED"
    study_make(slug="local")  # not on Prolific
    returned, _ = working(fake_prolific, second, "P1")
    fake_prolific.participant_return(returned)

    out, err = run("prolific_sync")

    assert err == ""
    assert out.splitlines() == [
        "alpha: 0 submissions read, 0 changed, 0 participant(s) released; on Prolific: ACTIVE.",
        "beta: 1 submissions read, 1 changed, 1 participant(s) released; on Prolific: ACTIVE.",
    ]
    read = {q["study"] for m, path, q, _ in fake_prolific.requests if "submissions" in path}
    assert read == {first.prolific_study_id, second.prolific_study_id}
    assert Participant.objects.get(prolific_pid="P1").status == "returned"


def test_sync_with_nothing_to_sync_says_so(fake_prolific: FakeProlific) -> None:
    study_make(slug="local")
    out, _ = run("prolific_sync")
    assert out == "No study to sync: none has a Prolific study id.\n"
    assert fake_prolific.requests == []


def test_sync_refuses_an_unknown_slug_a_study_off_prolific_and_a_missing_token(
    fake_prolific: FakeProlific, settings: Any
) -> None:
    on_fake(fake_prolific, "cqa")
    study_make(slug="local")

    assert run_failing("prolific_sync", "nope")[0] == "no study 'nope'"
    error = run_failing("prolific_sync", "local")[0]
    assert error.startswith("study 'local' has no Prolific study id")

    settings.PROLIFIC_API_TOKEN = ""
    error = run_failing("prolific_sync", "cqa")[0]
    assert error.startswith("No Prolific API token is set.")
    assert "PROLIFIC_API_TOKEN" in error
    assert fake_prolific.requests == []


def test_a_study_prolific_fails_on_is_named_and_the_others_are_still_synced(
    fake_prolific: FakeProlific,
) -> None:
    first = on_fake(fake_prolific, "alpha")
    broken = on_fake(fake_prolific, "beta")
    last = on_fake(fake_prolific, "gamma")
    for study in (first, last):
        returned, _ = working(fake_prolific, study, f"P-{study.slug}")
        fake_prolific.participant_return(returned)
    fake_prolific.fail_next("GET", f"/api/v1/studies/{broken.prolific_study_id}/", 403)

    error, out, err = run_failing("prolific_sync")

    assert error == "could not sync 1 study/studies: beta"
    assert out.splitlines() == [
        "alpha: 1 submissions read, 1 changed, 1 participant(s) released; on Prolific: ACTIVE.",
        "gamma: 1 submissions read, 1 changed, 1 participant(s) released; on Prolific: ACTIVE.",
    ]
    assert err.startswith("beta: Prolific answered 403 to GET api/v1/studies/")
    assert "Injected failure." in err
    assert set(Participant.objects.values_list("prolific_pid", "status")) == {
        ("P-alpha", "returned"),
        ("P-gamma", "returned"),
    }
    broken.refresh_from_db()
    assert broken.prolific_synced_at is None


# ---- prolific_hook_setup -----------------------------------------------------------------

TARGET = "https://study.example.org/prolific/hooks/"


def test_hook_setup_with_a_new_secret_subscribes_and_confirms_both_events(
    fake_prolific: FakeProlific,
) -> None:
    out, _ = run("prolific_hook_setup", "ws1", TARGET, "--new-secret")

    secret = fake_prolific.hook_secrets["ws1"]["value"]
    assert out.splitlines()[-1] == f"PROLIFIC_HOOK_SECRET={secret}"
    assert fake_prolific.hook_secret == secret
    subscriptions = sorted(fake_prolific.subscriptions.values(), key=lambda s: s["event_type"])
    assert [
        (s["event_type"], s["target_url"], s["workspace_id"], s["is_enabled"], s["confirmed"])
        for s in subscriptions
    ] == [
        ("study.status.change", TARGET, "ws1", True, True),
        ("submission.status.change", TARGET, "ws1", True, True),
    ]
    for subscription in subscriptions:
        assert f"Subscribed {TARGET} to {subscription['event_type']} ({subscription['id']})." in out


def test_hook_setup_reads_the_existing_secret_or_fails_clearly_without_one(
    fake_prolific: FakeProlific,
) -> None:
    error, out, _ = run_failing("prolific_hook_setup", "ws1", TARGET)
    assert error == "workspace ws1 has no hook secret yet; run again with --new-secret"
    assert fake_prolific.subscriptions == {}
    assert out == ""

    run("prolific_hook_setup", "ws1", TARGET, "--new-secret")
    secret = fake_prolific.hook_secrets["ws1"]
    fake_prolific.subscriptions.clear()

    out, _ = run("prolific_hook_setup", "ws1", TARGET)

    assert out.splitlines()[-1] == f"PROLIFIC_HOOK_SECRET={secret['value']}"
    assert fake_prolific.hook_secrets["ws1"] == secret  # not replaced
    assert sorted(
        (s["event_type"], s["confirmed"]) for s in fake_prolific.subscriptions.values()
    ) == [("study.status.change", True), ("submission.status.change", True)]


@pytest.mark.parametrize(
    "target", ["http://study.example.org/prolific/hooks/", "study.example.org/hooks/", "https://"]
)
def test_hook_setup_refuses_a_target_that_is_not_https_before_sending(
    fake_prolific: FakeProlific, target: str
) -> None:
    error, out, _ = run_failing("prolific_hook_setup", "ws1", target, "--new-secret")

    assert error.startswith(f"'{target}' is not an https address")
    assert out == ""
    assert fake_prolific.requests == []
    assert fake_prolific.hook_secrets == {}


def test_hook_setup_reports_prolifics_refusal(fake_prolific: FakeProlific) -> None:
    fake_prolific.tokens = set()

    error, _, _ = run_failing("prolific_hook_setup", "ws1", TARGET, "--new-secret")

    assert error.startswith("Prolific refused the API token (Not authenticated: Invalid token.)")
    assert fake_prolific.hook_secrets == {}
