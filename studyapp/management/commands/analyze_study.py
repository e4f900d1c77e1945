"""Analyse a study's ratings and write the report (report.html, summary.json, tables, figures)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.errors import AnalysisError
from analysis.options import plan_overrides_add
from analysis.plan import plan_load
from studyapp.models import Study, StudyReport
from studyapp.reports import PLAN_OVERRIDES, ReportError, study_report_run
from studyapp.selectors import study_get


def study_analyze(
    *,
    slug: str,
    out: Path | None = None,
    plan: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StudyReport:
    """Run the analysis on study ``slug`` and record the report (the admin links the latest).

    ``plan`` is a shipped plan's name or a TOML file (default: the plan the study
    registered, else ``standard``); ``overrides`` change single settings of it (see
    ``studyapp.reports.PLAN_OVERRIDES``). Raises CommandError for an unknown study, a plan
    that cannot be read, a study without ratings, ratings the analysis cannot use, or an
    output folder that cannot be written.
    """
    study = study_get(slug=slug)
    if study is None:
        known = ", ".join(Study.objects.order_by("slug").values_list("slug", flat=True)) or "none"
        raise CommandError(f"no study '{slug}' (studies: {known})")
    if out is not None and out.exists() and not out.is_dir():
        raise CommandError(f"{out} is a file; give a folder for the report")
    try:
        chosen = plan_load(plan) if plan is not None else None
    except AnalysisError as exc:
        raise CommandError(str(exc)) from None
    try:
        return study_report_run(study=study, out_dir=out, plan=chosen, overrides=overrides)
    except ReportError as exc:
        raise CommandError(str(exc)) from None


def plan_line(plan: Mapping[str, Any]) -> str:
    """One line on the plan a report ran under, its deviations and its registration."""
    line = f"Plan '{plan.get('name')}' (sha256 {plan.get('sha256')})"
    deviations = plan.get("deviations") or []
    if deviations:
        line += ", deviations: " + ", ".join(str(d.get("setting")) for d in deviations)
    registered = plan.get("registered")
    if registered is None:
        return line + "; the study registered no plan."
    if registered.get("unchanged"):
        return line + "; ran under the study's registered plan unchanged."
    if registered.get("sha256") == plan.get("sha256"):
        return line + "; the study's registered plan, changed by the deviations."
    return line + f"; not the study's registered plan (sha256 {registered.get('sha256')})."


class Command(BaseCommand):
    help = (
        "Analyse the ratings of study SLUG under an analysis plan (by default the plan the "
        "study registered, else 'standard') and write report.html, summary.json, "
        "tables/*.csv and figures/*.png to --out. The options after --plan override single "
        "settings of the plan; the report lists each as a deviation and says whether the "
        "analysis ran under the registered plan unchanged. The admin study page links to "
        "the latest report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the study's short name")
        parser.add_argument(
            "--out",
            type=Path,
            help="folder for the report (default: runs/reports/SLUG/<date-time>/)",
        )
        parser.add_argument(
            "--plan",
            metavar="paper|standard|PLAN.toml",
            help="the analysis plan (default: the study's registered plan, else 'standard')",
        )
        plan_overrides_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        overrides = {name: options[name] for name in PLAN_OVERRIDES if options[name] is not None}
        report = study_analyze(
            slug=options["slug"], out=options["out"], plan=options["plan"], overrides=overrides
        )
        summary = report.summary
        self.stdout.write(
            self.style.SUCCESS(
                f"Analysed {report.n_ratings} rated items from {report.n_participants} participants; "
                f"wrote {Path(report.out_dir) / 'report.html'}."
            )
        )
        self.stdout.write(plan_line(summary.get("plan") or {}))
        for problem in summary.get("not_computable", []):
            self.stdout.write(
                self.style.WARNING(f"not computable: {problem['what']}: {problem['reason']}")
            )
