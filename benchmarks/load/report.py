"""What a phase measured: the recorder the participants write to, and the figures printed.

Each phase is printed as a table when it ends; the run ends with the targets it missed and
one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.load.checks import Ack


@dataclass
class Recorder:
    """Latencies per page type, errors and acknowledged submissions of one phase."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    acks: list[Ack] = field(default_factory=list)
    rating_times: list[float] = field(default_factory=list)
    # Every acknowledged item form, attention checks included (rating_times: rated items).
    submission_times: list[float] = field(default_factory=list)
    requests: int = 0

    def summary(self, wall: float) -> dict[str, Any]:
        pages = {
            kind: {
                "n": len(values),
                "p50_ms": round(percentile(values, 50) * 1000, 1),
                "p95_ms": round(percentile(values, 95) * 1000, 1),
                "p99_ms": round(percentile(values, 99) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1),
            }
            for kind, values in sorted(self.latencies.items())
        }
        return {
            "wall_s": round(wall, 2),
            "requests": self.requests,
            "requests_per_s": round(self.requests / wall, 1) if wall else 0,
            "ratings": len(self.rating_times),
            "ratings_per_s": _rate(self.rating_times),
            "submissions": len(self.submission_times),
            "submissions_per_s": _rate(self.submission_times),
            "rating_window_s": round(_span(self.rating_times), 2),
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "pages": pages,
        }


def _span(times: list[float]) -> float:
    """Seconds from the first to the last of ``times`` (0 for fewer than two)."""
    return (max(times) - min(times)) if times else 0.0


def _rate(times: list[float]) -> float:
    """Events per second over the span from the first to the last."""
    window = _span(times)
    return round(len(times) / window, 1) if window else 0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def print_phase(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name}: {result['participants']} participants, {result['finished']} finished")
    print(
        f"   wall {result['wall_s']} s, {result['requests']} requests "
        f"({result['requests_per_s']}/s), {result['ratings']} ratings "
        f"({result['ratings_per_s']}/s over {result['rating_window_s']} s), "
        f"{result['submissions']} item forms with checks ({result['submissions_per_s']}/s), "
        f"errors {result['errors']} {result['errors_by_kind'] or ''}"
    )
    print(f"   {'page':<17}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind, row in result["pages"].items():
        print(
            f"   {kind:<17}{row['n']:>7}{row['p50_ms']:>9}{row['p95_ms']:>9}"
            f"{row['p99_ms']:>9}{row['max_ms']:>9}"
        )
    print(f"   database: {result['database']}")
    if "crash" in result:
        print(f"   crash: {result['crash']}")
    print(f"   load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    if "floor_healthz" in result:
        floor = result["floor_healthz"]
        print(
            f"   baseline /healthz, same server and concurrency: {floor['requests_per_s']} "
            f"requests/s (p50 {floor['p50_ms']} ms, errors {floor['errors']}); the flow's "
            f"requests ran at {result['requests_vs_floor']:.2f}x that rate"
        )
    print(
        f"   CPU seconds {result['cpu_seconds']}, machine busy {result['cpu_busy_share']:.0%} "
        f"(of it taken by the host {result['cpu_steal_share']:.0%}), "
        f"waiting on the disk {result['cpu_iowait_share']:.0%}"
    )
    sys.stdout.flush()


def targets_check(results: dict[str, dict[str, Any]], slo_ms: float, min_rate: float) -> list[str]:
    """The issue's targets that this run missed, each as one sentence."""
    missed = []
    for name, result in results.items():
        db = result["database"]
        for problem in (
            "lost",
            "duplicated_ratings",
            "partially_stored_items",
            "not_completed",
            "unbalanced_participants",
            "question_twice_participants",
        ):
            if db[problem]:
                missed.append(f"{name}: {problem} = {db[problem]}")
        if db["exposure_spread_max"] > 1:
            missed.append(f"{name}: exposure spread {db['exposure_spread_max']} > 1")
    if "burst" in results:
        burst = results["burst"]
        if burst["errors"]:
            missed.append(f"burst: {burst['errors']} errors")
        for kind, row in burst["pages"].items():
            if row["p99_ms"] >= slo_ms:
                missed.append(f"burst: {kind} p99 {row['p99_ms']} ms >= {slo_ms} ms")
    if "saturation" in results and results["saturation"]["ratings_per_s"] < min_rate:
        missed.append(
            f"saturation: {results['saturation']['ratings_per_s']} ratings/s < {min_rate}"
        )
    return missed


def summary_print(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    *,
    missed: list[str],
    server_tracebacks: int,
) -> bool:
    """Print the missed targets and the final JSON line; return whether every target was met."""
    for line in missed:
        print(f"target missed: {line}")
    summary = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "participants": args.participants,
            "workers": args.workers,
            "threads": args.threads,
            "time_scale": args.time_scale,
            "htmx_share": args.htmx_share,
            "questions": args.questions,
        },
        "server_tracebacks": server_tracebacks,
        "phases": results,
        "targets_met": not missed and not server_tracebacks,
    }
    print(json.dumps(summary, separators=(",", ":")))
    return bool(summary["targets_met"])
