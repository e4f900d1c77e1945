"""Create (or bring up to date) a study from an explanations file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from analysis.errors import AnalysisError
from analysis.plan import AnalysisPlan, plan_load
from studyapp.importing import ExplanationsFileError, explanations_read
from studyapp.models import Explanation, Study
from studyapp.services import StudyConflictError, study_create_from_explanations

# The variables Prolific fills in when it sends a participant to the study URL.
PROLIFIC_QUERY = (
    "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)


def study_import_file(
    *,
    slug: str,
    path: Path,
    title: str | None = None,
    completion_code: str | None = None,
    per_condition: int | None = None,
    live: bool = False,
    plan: AnalysisPlan | str | Path | None = None,
) -> tuple[Study, int]:
    """Validate the whole file, then import it; return the study and how many explanations were new.

    ``plan`` is the analysis plan to register: a plan, a shipped plan's name or a TOML
    file's path (None: leave the study's plan as it is). Raises ``CommandError`` with every
    problem of the file, a plan that cannot be read, or a change to a frozen plan, and
    imports nothing then.
    """
    if plan is not None and not isinstance(plan, AnalysisPlan):
        try:
            plan = plan_load(plan)
        except AnalysisError as exc:
            raise CommandError(f"nothing was imported: {exc}") from None
    try:
        # utf-8-sig: a byte-order mark (Windows editors) is dropped, as in the admin upload.
        with path.open(encoding="utf-8-sig") as handle:
            records = explanations_read(handle)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text") from None
    except ExplanationsFileError as exc:
        raise CommandError(f"{path}: nothing was imported.\n{exc}") from None
    before = Explanation.objects.filter(condition__study__slug=slug).count()
    try:
        study = study_create_from_explanations(
            slug=slug,
            records=records,
            title=title,
            completion_code=completion_code,
            per_condition=per_condition,
            live=live,
            plan=plan,
        )
    except StudyConflictError as exc:
        raise CommandError(f"{path}: nothing was imported: {exc}") from None
    except ValidationError as exc:
        # A bad SLUG, title or completion code: the study's own checks, as in the admin form.
        if hasattr(exc, "error_dict"):
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
            )
        else:
            problems = " ".join(exc.messages)
        raise CommandError(f"nothing was imported: {problems}") from None
    after = Explanation.objects.filter(condition__study=study).count()
    return study, after - before


class Command(BaseCommand):
    help = (
        "Create the study SLUG from an explanations file (JSON Lines). Every line is checked "
        "first; if any is bad, all bad lines are listed and nothing is imported. Running it "
        "again with the same file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="short name used in the participant URL, e.g. 'cqa-2024'")
        parser.add_argument(
            "--explanations", required=True, type=Path, help="the explanations .jsonl file"
        )
        parser.add_argument("--title", help="title shown to participants (default: from SLUG)")
        parser.add_argument(
            "--completion-code", help="the Prolific completion code (default: a random one)"
        )
        parser.add_argument(
            "--per-condition",
            type=int,
            help="items each participant rates from every condition (default 3)",
        )
        parser.add_argument(
            "--plan",
            metavar="paper|standard|FILE.toml",
            help="register this analysis plan (a shipped plan or a TOML file); it is frozen "
            "when the study goes live (default: leave the study's plan as it is; a study "
            "without one is analysed under 'standard')",
        )
        parser.add_argument(
            "--live", action="store_true", help="open the study to participants (freezes its plan)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["per_condition"] is not None and options["per_condition"] < 1:
            raise CommandError("--per-condition must be at least 1")
        study, added = study_import_file(
            slug=options["slug"],
            path=options["explanations"],
            title=options["title"],
            completion_code=options["completion_code"],
            per_condition=options["per_condition"],
            live=options["live"],
            plan=options["plan"],
        )
        explanations = Explanation.objects.filter(condition__study=study).count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Study '{study.slug}' ({study.get_status_display().lower()}): "
                f"{study.conditions.count()} conditions, {study.questions.count()} questions, "
                f"{explanations} explanations ({added} new); "
                f"{study.per_condition} items per condition, "
                f"completion code {study.completion_code}."
            )
        )
        self.stdout.write(f"Analysis plan: {study.plan_description()}.")
        entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
        self.stdout.write(
            f"Prolific study URL (append to your site address): {entry}?{PROLIFIC_QUERY}"
        )
