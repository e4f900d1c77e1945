"""What keeping up with Prolific costs: a webhook delivery against a rated item, and a sync.

Every submission makes Prolific call the hook a few times (active, awaiting review, approved),
and ``prolific_sync`` may run every few minutes. This prints, measured in one run:

* ``hook``: CPU ms of this process per signed "returned" delivery posted to
  ``/prolific/hooks/`` (Django's test client, so the middleware, the signature check, the
  delivery record and the release all run), each releasing a participant's unrated items;
* ``item``: CPU ms per rated item posted to the participant page the same way, the baseline;
* the ratio of the two;
* ``sync``: wall ms of ``prolific_sync`` over every submission those participants made
  (195 with the defaults, against the paper's 117), read from a fake Prolific on loopback,
  the first time (every submission new) and again (nothing changed).

Each CPU figure is the best of ``--repeats`` rounds (other processes only ever add time).
Run from the project root (SQLite by default; DATABASE_URL for PostgreSQL; a test database is
created and dropped)::

    .venv/bin/python benchmarks/prolific_status.py [--repeats 3] [--calls 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from studyapp.models import Study  # noqa: E402
from studyapp.prolific.client import ProlificClient  # noqa: E402
from studyapp.prolific.services import prolific_sync  # noqa: E402
from tests.prolific.fake import FakeProlific, serve, signed_delivery  # noqa: E402
from tests.prolific.hook_support import hook_post  # noqa: E402
from tests.studyapp.participant_pool import (  # noqa: E402
    page_instructed_value,
    page_step_token,
    rating_post,
    step_url,
    study_make,
)

SECRET = "benchmark-secret"


def arrive(study: Study, fake: FakeProlific) -> tuple[Client, str, str]:
    """A participant sent by the fake Prolific, consented: (browser, their id, submission id)."""
    submission_id, link = fake.participant_arrive(study.prolific_study_id)
    pid = fake.submissions[submission_id]["participant_id"]
    browser = Client()
    browser.get(link.split("study.example.org", 1)[1])
    browser.post(f"/s/{study.slug}/consent/", {"decision": "agree"})
    return browser, pid, submission_id


def item_cpu_ms(study: Study, fake: FakeProlific, items: int) -> float:
    """CPU ms per rated item posted, over ``items`` items of participants arriving in turn."""
    spent = 0.0
    posted = 0
    while posted < items:
        browser, _, _ = arrive(study, fake)
        while posted < items:
            page = browser.get(step_url(study))
            if page.status_code != 200:
                break
            html = page.content.decode()
            token = page_step_token(html)
            value = page_instructed_value(html) if token.startswith("check-") else 4
            start = time.process_time()
            browser.post(step_url(study), rating_post(token, value))
            if not token.startswith("check-"):
                spent += time.process_time() - start
                posted += 1
    return 1000 * spent / posted


def hook_cpu_ms(study: Study, fake: FakeProlific, deliveries: int) -> float:
    """CPU ms per "returned" delivery, each for a participant still working."""
    working = [arrive(study, fake) for _ in range(deliveries)]
    spent = 0.0
    for _, pid, submission_id in working:
        payload = {
            "resource_id": submission_id,
            "event_type": "submission.status.change",
            "participant_id": pid,
            "status": "RETURNED",
        }
        body, headers = signed_delivery(payload, SECRET)
        start = time.process_time()
        response = hook_post(body, headers)
        spent += time.process_time() - start
        assert response.json() == {"detail": "released"}, response.content
    return 1000 * spent / deliveries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds, best kept (default 3)")
    parser.add_argument("--calls", type=int, default=60, help="hooks and items a round")
    args = parser.parse_args(argv)

    setup_test_environment()
    settings.PROLIFIC_HOOK_SECRET = SECRET
    settings.PARTICIPANT_START_RATE = "1000000/hour"
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    fake = FakeProlific()
    try:
        with serve(fake) as base_url:
            settings.PROLIFIC_API_TOKEN = "test-token"
            settings.PROLIFIC_API_URL = base_url
            places = 2 * args.repeats * args.calls
            prolific_id = fake.add_study(
                status="ACTIVE",
                total_available_places=places,
                external_study_url="https://study.example.org/s/bench/?PROLIFIC_PID="
                "{{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
            )
            study = study_make(slug="bench", questions=150, prolific_study_id=prolific_id)
            hook, item = [], []
            for _ in range(args.repeats):
                item.append(item_cpu_ms(study, fake, args.calls))
                hook.append(hook_cpu_ms(study, fake, args.calls))
            submissions = len(fake.submissions)
            with ProlificClient.from_settings() as client:
                start = time.perf_counter()
                first = prolific_sync(study=study, client=client)
                first_ms = 1000 * (time.perf_counter() - start)
                start = time.perf_counter()
                again = prolific_sync(study=study, client=client)
                again_ms = 1000 * (time.perf_counter() - start)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    figures: dict[str, Any] = {
        "hook_cpu_ms": round(min(hook), 2),
        "item_cpu_ms": round(min(item), 2),
        "hook_over_item": round(min(hook) / min(item), 2),
        "sync_submissions": submissions,
        "sync_first_ms": round(first_ms, 1),
        "sync_first_changed": first.changed,
        "sync_again_ms": round(again_ms, 1),
        "sync_again_changed": again.changed,
        "database": connection.vendor,
        "python": platform.python_version(),
    }
    print(f"hook: {figures['hook_cpu_ms']} ms CPU per delivery (best of {args.repeats})")
    print(f"item: {figures['item_cpu_ms']} ms CPU per rated item (the baseline)")
    print(f"hook / item: {figures['hook_over_item']}x")
    print(
        f"sync of {submissions} submissions: {figures['sync_first_ms']} ms the first time "
        f"({first.changed} new), {figures['sync_again_ms']} ms again ({again.changed} changed)"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
