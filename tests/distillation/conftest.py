from __future__ import annotations

from pathlib import Path

import pytest

from distillation.config import StudyConfig, run_config_load
from distillation.pipeline import pipeline_run
from tests.distillation.demo_support import ROOT, DemoRun, demo_config_write


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The cut-down demo trained once for the session, through every stage, without a database.

    Tests read the folder as it is or run the pipeline again on ``DemoRun.copy``; none writes
    into it. The study stage records what it would create instead of touching the database,
    so each test that needs the study in the database runs that stage itself.
    """
    folder = tmp_path_factory.mktemp("demo-run")
    config_path = demo_config_write(folder)
    config = run_config_load(config_path, base_dir=ROOT, runs_dir=folder / "runs")
    messages: list[str] = []
    created: list[tuple[Path, str]] = []

    def study_record(path: Path, study: StudyConfig) -> str:
        created.append((path, study.slug))
        return study.slug

    summary = pipeline_run(config, log=messages.append, study_create=study_record, command=["test"])
    return DemoRun(
        config=config,
        config_path=config_path,
        summary=summary,
        messages=tuple(messages),
        created=tuple(created),
    )
