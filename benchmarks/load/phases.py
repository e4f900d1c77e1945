"""The phases of a run: burst, saturation and crash, and the ``/healthz`` baseline.

A phase creates its own study, sends its participants through it, measures what that cost
the machine and checks the database afterwards; the crash phase also kills the server
midway and starts it again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.load.checks import study_check, study_create
from benchmarks.load.client import HTTP_ERRORS, ConnectionPool
from benchmarks.load.participant import Settings, participants_run
from benchmarks.load.report import Recorder, percentile
from benchmarks.load.servers import PROXY_HEADERS, Gunicorn, group_cpu


async def floor_run(base_url: str, *, concurrency: int, requests: int) -> dict[str, Any]:
    """The same server's rate on its cheapest page that reaches the database (``/healthz``:
    one ``SELECT 1``, a JSON answer), with as many requests in flight as at saturation.

    The saturation figures are read against it: it is what this machine gives a Django
    request through the same gunicorn, middleware and database connection when the view
    itself does next to nothing, so the ratio shows what the participant pages add.
    """
    client = ConnectionPool(
        base_url, max_connections=concurrency, keepalive_expiry=2.0, timeout=30.0
    )
    latencies: list[float] = []
    failures = 0
    left = requests

    async def loop() -> None:
        nonlocal left, failures
        while left > 0:
            left -= 1
            began = time.perf_counter()
            try:
                response = await client.request("GET", "/healthz", headers=dict(PROXY_HEADERS))
            except HTTP_ERRORS:
                failures += 1
                continue
            if response.status_code != 200:
                failures += 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.monotonic()
    try:
        await asyncio.gather(*(loop() for _ in range(concurrency)))
    finally:
        client.close()
    wall = time.monotonic() - began
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall, 1) if wall else 0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else 0,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else 0,
        "errors": failures,
    }


@dataclass
class Run:
    args: argparse.Namespace
    database_url: str
    base_url: str
    server: Gunicorn | None
    postgres_pid: int | None = None
    server_cpu_lost: float = 0.0
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    def phase(
        self,
        name: str,
        *,
        time_scale: float,
        arrival: float,
        crash: bool,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        slug = f"load-{name}-{self.run_id}"
        study_create(slug=slug, questions=self.args.questions)
        pids = [f"{name}{self.run_id}{n:05d}" for n in range(self.args.participants)]
        settings = Settings(
            base_url=self.base_url,
            slug=slug,
            time_scale=time_scale,
            behind_proxy=self.server is not None,
            recover=True,
            htmx_share=self.args.htmx_share,
        )
        recorder = Recorder()
        outage: dict[str, Any] = {}
        load_before = os.getloadavg()
        cpu_before = _cpu_times()
        used_before = self._cpu_used()
        wall, finished = asyncio.run(
            participants_run(
                settings=settings,
                recorder=recorder,
                pids=pids,
                arrival_seconds=arrival,
                deadline_seconds=self.args.phase_seconds,
                concurrency=concurrency,
                during=self._crash_midway(outage) if crash else None,
            )
        )
        # Taken before the database check, which runs in this process and is not load.
        used_after = self._cpu_used()
        shares = _cpu_shares(cpu_before, _cpu_times())
        result = {
            "participants": len(pids),
            "finished": finished,
            "time_scale": time_scale,
            "arrival_seconds": arrival,
            "concurrency": concurrency or len(pids),
            **recorder.summary(wall),
            "database": study_check(slug=slug, acks=recorder.acks, pids=pids),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_busy_share": shares["busy"],
            "cpu_iowait_share": shares["iowait"],
            "cpu_steal_share": shares["steal"],
            "cpu_seconds": {
                part: round(seconds - used_before.get(part, 0.0), 1)
                for part, seconds in used_after.items()
            },
        }
        if crash:
            result["crash"] = outage
        return result

    def _cpu_used(self) -> dict[str, float]:
        """CPU seconds so far of this load generator, the app server and the database.

        Shows how the two cores were shared: the simulated browsers compete with the
        server for the same CPUs. The server's figure is that of its live processes.
        """
        used = {"load generator": sum(os.times()[:2])}
        if self.server is not None and self.server.process is not None:
            used["gunicorn"] = group_cpu(self.server.process.pid) + self.server_cpu_lost
        if self.postgres_pid is not None:
            used["postgresql"] = group_cpu(self.postgres_pid)
        return used

    def _crash_midway(self, outage: dict[str, Any]) -> Any:
        server = self.server
        assert server is not None
        # Kill once about a third of the expected submissions are in, so participants
        # are spread over every stage of the flow when the server goes down.
        target = max(1, self.args.participants * 14 // 3)

        async def crash(recorder: Recorder) -> None:
            deadline = time.monotonic() + self.args.phase_seconds
            while len(recorder.acks) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            outage["acknowledged_before_kill"] = len(recorder.acks)
            # The restarted server counts its CPU from zero; keep what the killed one used.
            self.server_cpu_lost += group_cpu(server.process.pid) if server.process else 0.0
            killed = time.monotonic()
            await asyncio.to_thread(server.kill)
            outage["restart_s"] = round(await asyncio.to_thread(server.start), 2)
            outage["down_s"] = round(time.monotonic() - killed, 2)

        return crash


def _cpu_times() -> list[float]:
    """The machine's CPU time so far: user, nice, system, idle, iowait, irq, softirq, steal..."""
    with open("/proc/stat") as handle:
        return [float(x) for x in handle.readline().split()[1:]]


def _cpu_shares(before: list[float], after: list[float]) -> dict[str, float]:
    """Shares of the machine's CPU time between two readings: busy (neither idle nor
    waiting on the disk), waiting on the disk (iowait) and taken by the host (steal)."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent)
    if not total:
        return {"busy": 0.0, "iowait": 0.0, "steal": 0.0}
    return {
        "busy": round(1 - (spent[3] + spent[4]) / total, 2),
        "iowait": round(spent[4] / total, 2),
        "steal": round(spent[7] / total, 2) if len(spent) > 7 else 0.0,
    }
