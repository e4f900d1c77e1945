"""Store a questionnaire file (TOML or JSON) as a version of a named questionnaire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyapp.models import Questionnaire
from studyapp.questionnaires import questionnaire_renamed
from studyapp.studies.services import questionnaire_import
from studyformats.questionnaire import QuestionnaireError, questionnaire_read


def questionnaire_import_file(path: Path, *, name: str | None = None) -> tuple[Questionnaire, str]:
    """Validate and store the file; return the stored version and a line saying what happened.

    Raises ``QuestionnaireError`` (one line naming the key, or the line of a syntax error)
    and stores nothing when the file cannot be used.
    """
    document = questionnaire_read(path)
    if name:
        document = questionnaire_renamed(document, name)
    before = Questionnaire.objects.filter(name=document.name).order_by("-version").first()
    stored, changed = questionnaire_import(document)
    label = f"questionnaire '{stored.name}' version {stored.version}"
    if not changed:
        return stored, f"Unchanged: {label} already holds this document."
    if before is None:
        return stored, f"Stored {label} (new)."
    if stored.version != before.version:
        return stored, (
            f"Stored {label}: version {before.version} is frozen (a study using it has "
            "participants), so the change became a new version."
        )
    return stored, f"Updated {label} (no study with participants uses it yet)."


class Command(BaseCommand):
    help = (
        "Store a questionnaire file (.toml or .json): its dimensions, scale and attention "
        "checks. The same document again changes nothing; a changed one updates the latest "
        "version, or becomes the next version when that one is frozen (a study using it has "
        "participants). A file that cannot be used is explained and nothing is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", type=Path, help="the .toml or .json file")
        parser.add_argument(
            "--name",
            help="store it under this name (a slug) instead of the file's own 'name'",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            _stored, message = questionnaire_import_file(options["file"], name=options["name"])
        except QuestionnaireError as exc:
            raise CommandError(f"nothing was stored: {exc}") from None
        self.stdout.write(self.style.SUCCESS(message))
