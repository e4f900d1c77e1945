"""``manage.py generate_teacher_outputs --config FILE``: run the teacher over the training data."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from distillation.data import examples_load
from distillation.errors import DistillationError
from distillation.generation import teacher_outputs_generate
from distillation.teacher_config import data_config_from_toml, teacher_config_from_toml

RUNS_DIR = Path("runs")


class Command(BaseCommand):
    help = (
        "Generate the teacher's explanations, critiques, revisions and counterfactuals for the "
        "training questions of a run config ([data] and [teacher] tables). Resumes by default: "
        "outputs already in the store are skipped. The store is runs/<run.name>/teacher unless "
        "--store says otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", type=Path, required=True, help="run configuration (TOML)")
        parser.add_argument("--limit", type=int, help="only the first N training questions")
        parser.add_argument("--store", type=Path, help="teacher-output store folder")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be a positive number")
        try:
            table = config_read(options["config"])
            data = data_config_from_toml(table)
            teacher = teacher_config_from_toml(table)
            store = options["store"] or default_store(table, options["config"])
            examples = examples_load(data.train, format=data.format, limit=data.train_limit)
            summary = teacher_outputs_generate(
                examples=examples,
                teacher=teacher,
                store_dir=store,
                limit=options["limit"],
                progress=not options["no_progress"],
            )
        except DistillationError as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"{error.filename or ''}: {error.strerror}") from None
        self.stdout.write(f"Teacher outputs in {store}:")
        for line in summary.lines():
            self.stdout.write(line)


def config_read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise CommandError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path}: not valid TOML ({error})") from None


def default_store(table: dict[str, Any], config_path: Path) -> Path:
    run = table.get("run", {})
    name = run.get("name") if isinstance(run, dict) else None
    return RUNS_DIR / (name if isinstance(name, str) and name else config_path.stem) / "teacher"
