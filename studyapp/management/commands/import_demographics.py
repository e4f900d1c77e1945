"""Import Prolific's demographic export (CSV) for a study's participants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyapp.demographics import (
    DemographicsFileError,
    DemographicsImportSummary,
    demographics_import,
    unmatched_message,
)
from studyapp.models import Study


def demographics_import_file(*, slug: str, path: Path) -> DemographicsImportSummary:
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        raise CommandError(f"no study '{slug}'")
    try:
        # utf-8-sig: Prolific's export (and spreadsheets re-saving it) may start with a BOM.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return demographics_import(study=study, lines=handle)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text") from None
    except DemographicsFileError as exc:
        raise CommandError(f"{path}: nothing was imported.\n{exc}") from None


class Command(BaseCommand):
    help = (
        "Import Prolific's demographic export (CSV with a 'Participant id' column) for study "
        "SLUG. Age, sex, country and the other columns join the ratings export. IDs that "
        "match no participant of the study are listed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the study's short name")
        parser.add_argument("csv", type=Path, help="Prolific's demographic export")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = demographics_import_file(slug=options["slug"], path=options["csv"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demographics of {summary.matched} participants stored ({summary.created} new, "
                f"{summary.updated} updated); columns: {', '.join(summary.columns)}."
            )
        )
        if summary.unmatched_ids:
            self.stdout.write(self.style.WARNING(unmatched_message(summary.unmatched_ids)))
