"""Write a stored questionnaire version as TOML or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyapp.studies.services import StudyImportError, questionnaire_find
from studyformats.questionnaire import Questionnaire, questionnaire_toml

EXPORT_FORMATS = ("toml", "json")


def questionnaire_text(document: Questionnaire, kind: str) -> str:
    """The document as a file that ``questionnaire_import`` reads back to the same document."""
    if kind == "json":
        return json.dumps(document.as_data(), ensure_ascii=False, indent=2) + "\n"
    return questionnaire_toml(document)


class Command(BaseCommand):
    help = (
        "Write the questionnaire NAME (its latest version) or NAME@VERSION as TOML or JSON, "
        "to standard output or a file. The file imports back to the same document."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "questionnaire", metavar="NAME[@VERSION]", help="a stored questionnaire, e.g. plain-5@1"
        )
        parser.add_argument(
            "--format", choices=EXPORT_FORMATS, default="toml", help="toml (default) or json"
        )
        parser.add_argument(
            "--output", type=Path, metavar="FILE", help="write to FILE (default: standard output)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        spec = options["questionnaire"]
        if spec.endswith((".toml", ".json")):
            raise CommandError(
                f"'{spec}' is a file name; give a stored questionnaire as NAME or NAME@VERSION"
            )
        try:
            stored = questionnaire_find(spec)
        except StudyImportError as exc:
            raise CommandError(str(exc)) from None
        text = questionnaire_text(stored.document, options["format"])
        output: Path | None = options["output"]
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
        self.stderr.write(f"Wrote {stored} to {output}.")
