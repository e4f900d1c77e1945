"""Create (or bring up to date) a study from an explanations file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from studyapp.models import Explanation
from studyapp.studies.services import PROLIFIC_QUERY, StudyImportError, study_import_file


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
            "--questionnaire",
            metavar="FILE|NAME[@VERSION]",
            help="what participants rate: a .toml/.json questionnaire file (stored first, as "
            "questionnaire_import does) or a stored questionnaire's NAME or NAME@VERSION "
            "(default: leave the study's as it is; a new study gets plain-5); fixed once the "
            "study has participants",
        )
        parser.add_argument(
            "--live", action="store_true", help="open the study to participants (freezes its plan)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["per_condition"] is not None and options["per_condition"] < 1:
            raise CommandError("--per-condition must be at least 1")
        try:
            study, added = study_import_file(
                slug=options["slug"],
                path=options["explanations"],
                title=options["title"],
                completion_code=options["completion_code"],
                per_condition=options["per_condition"],
                live=options["live"],
                plan=options["plan"],
                questionnaire=options["questionnaire"],
            )
        except StudyImportError as exc:
            raise CommandError(str(exc)) from None
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
        questionnaire = study.questionnaire_document
        self.stdout.write(
            f"Questionnaire: {study.questionnaire or questionnaire.name} "
            f"({len(questionnaire.dimensions)} dimensions, {questionnaire.scale.points}-point "
            "scale)."
        )
        entry = reverse("studyapp:entry", kwargs={"slug": study.slug})
        self.stdout.write(
            f"Prolific study URL (append to your site address): {entry}?{PROLIFIC_QUERY}"
        )
