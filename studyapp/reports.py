"""Running the analysis on a study's ratings and remembering where the report was written."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from analysis.errors import AnalysisError
from analysis.options import OVERRIDE_OPTIONS
from analysis.plan import AnalysisPlan
from studyapp.exports import ratings_columns, ratings_rows, study_covariates
from studyapp.models import Study, StudyReport
from studyapp.plans import study_plan

logger = logging.getLogger(__name__)

# Demographic controls of the regression for a study without a registered plan; only used
# when every rated item has them, since rows without them would drop out of the controlled
# model and change its sample.
REPORT_COVARIATES = ("age", "sex")


class ReportError(Exception):
    """The analysis could not run on this study's ratings; the message says why."""


def study_report_record(
    *, study: Study, out_dir: Path, summary: dict[str, Any], created_at: datetime | None = None
) -> StudyReport:
    """Remember an analysis report written to ``out_dir`` so the dashboard can link to it."""
    return StudyReport.objects.create(
        study=study,
        out_dir=str(Path(out_dir).resolve()),
        created_at=created_at or timezone.now(),
        n_participants=int(summary.get("n_participants") or 0),
        n_ratings=int(summary.get("n_ratings") or 0),
        summary=summary,
    )


def report_dir_default(study: Study, *, now: datetime | None = None) -> Path:
    stamp = (now or timezone.now()).strftime("%Y%m%d-%H%M%S")
    return Path(settings.RUNS_DIR) / "reports" / study.slug / stamp


# The options that override single settings of a plan (``analysis.report.report_write``).
PLAN_OVERRIDES = OVERRIDE_OPTIONS


def study_report_run(
    *,
    study: Study,
    out_dir: Path | None = None,
    plan: AnalysisPlan | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StudyReport:
    """Analyse the study's current ratings export, write the report and record it.

    The analysis runs under ``plan``, by default the plan the study registered (else the
    ``standard`` plan); the report says whether it ran under the registered plan
    unchanged. ``overrides`` (keys of ``PLAN_OVERRIDES``) change single settings and are
    listed in the report as deviations. A study that registered no plan, analysed without
    a named plan, keeps its demographic controls: age and sex, when imported for everyone,
    enter the regression as covariates (the report lists that as a deviation from
    ``standard``). Raises ``ReportError`` with the analysis's own message when the plan or
    the data cannot be analysed (no ratings yet, a single condition, ...).
    """
    # Imported here: the analysis stack (statsmodels, matplotlib) is heavy and only this
    # action needs it, so admin pages and the API do not pay for it on startup.
    import pandas as pd

    from analysis.report import report_write

    options = dict(overrides or {})
    unknown = sorted(set(options) - set(PLAN_OVERRIDES))
    if unknown:
        raise ReportError(
            f"unknown plan override(s) {', '.join(unknown)}; overrides are: "
            + ", ".join(PLAN_OVERRIDES)
        )
    rows = ratings_rows(study)
    if not rows:
        raise ReportError(f"study '{study.slug}' has no ratings yet; there is nothing to analyse")
    columns = ratings_columns(
        covariates=study_covariates([study]), questionnaire=study.questionnaire_document
    )
    frame = pd.DataFrame(rows, columns=columns)
    try:
        used = plan if plan is not None else study_plan(study)
    except AnalysisError as exc:
        raise ReportError(str(exc)) from None
    if plan is None and not study.plan_registered and options.get("covariates") is None:
        covariates = [
            name
            for name in REPORT_COVARIATES
            if name in frame.columns and frame[name].notna().all()
        ]
        options["covariates"] = covariates or None
    now = timezone.now()
    target = out_dir or report_dir_default(study, now=now)
    try:
        summary = report_write(
            frame,
            target,
            plan=used,
            registered_sha256=study.plan_sha256 or None,
            **options,
        )
    except AnalysisError as exc:
        raise ReportError(str(exc)) from None
    except Exception as exc:
        # A failure inside a statistics routine must not become a server error page for
        # the researcher who pressed the button; it is logged in full for the developers.
        logger.exception("analysis of study %s failed", study.slug)
        raise ReportError(f"the analysis failed ({type(exc).__name__}: {exc})") from None
    return study_report_record(study=study, out_dir=target, summary=summary, created_at=now)


def report_html_path(report: StudyReport) -> Path | None:
    """The report's HTML file, or None when it was moved or deleted since."""
    path = Path(report.out_dir) / "report.html"
    return path if path.is_file() else None
