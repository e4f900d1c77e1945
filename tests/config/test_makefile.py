"""The Makefile's variables: listed by `make help` and used by the install and demo steps."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="`make` is not installed")


def make_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_the_variables() -> None:
    result = make_run("help")
    assert result.returncode == 0, result.stderr
    for name in ("TORCH_SPEC", "TORCH_INDEX_URL", "PORT", "HOST", "PYTHON", "PYTEST_ARGS"):
        assert name in result.stdout
    assert "torch==2.13.0" in result.stdout
    assert "https://download.pytorch.org/whl/cpu" in result.stdout


def test_help_is_the_default_goal() -> None:
    assert make_run().stdout == make_run("help").stdout


def torch_install_line(*variables: str) -> str:
    # -n prints without running; -W pretends pyproject.toml changed, so the install step shows.
    result = make_run("-n", "-W", "pyproject.toml", ".venv/.installed", *variables)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "torch" in line]
    assert len(lines) == 1, result.stdout
    return lines[0]


def test_torch_default_has_no_index_url() -> None:
    line = torch_install_line()
    assert "'torch==2.13.0'" in line
    assert "--index-url" not in line


def test_torch_index_url_and_spec_are_passed() -> None:
    line = torch_install_line(
        "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu", "TORCH_SPEC=torch==2.13.0+cpu"
    )
    assert "--index-url https://download.pytorch.org/whl/cpu" in line
    assert "'torch==2.13.0+cpu'" in line


@pytest.fixture
def busy_port() -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "python").exists(), reason=".venv is not installed"
)
def test_demo_stops_early_when_the_port_is_taken(busy_port: int) -> None:
    result = make_run("demo-port-check", f"PORT={busy_port}")
    assert result.returncode != 0
    assert f"127.0.0.1:{busy_port} is already in use" in result.stderr
    assert "make demo PORT=" in result.stderr


@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "python").exists(), reason=".venv is not installed"
)
def test_demo_port_check_passes_on_a_free_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    result = make_run("demo-port-check", f"PORT={free_port}")
    assert result.returncode == 0, result.stderr
