"""summary.json: the analysis's results as plain data.

``analysis`` writes it next to the report; the study dashboard reads its counts, and a
researcher's own scripts read the rest. The top-level keys are defined here, in the order
they are written, with the JSON type of each; docs/analysis.md describes every nested key.
A value that could not be computed is ``null`` with a ``not_computable`` reason beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# key: (JSON types it may hold, present in every summary)
SUMMARY_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "n_participants": ((int,), True),
    "n_ratings": ((int,), True),
    "conditions": ((list,), True),
    "dimensions": ((list,), True),
    "anova": ((dict, type(None)), True),
    "kruskal": ((dict, type(None)), True),
    "posthoc": ((dict,), True),
    "posthoc_not_run": ((list,), True),
    "vda": ((dict, type(None)), True),
    "regression": ((dict,), True),
    "reference": ((str,), True),
    "plan": ((dict,), True),
    "options": ((dict,), True),
    "input": ((dict,), True),
    "exclusions": ((list,), True),
    "outliers": ((dict,), True),
    "descriptives": ((dict,), True),
    "levene": ((dict, type(None)), True),
    "shapiro": ((dict, type(None)), True),
    "reliability": ((dict, type(None)), True),
    "not_computable": ((list,), True),
    # Only when the analysis was given the distillation's accuracy runs.
    "accuracy": ((dict,), False),
}
REGRESSION_KEYS = ("ols", "ols_covariates", "mixed", "ordinal")


def summary_problems(summary: Mapping[str, Any]) -> list[str]:
    """What makes ``summary`` differ from the schema: missing, unknown or mistyped keys.

    Examples
    --------
    >>> summary_problems({"n_participants": "3"})[:2]
    ["'n_participants' is str, not int", "'n_ratings' is missing"]
    """
    problems = []
    for key, (types, required) in SUMMARY_KEYS.items():
        if key not in summary:
            if required:
                problems.append(f"'{key}' is missing")
            continue
        value = summary[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            problems.append(f"'{key}' is {type(value).__name__}, not {names}")
    problems += [f"'{key}' is not a summary key" for key in summary if key not in SUMMARY_KEYS]
    regression = summary.get("regression")
    if isinstance(regression, Mapping):
        missing = [key for key in REGRESSION_KEYS if key not in regression]
        problems += [f"'regression.{key}' is missing" for key in missing]
    return problems
