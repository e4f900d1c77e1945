"""Write a study's ratings export (the CSV format of docs/formats.md) to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyapp.exports import ratings_write_csv
from studyapp.models import Study


def ratings_export_file(*, slug: str, out: Path, include_prolific_ids: bool = False) -> int:
    """Export the study ``slug`` to ``out``; return the number of rows written.

    The file is written next to its final name and renamed at the end, so an interrupted
    export never leaves a truncated CSV that looks complete.
    """
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        known = ", ".join(Study.objects.order_by("slug").values_list("slug", flat=True)) or "none"
        raise CommandError(f"no study '{slug}' (studies: {known})")
    if out.is_dir():
        raise CommandError(f"{out} is a folder; give a file name such as {out / (slug + '.csv')}")
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            count = ratings_write_csv(study, handle, include_prolific_ids=include_prolific_ids)
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    return count


class Command(BaseCommand):
    help = (
        "Export the ratings of study SLUG as CSV, one row per rated item. Participants are "
        "pseudonymised; excluded participants are flagged, not dropped; demographic columns "
        "are added when demographics were imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the study's short name")
        parser.add_argument("--out", required=True, type=Path, help="the CSV file to write")
        parser.add_argument(
            "--include-prolific-ids",
            action="store_true",
            help="add a prolific_pid column with the raw Prolific IDs (personal data: share "
            "the file only where that is allowed)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = ratings_export_file(
            slug=options["slug"],
            out=options["out"],
            include_prolific_ids=options["include_prolific_ids"],
        )
        if count == 0:
            self.stdout.write(
                self.style.WARNING(
                    f"Study '{options['slug']}' has no ratings yet; wrote the header only."
                )
            )
        self.stdout.write(self.style.SUCCESS(f"Wrote {count} rated items to {options['out']}."))
