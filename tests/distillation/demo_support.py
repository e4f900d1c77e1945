"""The demo run cut down for tests: its configuration, and one trained run shared by the session.

Training the demo's four students is the slowest thing the distillation tests do, so the
session trains the cut-down demo once (the ``demo_run`` fixture in ``conftest.py``) and every
test that needs a trained demo starts from a copy of that run folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distillation.config import RunConfig
from distillation.pipeline import RunSummary

ROOT = Path(__file__).resolve().parents[2]

# configs/demo.toml cut to two training steps of a 1-layer model with short explanations.
QUICK = {
    "steps = 240": "steps = 2",
    "eval_every = 80": "eval_every = 2",
    "checkpoint_every = 80": "checkpoint_every = 2",
    "explanation_max_new_tokens = 128": "explanation_max_new_tokens = 12",
    "d_model = 64": "d_model = 32",
    "num_layers = 2": "num_layers = 1",
    "vocab_size = 1200": "vocab_size = 600",
    # A model trained for two steps seldom stops by itself.
    "max_truncated_fraction = 0.25": "max_truncated_fraction = 1.0",
}


def demo_config_write(folder: Path, **replacements: str) -> Path:
    """Write configs/demo.toml, cut down by ``QUICK`` and then ``replacements``, into ``folder``.

    Each key is a line of the demo config that must be present; its value replaces it.
    """
    text = (ROOT / "configs" / "demo.toml").read_text()
    for old, new in {**QUICK, **replacements}.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / "demo.toml"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class DemoRun:
    """The cut-down demo, run once through every stage, and what that first run reported.

    The study stage ran with a recording stand-in for the database service, so the folder
    holds the study marker of slug ``demo`` but no database holds the study.
    """

    config: RunConfig
    config_path: Path
    summary: RunSummary
    messages: tuple[str, ...]
    created: tuple[tuple[Path, str], ...]

    @property
    def output_dir(self) -> Path:
        return self.config.output_dir

    def copy(self, destination: Path, *, without: Sequence[str] = ()) -> Path:
        """Copy the run folder to ``destination``, leaving out the ``without`` paths in it.

        Tests that run the pipeline again work on a copy, so the shared run stays as trained.
        """
        shutil.copytree(self.output_dir, destination)
        for name in without:
            path = destination / name
            assert path.exists(), f"{name} is not in the demo run folder"
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return destination
