"""``manage.py run_distillation``: the whole distillation, from the data to a live study."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from distillation.config import run_config_load
from distillation.errors import DistillationError
from distillation.pipeline import STAGES, pipeline_plan, stages_check
from distillation.recipe import recipe_lines
from distillation.services import (
    default_config_path,
    distillation_run_execute,
    main_process,
)


class Command(BaseCommand):
    help = (
        "Run a distillation: data → teacher → train → evaluate → explain → study. Work already "
        "done in the run folder is skipped, so running again resumes. Without --config it runs "
        "the demo (configs/demo.toml): four tiny students on the bundled sample, a few minutes "
        "on a CPU, ending with a live study."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--config",
            type=Path,
            default=None,
            help="run configuration (default: configs/demo.toml)",
        )
        parser.add_argument(
            "--stages",
            nargs="+",
            metavar="STAGE",
            default=list(STAGES),
            help=f"stages to run, of: {', '.join(STAGES)} (default: all)",
        )
        parser.add_argument(
            "--study", metavar="SLUG", help="create or update this study (default: [study] slug)"
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=(
                "print the effective recipe, its differences from the paper's, what would run "
                "and what is done; run nothing"
            ),
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **options: Any) -> None:
        config_path: Path = options["config"] or default_config_path()
        try:
            stages = stages_check(options["stages"])
            config = run_config_load(
                config_path, base_dir=Path(settings.BASE_DIR), runs_dir=Path(settings.RUNS_DIR)
            )
        except DistillationError as error:
            raise CommandError(str(error)) from None
        if options["study"]:
            # Checked before any work, not at the study stage after hours of training.
            if not re.fullmatch(r"[-a-zA-Z0-9_]+", options["study"]):
                raise CommandError(
                    f"--study must be letters, digits, '-' or '_', got {options['study']!r}"
                )
            config = replace(config, study=replace(config.study, slug=options["study"]))
            if "study" not in stages:
                stages.append("study")
        if options["dry_run"]:
            try:
                recipe = recipe_lines(config, processes=_processes())
            except DistillationError as error:
                raise CommandError(str(error)) from None
            for line in recipe:
                self.stdout.write(line)
            self.stdout.write(f"Run {config.name!r} in {config.output_dir} ({config_path}):")
            for step in pipeline_plan(config, stages=stages):
                self.stdout.write(f"  {step.line()}")
            return
        try:
            run, summary = distillation_run_execute(
                config=config,
                config_path=config_path,
                stages=stages,
                log=self.stdout.write,
                progress=not options["no_progress"] and sys.stderr.isatty(),
                command=sys.argv,
            )
        except DistillationError as error:
            raise CommandError(str(error)) from None
        if run is None and not main_process():
            return  # a secondary process of a multi-GPU launch: the first one reports
        for note in summary.notes:
            self.stdout.write(note)
        for row in summary.accuracy:
            sd = f" ± {row['accuracy_sd']:.3f}" if row["accuracy_sd"] != "" else ""
            self.stdout.write(
                f"accuracy {row['size']} {row['method']} {row['data_variant']}: "
                f"{row['accuracy_mean']:.3f}{sd} over {row['seeds']} seed(s)"
            )
        if run is None:
            message = (
                f"Run {config.name!r} was already complete: every stage was skipped and no run "
                f"record was added; outputs in {config.output_dir}"
            )
        else:
            message = (
                f"Run {config.name!r} finished (record {run.pk}); outputs in {config.output_dir}"
            )
        if summary.study:
            message += f"; study {summary.study!r} is ready at /s/{summary.study}/"
        self.stdout.write(self.style.SUCCESS(message))


def _processes() -> int:
    """The processes of this launch (more than one under ``accelerate launch`` or torchrun)."""
    from accelerate import PartialState

    return int(PartialState().num_processes)
