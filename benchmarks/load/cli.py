"""The command line: which phases to run, against which servers, and the exit status.

``python -m benchmarks.load`` and ``benchmarks/load_participants.py`` both run ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.load.phases import Run, floor_run
from benchmarks.load.report import print_phase, summary_print, targets_check
from benchmarks.load.servers import environment

DESCRIPTION = (
    "Load, saturation and crash test of the participant flow: gunicorn + PostgreSQL over HTTP."
)
# Hard limits that keep a mistyped argument from running for hours or opening
# thousands of sockets.
MAX_PARTICIPANTS = 2000
FLOOR_REQUESTS = 3000  # /healthz requests of the baseline measured before saturation
MAX_PHASE_SECONDS = 1800


def arguments(argv: list[str] | None = None, *, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--participants", type=int, default=200, help="per phase (default 200)")
    parser.add_argument(
        "--modes", default="burst,saturation", help="comma-separated: burst, saturation"
    )
    parser.add_argument("--crash", action="store_true", help="add the kill-and-restart phase")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="factor on the 2-20 s think time per page (default 1: the pace of real people; "
        "0.1 packs the same requests into a tenth of the time)",
    )
    parser.add_argument("--arrival-seconds", type=float, default=60.0)
    parser.add_argument(
        "--htmx-share",
        type=float,
        default=1.0,
        help="share of participants with JavaScript, whose items are posted by htmx "
        "(default 1, as in nearly every participant's browser; 0: every participant "
        "browses without JavaScript, two requests an item)",
    )
    parser.add_argument(
        "--questions", type=int, default=150, help="questions in the pool, each x 4 conditions"
    )
    parser.add_argument(
        "--saturation-concurrency",
        type=int,
        default=24,
        help="participants in the flow at once in the saturation phase (default 24, four "
        "times the server's threads: enough to keep every thread busy while others wait "
        "on the database)",
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    # As gunicorn.conf.py: two threads a worker cover the waits on the database.
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--phase-seconds", type=float, default=600, help="deadline of each phase")
    parser.add_argument(
        "--database-url", help="use this PostgreSQL database instead of a throw-away server"
    )
    parser.add_argument(
        "--target-url",
        help="load an already running server on loopback (needs --database-url; no --crash)",
    )
    parser.add_argument("--p99-target-ms", type=float, default=150.0)
    parser.add_argument("--ratings-target", type=float, default=300.0)
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"burst", "saturation"}
    if unknown:
        parser.error(f"--modes: unknown mode(s) {sorted(unknown)}; use burst and/or saturation")
    args.modes = modes
    if not 1 <= args.participants <= MAX_PARTICIPANTS:
        parser.error(f"--participants must be between 1 and {MAX_PARTICIPANTS}")
    if not 0 < args.phase_seconds <= MAX_PHASE_SECONDS:
        parser.error(f"--phase-seconds must be between 1 and {MAX_PHASE_SECONDS}")
    if not 1 <= args.saturation_concurrency <= MAX_PARTICIPANTS:
        parser.error(f"--saturation-concurrency must be between 1 and {MAX_PARTICIPANTS}")
    if not 0 <= args.htmx_share <= 1:
        parser.error("--htmx-share must be between 0 and 1")
    if args.time_scale < 0 or args.arrival_seconds < 0:
        parser.error("--time-scale and --arrival-seconds cannot be negative")
    if args.questions < 12:
        parser.error("--questions must be at least 12 (each participant rates 12 questions)")
    if args.target_url:
        host = urlsplit(args.target_url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("--target-url must be on loopback (127.0.0.1, localhost or ::1)")
        if not args.database_url:
            parser.error("--target-url needs --database-url to check what was stored")
        if args.crash:
            parser.error("--crash needs a server this script starts; drop --target-url")
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a postgres:// URL")
    return args


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = arguments(argv, prog=prog)
    # A SIGTERM (a timeout, a cancelled job) unwinds like Ctrl-C, so the database and the
    # server started here are stopped on the way out instead of being left running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = Path(tempfile.mkdtemp(prefix="load-")) / "gunicorn.log"
    phases = [(m, m == "saturation") for m in args.modes]
    if args.crash:
        phases.append(("crash", False))
    results: dict[str, dict[str, Any]] = {}
    with environment(args, log) as (database_url, base_url, server, postgres_pid):
        run = Run(
            args=args,
            database_url=database_url,
            base_url=base_url,
            server=server,
            postgres_pid=postgres_pid,
        )
        print(
            f"server {base_url}, gunicorn {args.workers} workers x {args.threads} threads, "
            f"log {log}"
        )
        for name, saturate in phases:
            floor = None
            if saturate:
                floor = asyncio.run(
                    floor_run(
                        base_url, concurrency=args.saturation_concurrency, requests=FLOOR_REQUESTS
                    )
                )
            results[name] = run.phase(
                name,
                time_scale=0.0 if saturate else args.time_scale,
                arrival=0.0 if saturate else args.arrival_seconds,
                crash=name == "crash",
                concurrency=args.saturation_concurrency if saturate else None,
            )
            if floor is not None:
                results[name]["floor_healthz"] = floor
                results[name]["requests_vs_floor"] = (
                    round(results[name]["requests_per_s"] / floor["requests_per_s"], 2)
                    if floor["requests_per_s"]
                    else 0
                )
            print_phase(name, results[name])
    server_errors = log.read_text(errors="replace").count("Traceback") if log.exists() else 0
    missed = targets_check(results, args.p99_target_ms, args.ratings_target)
    met = summary_print(args, results, missed=missed, server_tracebacks=server_errors)
    return 0 if met else 1
