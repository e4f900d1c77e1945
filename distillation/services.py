"""Running a distillation from Django: the run record around the pure pipeline, and the study."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from distillation.config import RunConfig, StudyConfig
from distillation.errors import DistillationError
from distillation.models import DistillationRun
from distillation.pipeline import STAGES, RunSummary, pipeline_run, stages_check, summary_dict


def study_from_explanations(path: Path, study: StudyConfig) -> str:
    """Create or update the study from an explanations file exactly as ``create_study`` does."""
    from studyapp.studies.services import StudyImportError, study_import_file

    try:
        created, _added = study_import_file(
            slug=study.slug,
            path=path,
            title=study.title,
            completion_code=study.completion_code,
            per_condition=study.per_condition,
            live=study.live,
            plan=study.plan,
            questionnaire=study.questionnaire,
        )
    except StudyImportError as error:
        raise DistillationError(f"study '{study.slug}': {error}") from None
    return created.slug


def distillation_run_execute(
    *,
    config: RunConfig,
    config_path: Path,
    stages: Sequence[str] = STAGES,
    log: Callable[[str], None],
    progress: bool = False,
    command: Sequence[str] = (),
) -> tuple[DistillationRun | None, RunSummary]:
    """Run the pipeline, recording the run (status, metrics, output folder) in the database.

    A failed run is recorded as failed with its error before the error propagates. A run that
    finds every requested stage already complete did nothing, so it leaves no record. The
    record is ``None`` then, and in the secondary processes of a multi-process launch.
    """
    ordered = stages_check(stages)
    if not main_process():
        # Under `accelerate launch` / `torchrun` every process runs the pipeline (each trains on
        # its share of the batches); only the first one records the run and creates the study.
        summary = pipeline_run(
            config, stages=ordered, log=lambda message: None, study_create=None, command=command
        )
        return None, summary
    run = DistillationRun.objects.create(
        name=config.name,
        config_path=str(config_path),
        config=_json_safe(config.source),
        stages=ordered,
        output_dir=str(config.output_dir),
        study_slug=config.study.slug if "study" in ordered else "",
    )
    try:
        summary = pipeline_run(
            config,
            stages=ordered,
            log=log,
            progress=progress,
            study_create=study_from_explanations,
            command=command,
        )
    except BaseException as error:
        # KeyboardInterrupt too: the record must not stay "running" forever.
        _finish(run, status=DistillationRun.Status.FAILED, error=str(error) or type(error).__name__)
        raise
    if not summary.stages_run:
        # A rerun of a finished configuration: nothing ran, so there is nothing to record.
        run.delete()
        return None, summary
    _finish(run, status=DistillationRun.Status.SUCCEEDED, metrics=summary_dict(summary))
    return run, summary


def main_process() -> bool:
    """Whether this is the process that records the run (the only one outside a launch)."""
    from accelerate import PartialState

    return bool(PartialState().is_main_process)


def _finish(
    run: DistillationRun, *, status: str, metrics: dict | None = None, error: str = ""
) -> None:
    with transaction.atomic():
        run.status = status
        run.error = error
        if metrics is not None:
            run.metrics = metrics
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "metrics", "finished_at"])


def _json_safe(value: object) -> object:
    """TOML dates and times become strings so the configuration fits a JSON field."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def default_config_path() -> Path:
    return Path(settings.BASE_DIR) / "configs" / "demo.toml"
