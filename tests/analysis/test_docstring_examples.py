from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "analysis.accuracy",
    "analysis.descriptives",
    "analysis.effect_sizes",
    "analysis.exclusions",
    "analysis.html_cells",
    "analysis.html_sections",
    "analysis.load",
    "analysis.plan",
    "analysis.regression",
    "analysis.reliability",
    "analysis.simulate",
    "analysis.tests_differences",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
