"""The command-line options that override single settings of an analysis plan.

``python -m analysis`` and ``manage.py analyze_study`` take the same options, added by
:func:`plan_overrides_add`; each names the plan setting it replaces in its help.
"""

from __future__ import annotations

import argparse
import math

# The destinations of the override options, as report_write's keyword arguments.
OVERRIDE_OPTIONS = (
    "reference",
    "drop_outliers",
    "covariates",
    "min_seconds_per_item",
    "attention_fail_threshold",
)


def seconds_value(text: str) -> float:
    """A number of seconds ≥ 0 from the command line."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {text!r}")
    return value


def count_value(text: str) -> int:
    """A whole number ≥ 1 from the command line."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text!r}")
    return int(text)


def names_value(text: str) -> list[str]:
    """Comma-separated names, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def plan_overrides_add(parser: argparse.ArgumentParser) -> None:
    """Add the options that override plan settings; each defaults to None (not given)."""
    parser.add_argument(
        "--reference",
        metavar="CONDITION",
        help="reference condition of the regressions (plan: regression.reference)",
    )
    parser.add_argument(
        "--drop-outliers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="set aside items whose quality is outside 1.5 × IQR of their condition, for the "
        "analyses the plan names (plan: outliers.enabled)",
    )
    parser.add_argument(
        "--covariates",
        metavar="A,B",
        type=names_value,
        help="comma-separated covariate columns for a second OLS model (plan: regression.covariates)",
    )
    parser.add_argument(
        "--min-seconds-per-item",
        metavar="S",
        type=seconds_value,
        help="exclude participants faster than this on average (plan: exclusions.too_fast and "
        "exclusions.min_seconds_per_item)",
    )
    parser.add_argument(
        "--attention-fail-threshold",
        metavar="N",
        type=count_value,
        help="exclude participants with this many failed attention checks or more (plan: "
        "exclusions.attention and exclusions.attention_fail_threshold)",
    )
