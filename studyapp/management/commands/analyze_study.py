"""Analyse a study's ratings and write the report (report.html, summary.json, tables, figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyapp.models import Study, StudyReport
from studyapp.reports import ReportError, study_report_run
from studyapp.selectors import study_get


def study_analyze(*, slug: str, out: Path | None = None) -> StudyReport:
    """Run the analysis on study ``slug`` and record the report (the admin links the latest).

    Raises CommandError for an unknown study, a study without ratings, ratings the analysis
    cannot use, or an output folder that cannot be written.
    """
    study = study_get(slug=slug)
    if study is None:
        known = ", ".join(Study.objects.order_by("slug").values_list("slug", flat=True)) or "none"
        raise CommandError(f"no study '{slug}' (studies: {known})")
    if out is not None and out.exists() and not out.is_dir():
        raise CommandError(f"{out} is a file; give a folder for the report")
    try:
        return study_report_run(study=study, out_dir=out)
    except ReportError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Analyse the ratings of study SLUG (exclusions, ANOVA, Kruskal–Wallis, post-hoc tests, "
        "OLS, ordinal and mixed models, reliability) and write report.html, summary.json, "
        "tables/*.csv and figures/*.png to --out. The admin study page links to the latest report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the study's short name")
        parser.add_argument(
            "--out",
            type=Path,
            help="folder for the report (default: runs/reports/SLUG/<date-time>/)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = study_analyze(slug=options["slug"], out=options["out"])
        summary = report.summary
        self.stdout.write(
            self.style.SUCCESS(
                f"Analysed {report.n_ratings} rated items from {report.n_participants} participants; "
                f"wrote {Path(report.out_dir) / 'report.html'}."
            )
        )
        for problem in summary.get("not_computable", []):
            self.stdout.write(
                self.style.WARNING(f"not computable: {problem['what']}: {problem['reason']}")
            )
