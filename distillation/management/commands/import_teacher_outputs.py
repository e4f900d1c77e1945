"""``manage.py import_teacher_outputs SOURCE --out STORE``: load published teacher outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from distillation.errors import DistillationError
from distillation.importing import teacher_outputs_import


class Command(BaseCommand):
    help = (
        "Import teacher outputs into a teacher-output store: a Hugging Face save_to_disk folder "
        "(one shard, or a folder of shard_N folders such as data/teacher/llama2-13b/cqa-train) "
        "or a JSON Lines file in the project's format. Keys already in the store are "
        "skipped, so importing twice is harmless."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path, help="shards folder, one shard, or a .jsonl file")
        parser.add_argument("--out", type=Path, required=True, help="the store folder to fill")
        parser.add_argument(
            "--teacher",
            help="teacher model name stored with each output (default: the folder above the "
            "split for shards, 'imported' for JSON Lines)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = teacher_outputs_import(
                options["source"], options["out"], teacher=options["teacher"]
            )
        except DistillationError as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"{error.filename}: {error.strerror}") from None
        for line in summary.lines():
            self.stdout.write(line)
