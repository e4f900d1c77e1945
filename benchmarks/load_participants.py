"""Load, saturation and crash test of the participant flow: gunicorn + PostgreSQL over HTTP.

The command the documentation gives; the test itself is the package ``benchmarks.load``
(also run as ``python -m benchmarks.load``). Run from the project root::

    .venv/bin/python benchmarks/load_participants.py --crash
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, Python puts benchmarks/ on the path, not the project root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load.cli import main

if __name__ == "__main__":
    sys.exit(main())
