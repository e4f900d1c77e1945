"""demo_setup: the researcher login, a live demo study and a participant link."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from studyapp.management.commands import demo_setup
from studyapp.models import Study
from tests.studyapp.participant_pool import explanation_lines, study_make

pytestmark = pytest.mark.django_db
LINK = re.compile(
    r"http://127\.0\.0\.1:8000(/s/demo/\?PROLIFIC_PID=demo-[0-9a-f]{12}&STUDY_ID=demo&SESSION_ID=[0-9a-f]{12})"
)


@pytest.fixture
def fixture_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "demo_explanations.jsonl"
    path.write_text("\n".join(explanation_lines(questions=16)), encoding="utf-8")
    monkeypatch.setattr(demo_setup, "DEMO_FIXTURE", path)
    return path


def _run(*args: str) -> str:
    out = StringIO()
    call_command("demo_setup", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_live_demo_study_and_prints_a_working_link(fixture_file: Path) -> None:
    output = _run()

    study = Study.objects.get(slug="demo")
    assert study.status == Study.Status.LIVE
    assert study.questions.count() == 16
    assert "Researcher login created" in output
    match = LINK.search(output)
    assert match is not None, output
    response = Client().get(match.group(1))
    assert response.status_code == 302
    assert response["Location"] == "/s/demo/consent/"


def test_running_it_again_keeps_the_study_and_prints_a_new_link(fixture_file: Path) -> None:
    first = _run()
    ids = list(Study.objects.get(slug="demo").conditions.values_list("id", flat=True))

    second = _run()

    assert "A researcher login already exists" in second
    assert list(Study.objects.get(slug="demo").conditions.values_list("id", flat=True)) == ids
    assert LINK.search(first).group(1) != LINK.search(second).group(1)  # type: ignore[union-attr]


def test_an_existing_demo_study_is_opened_not_reimported(fixture_file: Path) -> None:
    existing = study_make(slug="demo", questions=20, live=False)

    output = _run("--base-url", "http://localhost:9000/")

    existing.refresh_from_db()
    assert existing.status == Study.Status.LIVE
    assert existing.questions.count() == 20
    assert "http://localhost:9000/s/demo/?PROLIFIC_PID=demo-" in output


def test_a_closed_demo_study_stays_closed_with_a_warning(fixture_file: Path) -> None:
    study_make(slug="demo", status=Study.Status.CLOSED)

    output = _run()

    assert Study.objects.get(slug="demo").status == Study.Status.CLOSED
    assert "The demo study is closed" in output


def test_without_a_study_or_fixture_it_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_setup, "DEMO_FIXTURE", tmp_path / "absent.jsonl")

    output = _run()

    assert "No demo study" in output
    assert "absent.jsonl is missing" in output
    assert not Study.objects.exists()


def test_it_also_opens_a_readable_study_from_the_fixture(fixture_file: Path) -> None:
    study_make(slug="demo", questions=16)

    output = _run()

    readable = Study.objects.get(slug=demo_setup.READABLE_SLUG)
    assert readable.status == Study.Status.LIVE
    assert readable.questions.count() == 16
    match = re.search(
        r"hand-written explanations: http://127\.0\.0\.1:8000(/s/demo-readable/\S+)", output
    )
    assert match is not None, output
    assert Client().get(match.group(1)).status_code == 302


def test_an_existing_account_named_researcher_is_kept_not_recreated(fixture_file: Path) -> None:
    get_user_model().objects.create_user(username="researcher", password="x", is_staff=True)

    output = _run()

    assert "Researcher login created" not in output
    assert "A researcher login already exists" in output
    assert get_user_model().objects.count() == 1
    assert Study.objects.get(slug="demo").status == Study.Status.LIVE


def test_it_prints_how_to_set_a_new_password_on_every_run(fixture_file: Path) -> None:
    first = _run()
    second = _run()

    line = "manage.py changepassword researcher"
    assert line in first
    assert line in second
    assert "password '" not in second


def test_the_password_hint_names_no_account_that_does_not_exist(fixture_file: Path) -> None:
    get_user_model().objects.create_superuser(username="owner", email="", password="x" * 12)

    output = _run()

    assert "changepassword researcher" not in output
    assert "manage.py changepassword USERNAME" in output
