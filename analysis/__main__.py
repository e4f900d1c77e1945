"""Command line: ``python -m analysis RATINGS.csv --out DIR [options]``."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from analysis.accuracy import accuracy_load
from analysis.errors import AnalysisError
from analysis.load import ratings_load
from analysis.report import report_write

PROG = "python -m analysis"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block, like every other input error.
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text!r}")
    return int(text)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parser_build() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Analyse a ratings export (DESIGN.md CSV) and write report.html, summary.json, tables/ and figures/.",
    )
    parser.add_argument(
        "ratings", type=Path, metavar="RATINGS.csv", help="ratings CSV (export_ratings or the API)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output directory (created if needed)",
    )
    parser.add_argument(
        "--reference",
        metavar="CONDITION",
        help="reference condition of the regressions (default: the CF condition)",
    )
    parser.add_argument(
        "--drop-outliers",
        action="store_true",
        help="drop items whose quality is outside 1.5 × IQR of their condition",
    )
    parser.add_argument(
        "--covariates",
        metavar="A,B",
        type=_names,
        default=[],
        help="comma-separated covariate columns for a second OLS model",
    )
    parser.add_argument(
        "--min-seconds-per-item",
        metavar="S",
        type=_seconds,
        help="exclude participants faster than this on average",
    )
    parser.add_argument(
        "--attention-fail-threshold",
        metavar="N",
        type=_count,
        default=2,
        help="exclude participants with this many failed attention checks or more (default 2)",
    )
    parser.add_argument(
        "--accuracy",
        metavar="FILE",
        type=Path,
        help="CSV of run accuracies (method, size, accuracy) for the two-way ANOVA",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser_build().parse_args(argv)
    try:
        ratings = ratings_load(args.ratings, reference=args.reference)
        accuracy = accuracy_load(args.accuracy) if args.accuracy else None
        summary = report_write(
            ratings,
            args.out,
            reference=args.reference,
            drop_outliers=args.drop_outliers,
            covariates=args.covariates,
            min_seconds_per_item=args.min_seconds_per_item,
            attention_fail_threshold=args.attention_fail_threshold,
            accuracy=accuracy,
        )
    except AnalysisError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out / 'report.html'}: {summary['n_participants']} participants, "
        f"{summary['n_ratings']} rated items, {len(summary['conditions'])} conditions"
    )
    for problem in summary["not_computable"]:
        print(f"not computable: {problem['what']}: {problem['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
