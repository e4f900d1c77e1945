"""The run records in the admin: readable tables, nothing to save or delete."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from distillation.admin import seconds_text, settings_flatten
from distillation.models import DistillationRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client: Client) -> Client:
    user = get_user_model().objects.create_superuser(username="owner", email="", password="x" * 16)
    client.force_login(user)
    return client


@pytest.fixture
def run() -> DistillationRun:
    record = DistillationRun.objects.create(
        name="demo",
        config_path="configs/demo.toml",
        config={
            "run": {"name": "demo", "seed": 0},
            "training": {"steps": 240, "batch_size": 8},
            "students": [{"method": "mt", "data_variant": "original"}],
        },
        stages=["data", "train", "study"],
        output_dir="runs/demo",
        status=DistillationRun.Status.SUCCEEDED,
        metrics={
            "stages_run": ["train", "study"],
            "stages_skipped": ["data"],
            "stage_seconds": {"train": 75.5, "study": 1.25},
            "accuracy": [
                {
                    "model": "tiny-t5",
                    "size": "tiny",
                    "method": "mt",
                    "data_variant": "original",
                    "seeds": 1,
                    "accuracy_mean": 0.4375,
                    "accuracy_sd": "",
                }
            ],
            "notes": ["<b>not bold</b>"],
        },
        study_slug="demo",
    )
    DistillationRun.objects.filter(pk=record.pk).update(
        finished_at=record.started_at + timedelta(seconds=77)
    )
    record.refresh_from_db()
    return record


def _table(page: BeautifulSoup, field: str) -> list[list[str]]:
    box = page.select_one(f".field-{field}")
    assert box is not None, field
    return [
        [cell.get_text(strip=True) for cell in row.find_all(["th", "td"])]
        for row in box.select("table tr")
    ]


def test_a_run_record_shows_tables_not_json(admin_client_logged_in: Client, run) -> None:
    url = reverse("admin:distillation_distillationrun_change", args=[run.pk])
    response = admin_client_logged_in.get(url)

    assert response.status_code == 200
    page = BeautifulSoup(response.content, "html.parser")
    assert _table(page, "accuracy") == [
        ["model", "size", "method", "data variant", "seeds", "accuracy (mean)", "sd"],
        ["tiny-t5", "tiny", "mt", "original", "1", "0.438", "–"],
    ]
    assert _table(page, "stage_table") == [
        ["stage", "outcome", "time"],
        ["data", "skipped: already complete", "–"],
        ["train", "ran", "1 min 16 s"],
        ["study", "ran", "1.2 s"],
    ]
    config = _table(page, "config_table")
    assert ["training.steps", "240"] in config
    assert ["students[1].method", "mt"] in config
    assert page.select_one(".field-duration").get_text(" ", strip=True).endswith("1 min 17 s")
    # Notes are text, escaped, not markup.
    assert page.select_one(".field-notes b") is None
    assert "{" not in page.select_one("#content").get_text()


def test_a_run_record_cannot_be_saved_or_deleted(admin_client_logged_in: Client, run) -> None:
    url = reverse("admin:distillation_distillationrun_change", args=[run.pk])
    page = BeautifulSoup(admin_client_logged_in.get(url).content, "html.parser")

    assert page.select('input[name="_save"], input[name="_continue"]') == []
    assert page.select("a.deletelink") == []
    assert admin_client_logged_in.post(url, {"name": "changed"}).status_code == 403
    delete = reverse("admin:distillation_distillationrun_delete", args=[run.pk])
    assert admin_client_logged_in.post(delete, {"post": "yes"}).status_code == 403
    assert DistillationRun.objects.get(pk=run.pk).name == "demo"


def test_the_list_offers_no_delete_action(admin_client_logged_in: Client, run) -> None:
    response = admin_client_logged_in.get(reverse("admin:distillation_distillationrun_changelist"))

    page = BeautifulSoup(response.content, "html.parser")
    assert page.select('option[value="delete_selected"]') == []


def test_settings_flatten_and_seconds_text() -> None:
    assert settings_flatten({"a": {"b": True, "c": None}}) == [("a.b", "true"), ("a.c", "–")]
    assert [seconds_text(s) for s in (None, 4.04, 125, 7260)] == [
        "–",
        "4.0 s",
        "2 min 05 s",
        "2 h 01 min",
    ]
