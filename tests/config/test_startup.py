"""What a web worker loads when it starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_process_starts_without_the_analysis_stack():
    # Workers import the URL configuration at start-up; pandas and statsmodels cost each one
    # half a second and tens of MB, and only the analysis (run in a command) needs them.
    code = (
        "import sys, django; django.setup(); import config.urls; "
        "print(','.join(m for m in ('pandas', 'statsmodels', 'torch', 'matplotlib') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == ""
