"""CPU cost of each page of the participant flow, request by request, and the rate it allows.

The saturation phase of ``load_participants.py`` says how many ratings two busy cores give,
but not where the CPU goes, and on a shared machine its figure moves by a fifth from run to
run. This benchmark sends the same simulated participants through the same gunicorn +
PostgreSQL setup one request at a time, with one gunicorn worker and one thread, and reads
the CPU time the kernel charged to gunicorn's processes and to PostgreSQL's around every
request (``/proc/PID/task/TID/schedstat``, in nanoseconds). With nothing else in flight,
each difference is that request's cost.

From the costs it derives what one participant costs (every page they load, once each) and
the ceiling they imply: the rated items per second that ``--cores`` cores could serve if
they did nothing but this work. The load generator's own CPU is reported apart, because on
a real deployment it runs in people's browsers.

Run from the project root::

    .venv/bin/python benchmarks/request_cost.py [--participants 30] [--questions 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import load as lp  # noqa: E402

RATED_ITEMS = 12  # per participant: per_condition 3 x 4 conditions, as the load test's study


def group_cpu_ns(leader: int) -> dict[int, int]:
    """CPU nanoseconds used so far by each live process of ``leader``'s group
    (``benchmarks.load.group_members``), every thread of each.

    A process's own schedstat covers only its main thread, so threads are read one by one.
    """
    used: dict[int, int] = {}
    for pid, _ in lp.group_members(leader):
        try:
            used[pid] = sum(
                int((task / "schedstat").read_text().split()[0])
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
        except (OSError, ValueError, IndexError):
            continue  # the process or thread ended while it was read
    return used


def cpu_ns_between(before: dict[int, int], after: dict[int, int]) -> int:
    """CPU used between two readings: what each process added, a new one all it used.

    A process that ended in between (PostgreSQL's autovacuum workers come and go) is left
    out rather than subtracted, so a reading never goes negative.

    Examples
    --------
    >>> cpu_ns_between({1: 100, 2: 50}, {1: 130, 3: 20})
    50
    """
    return sum(used - before.get(pid, 0) for pid, used in after.items())


def schedstat_available() -> bool:
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat").exists()


@dataclass
class Costs:
    """Milliseconds of CPU per request, by page type and by who spent them."""

    server: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    database: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    client: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, *, server: float, database: float, client: float) -> None:
        self.server[kind].append(server)
        self.database[kind].append(database)
        self.client[kind].append(client)


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def summarise(
    costs: Costs, *, participants: int, rated_items: int = RATED_ITEMS, cores: int = 2
) -> dict[str, Any]:
    """Per page type: count and mean CPU (and the server's median); per participant: the
    sum over every request they made; and the rated items per second ``cores`` allow."""
    if participants <= 0:
        raise ValueError("participants must be at least 1")
    pages: dict[str, dict[str, float]] = {}
    for kind in sorted(costs.server):
        server, database = costs.server[kind], costs.database[kind]
        pages[kind] = {
            "n": len(server),
            "server_ms": round(_mean(server), 3),
            "server_median_ms": round(statistics.median(server), 3),
            "database_ms": round(_mean(database), 3),
            "client_ms": round(_mean(costs.client[kind]), 3),
        }
    per_participant = {
        part: sum(sum(values) for values in by_kind.values()) / participants
        for part, by_kind in (
            ("server", costs.server),
            ("database", costs.database),
            ("client", costs.client),
        )
    }
    requests = sum(len(values) for values in costs.server.values())
    serving = per_participant["server"] + per_participant["database"]
    with_client = serving + per_participant["client"]
    return {
        "pages": pages,
        "requests_per_participant": round(requests / participants, 2),
        "per_participant_ms": {part: round(ms, 2) for part, ms in per_participant.items()},
        "per_rated_item_ms": round(serving / rated_items, 3),
        "ceiling_rated_items_per_s": round(cores * 1000 * rated_items / serving, 1),
        "ceiling_with_client_rated_items_per_s": round(cores * 1000 * rated_items / with_client, 1),
        "cores": cores,
    }


def table(pages: Mapping[str, Mapping[str, float]]) -> Iterable[str]:
    yield (
        f"   {'page':<18} {'n':>5} {'server ms':>10} {'(median)':>9} {'database ms':>12} "
        f"{'client ms':>10}"
    )
    for kind, row in pages.items():
        yield (
            f"   {kind:<18} {row['n']:>5} {row['server_ms']:>10.2f} "
            f"{row['server_median_ms']:>9.2f} {row['database_ms']:>12.2f} "
            f"{row['client_ms']:>10.2f}"
        )


def measure(args: argparse.Namespace) -> tuple[Costs, int]:
    """Run the participants one request at a time; return the costs of the last round."""
    load_args = lp.arguments(
        ["--workers", "1", "--threads", "1", "--questions", str(args.questions)]
    )
    log = Path(tempfile.mkdtemp(prefix="cost-")) / "gunicorn.log"
    costs = Costs()
    with lp.environment(load_args, log) as (_, base_url, server, postgres_pid):
        # Both started here (no --database-url or --target-url is offered), so both are known.
        assert server is not None
        assert server.process is not None
        assert postgres_pid is not None
        gunicorn_pid = server.process.pid
        fetch = lp.Participant.fetch

        async def measured(
            self: lp.Participant, kind: str, method: str, url: str, **kw: Any
        ) -> Any:
            server_before, database_before = group_cpu_ns(gunicorn_pid), group_cpu_ns(postgres_pid)
            client_before = time.process_time_ns()
            response = await fetch(self, kind, method, url, **kw)
            client = time.process_time_ns() - client_before
            server_after, database_after = group_cpu_ns(gunicorn_pid), group_cpu_ns(postgres_pid)
            costs.add(
                kind,
                server=cpu_ns_between(server_before, server_after) / 1e6,
                database=cpu_ns_between(database_before, database_after) / 1e6,
                client=client / 1e6,
            )
            return response

        lp.Participant.fetch = measured
        try:
            # The first round warms the worker (imports, caches, prepared plans) and is not kept.
            for round_ in ("warm", "kept"):
                costs = Costs()  # the closure above reads this variable at call time
                slug = f"cost-{round_}-{os.getpid()}"
                lp.study_create(slug=slug, questions=args.questions)
                settings = lp.Settings(
                    base_url=base_url,
                    slug=slug,
                    time_scale=0.0,
                    behind_proxy=True,
                    recover=False,
                    htmx_share=args.htmx_share,
                )
                recorder = lp.Recorder()
                pids = [f"{round_}{n:04d}" for n in range(args.participants)]
                _, finished = asyncio.run(
                    lp.participants_run(
                        settings=settings,
                        recorder=recorder,
                        pids=pids,
                        arrival_seconds=0.0,
                        deadline_seconds=args.phase_seconds,
                        concurrency=1,
                    )
                )
                if recorder.errors or finished != len(pids):
                    raise SystemExit(
                        f"the {round_} round failed: {finished} of {len(pids)} finished, "
                        f"errors {dict(recorder.errors)}; see {log}"
                    )
        finally:
            lp.Participant.fetch = fetch
    return costs, args.participants


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=30, help="per round (default 30)")
    parser.add_argument(
        "--questions", type=int, default=150, help="questions in the pool, each x 4 conditions"
    )
    parser.add_argument(
        "--htmx-share",
        type=float,
        default=1.0,
        help="share of participants with JavaScript (default 1; 0: no JavaScript)",
    )
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count() or 1, help="cores the ceiling is worked out for"
    )
    parser.add_argument("--phase-seconds", type=float, default=600.0, help="deadline of a round")
    args = parser.parse_args(argv)
    if args.participants < 1:
        parser.error("--participants must be at least 1")
    if not 0.0 <= args.htmx_share <= 1.0:
        parser.error("--htmx-share must be between 0 and 1")
    if args.cores < 1:
        parser.error("--cores must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if not schedstat_available():
        raise SystemExit("this kernel exposes no /proc/PID/task/TID/schedstat; cannot measure")
    costs, participants = measure(args)
    summary = summarise(costs, participants=participants, cores=args.cores)
    print(
        f"{participants} participants one request at a time, {args.questions} questions x 4 "
        f"conditions, JavaScript share {args.htmx_share:g}; gunicorn 1 worker x 1 thread"
    )
    for line in table(summary["pages"]):
        print(line)
    per = summary["per_participant_ms"]
    print(
        f"   a participant: {summary['requests_per_participant']} requests, "
        f"{per['server']:.1f} ms gunicorn + {per['database']:.1f} ms PostgreSQL "
        f"(+ {per['client']:.1f} ms load generator); {summary['per_rated_item_ms']:.2f} ms "
        "of server CPU per rated item"
    )
    print(
        f"   ceiling on {args.cores} cores: {summary['ceiling_rated_items_per_s']:.1f} rated "
        f"items/s for the server alone, {summary['ceiling_with_client_rated_items_per_s']:.1f} "
        "with the load generator on the same cores"
    )
    summary["settings"] = {
        "participants": participants,
        "questions": args.questions,
        "htmx_share": args.htmx_share,
    }
    summary["machine"] = {"cpus": os.cpu_count(), "loadavg_end": list(os.getloadavg())}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
