"""The format package: examples run, and it imports nothing but the standard library and pydantic."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

MODULES = ["studyformats.explanations", "studyformats.ratings", "studyformats.summary"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_importing_the_formats_loads_neither_django_nor_torch_nor_pandas():
    code = (
        "import sys; import studyformats.explanations, studyformats.ratings, studyformats.summary;"
        "print(' '.join(m for m in ('django', 'torch', 'pandas', 'numpy') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == ""


def test_a_summary_written_by_the_analysis_matches_the_schema(tmp_path):
    from analysis.report import report_write
    from analysis.simulate import ratings_simulate
    from studyformats.summary import SUMMARY_KEYS, summary_problems

    summary = report_write(ratings_simulate(24, seed=3), tmp_path)

    assert summary_problems(summary) == []
    assert list(summary) == [key for key in SUMMARY_KEYS if key in summary]


def test_a_summary_missing_a_key_or_with_a_wrong_type_is_described():
    from studyformats.summary import summary_problems

    problems = summary_problems({"n_participants": 3, "n_ratings": True, "extra": 1})
    assert "'n_ratings' is bool, not int" in problems
    assert "'conditions' is missing" in problems
    assert "'extra' is not a summary key" in problems
