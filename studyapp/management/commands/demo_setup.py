"""Prepare the demo: a researcher login (printed once), a live demo study and a participant link.

The command also prints how to set a new researcher password, as the first is shown only once.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from studyapp.models import Study
from studyapp.studies.services import StudyImportError, study_import_file, study_status_change

DEMO_USERNAME = "researcher"
PASSWORD_CHANGE_COMMAND = ".venv/bin/python manage.py changepassword"
DEMO_SLUG = "demo"
# The tiny demo students write barely readable text; this second study shows the survey with
# hand-written explanations of the same shape.
READABLE_SLUG = "demo-readable"
DEMO_FIXTURE = Path(settings.BASE_DIR) / "studyapp" / "fixtures" / "demo_explanations.jsonl"


def researcher_ensure(*, username: str = DEMO_USERNAME) -> str | None:
    """Create a staff researcher account if no superuser exists; return its new password.

    Nothing is created (None) when a superuser or an account named ``username`` exists.
    """
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    if user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists():
        return None
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=username, email="", password=password)
    return password


def password_change_hint(*, username: str = DEMO_USERNAME) -> str:
    """The command that sets a new password, for the demo researcher when that account exists."""
    user_model = get_user_model()
    if user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists():
        return f"To set a new password for '{username}': {PASSWORD_CHANGE_COMMAND} {username}"
    return f"To set a new password for an account: {PASSWORD_CHANGE_COMMAND} USERNAME"


def demo_study_ensure(*, slug: str = DEMO_SLUG, fixture: Path | None = None) -> Study | None:
    """Return the live demo study, creating it from the bundled fixture when it is missing.

    A demo study that already exists (for example one the distillation demo created from
    its own explanations) is only opened, never re-imported. None when there is neither a
    study nor a fixture.
    """
    fixture = fixture or DEMO_FIXTURE
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        if not fixture.is_file():
            return None
        try:
            study, _ = study_import_file(
                slug=slug, path=fixture, title="Rating explanations", live=True
            )
        except StudyImportError as exc:
            raise CommandError(str(exc)) from None
    elif study.status in (Study.Status.DRAFT, Study.Status.PAUSED):
        study_status_change(study=study, status=Study.Status.LIVE)
    return study


def participant_link(*, study: Study, base_url: str) -> str:
    """A ready-to-open entry link with fresh, made-up Prolific IDs."""
    entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
    return (
        f"{base_url.rstrip('/')}{entry}?PROLIFIC_PID=demo-{secrets.token_hex(6)}"
        f"&STUDY_ID={study.slug}&SESSION_ID={secrets.token_hex(6)}"
    )


class Command(BaseCommand):
    help = (
        "Create the demo researcher login if none exists and print it; make sure the live "
        "demo study exists and print a participant link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="where the server runs, for the printed link (default http://127.0.0.1:8000)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = researcher_ensure()
        if password is None:
            self.stdout.write("A researcher login already exists; use it at /admin/.")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Researcher login created (shown once): user '{DEMO_USERNAME}', "
                    f"password '{password}'"
                )
            )
        self.stdout.write(password_change_hint())
        study = demo_study_ensure()
        if study is None:
            self.stdout.write(
                self.style.WARNING(
                    f"No demo study: '{DEMO_SLUG}' does not exist and {DEMO_FIXTURE} is missing."
                )
            )
            return
        if study.status != Study.Status.LIVE:
            self.stdout.write(
                self.style.WARNING(
                    f"The demo study is {study.get_status_display().lower()}; "
                    "open it in the admin to take part."
                )
            )
        self.stdout.write(
            f"Participant link (each open of a new link is a new participant): "
            f"{participant_link(study=study, base_url=options['base_url'])}"
        )
        readable = demo_study_ensure(slug=READABLE_SLUG)
        if readable is not None:
            self.stdout.write(
                f"The same survey with hand-written explanations: "
                f"{participant_link(study=readable, base_url=options['base_url'])}"
            )
