"""Read studies' submissions from Prolific and apply their statuses (for cron, or no webhooks)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q, QuerySet

from studyapp.models import Study
from studyapp.prolific.client import ProlificClient, ProlificError
from studyapp.prolific.services import STUDY_COMPLETED, hook_deliveries_prune, prolific_sync


def studies_to_sync(slug: str | None) -> QuerySet[Study]:
    if slug:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study '{slug}'")
        if not study.prolific_study_id:
            raise CommandError(
                f"study '{slug}' has no Prolific study id; create it on Prolific from its "
                "dashboard, or set its Prolific study id in the admin"
            )
        return Study.objects.filter(pk=study.pk)
    # Every study on Prolific, but those finished on both sides.
    return (
        Study.objects.exclude(prolific_study_id="")
        .exclude(Q(status=Study.Status.CLOSED) & Q(prolific_status=STUDY_COMPLETED))
        .order_by("slug")
    )


class Command(BaseCommand):
    help = (
        "Read the submissions of study SLUG (default: every study on Prolific not finished "
        "on both sides) from Prolific's API and apply each status as a webhook would: "
        "returned, timed-out and rejected participants release their unrated items. Safe to "
        "run as often as you like, for example from cron every few minutes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", nargs="?", help="the study's short name")

    def handle(self, *args: Any, **options: Any) -> None:
        hook_deliveries_prune()
        studies = list(studies_to_sync(options["slug"]))
        if not studies:
            self.stdout.write("No study to sync: none has a Prolific study id.")
            return
        try:
            client = ProlificClient.from_settings()
        except ProlificError as exc:
            raise CommandError(str(exc)) from None
        failed: list[str] = []
        with client:
            for study in studies:
                try:
                    summary = prolific_sync(study=study, client=client)
                except ProlificError as exc:
                    failed.append(study.slug)
                    self.stderr.write(f"{study.slug}: {exc}")
                    continue
                followed = f"; our study is now {summary.followed}" if summary.followed else ""
                self.stdout.write(
                    f"{study.slug}: {summary.submissions} submissions read, {summary.changed} "
                    f"changed, {summary.released} participant(s) released; on Prolific: "
                    f"{summary.study_status}{followed}."
                )
        if failed:
            raise CommandError(f"could not sync {len(failed)} study/studies: {', '.join(failed)}")
