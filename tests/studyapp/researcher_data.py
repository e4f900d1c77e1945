"""Builders for researcher-side tests: accounts of each kind, and participants who finished."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from studyapp.models import Participant, Study
from studyapp.participation import queries
from studyapp.participation.services import participant_start, step_mark_shown
from studyformats.questionnaire import PLAIN_5
from tests.studyapp.participant_pool import rating_record

PASSWORD = "correct-horse-battery"


def user_make(kind: str) -> User | None:
    """A user of one kind: 'anonymous' (None), 'member' (not staff), 'staff' (no permissions),
    'researcher' (staff in the researcher group) or 'superuser'."""
    if kind == "anonymous":
        return None
    user = User.objects.create_user(username=kind, password=PASSWORD)
    if kind == "researcher":
        user.is_staff = True
        user.groups.add(Group.objects.get(name="researcher"))
    elif kind == "staff":
        user.is_staff = True
    elif kind == "superuser":
        user.is_staff = user.is_superuser = True
    user.save()
    return user


def client_for(kind: str) -> Client:
    """A test client logged in (session) as a user of ``kind``."""
    client = Client()
    user = user_make(kind)
    if user is not None:
        client.force_login(user)
    return client


def token_client_for(kind: str) -> Client:
    """A client that sends an API token of a ``kind`` user and has no session."""
    user = user_make(kind)
    assert user is not None
    token = Token.objects.create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def participant_finish(
    study: Study,
    pid: str,
    *,
    seed: int = 0,
    fail_checks: int = 0,
    items: int | None = None,
    start: datetime | None = None,
) -> Participant:
    """Admit ``pid`` and answer their steps through the services, 7 s a step.

    The first ``fail_checks`` attention checks are failed; with ``items`` only that many
    rated items are answered (the participant stays active).
    """
    now = start or timezone.now() - timedelta(minutes=30)
    participant = participant_start(study=study, prolific_pid=pid, rng=random.Random(seed), now=now)
    # Varied, reproducible ratings, so a swapped column cannot go unnoticed.
    values_rng = random.Random(seed)
    rated = failed = 0
    while (step := queries.participant_current_step(participant)) is not None:
        if step.check is None and items is not None and rated >= items:
            break
        step_mark_shown(step=step, now=now)
        now += timedelta(seconds=7)
        if step.check is not None:
            value = step.check.instructed_value
            if failed < fail_checks:
                value = value % 5 + 1
                failed += 1
            values = dict.fromkeys(PLAIN_5.keys, value)
        else:
            values = {dimension: values_rng.randint(1, 5) for dimension in PLAIN_5.keys}
            rated += 1
        rating_record(participant=participant, step_token=step.token, values=values, now=now)
    participant.refresh_from_db()
    return participant
