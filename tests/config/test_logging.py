"""Logging as configured by config.settings: one line per record, whatever Django adds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EMIT = """
import django, logging
django.setup()
logging.getLogger({name!r}).warning("marker-%s", "a7c1")
"""


@pytest.mark.parametrize(
    "name", ["django.request", "django.security.csrf", "studyapp.participation.views"]
)
def test_a_warning_is_printed_once_with_debug_on(name: str) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "true",
        "LOG_LEVEL": "INFO",
    }
    result = subprocess.run(
        [sys.executable, "-c", EMIT.format(name=name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert (result.stdout + result.stderr).count("marker-a7c1") == 1, result.stderr
