"""Command line: ``python -m analysis RATINGS.csv --out DIR [--plan PLAN] [options]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from analysis.accuracy import accuracy_load
from analysis.errors import AnalysisError
from analysis.load import ratings_load
from analysis.options import plan_overrides_add
from analysis.plan import PLAN_NAMES, plan_load
from analysis.report import report_write

PROG = "python -m analysis"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block, like every other input error.
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def parser_build() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Analyse a ratings export (the ratings CSV of docs/formats.md) and write report.html, summary.json, tables/ and figures/.",
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
        "--plan",
        default="standard",
        metavar="PLAN",
        help=f"analysis plan: {' or '.join(PLAN_NAMES)} (shipped), or a plan TOML file "
        "(default: standard). The options below override single settings of the plan; "
        "the report lists each change as a deviation",
    )
    plan_overrides_add(parser)
    parser.add_argument(
        "--accuracy",
        metavar="FILE",
        type=Path,
        help="CSV of run accuracies (the pipeline's accuracy_runs.csv: method, data_variant, "
        "size, accuracy) for the two-way ANOVA (plan: [accuracy])",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser_build().parse_args(argv)
    try:
        plan = plan_load(args.plan)
        ratings = ratings_load(args.ratings, reference=args.reference)
        accuracy = accuracy_load(args.accuracy) if args.accuracy else None
        summary = report_write(
            ratings,
            args.out,
            plan=plan,
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
    deviations = summary["plan"]["deviations"]
    print(
        f"plan {summary['plan']['name']} (sha256 {summary['plan']['sha256']}): "
        + (f"{len(deviations)} deviation(s)" if deviations else "no deviations")
    )
    for deviation in deviations:
        print(
            f"deviation: {deviation['setting']} = {deviation['used']!r} "
            f"(plan: {deviation['plan']!r}; from {deviation['option']})"
        )
    for problem in summary["not_computable"]:
        print(f"not computable: {problem['what']}: {problem['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
