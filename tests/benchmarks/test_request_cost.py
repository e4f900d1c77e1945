"""The request-cost benchmark's arithmetic and its reading of the kernel's CPU counters."""

from __future__ import annotations

import os
import time

import pytest

from benchmarks.request_cost import (
    Costs,
    cpu_ns_between,
    group_cpu_ns,
    schedstat_available,
    summarise,
)


def _costs() -> Costs:
    costs = Costs()
    # Two participants: each loads one page (4 ms + 1 ms) and posts two items (2 ms + 1 ms).
    for _ in range(2):
        costs.add("page GET", server=4.0, database=1.0, client=0.5)
        for server in (1.0, 3.0):
            costs.add("item POST", server=server, database=1.0, client=0.5)
    return costs


def test_each_page_gets_its_count_and_mean_cost() -> None:
    summary = summarise(_costs(), participants=2, rated_items=2, cores=2)

    assert summary["pages"]["item POST"] == {
        "n": 4,
        "server_ms": 2.0,
        "server_median_ms": 2.0,
        "database_ms": 1.0,
        "client_ms": 0.5,
    }
    assert summary["requests_per_participant"] == 3.0


def test_the_ceiling_is_the_cores_divided_by_what_a_rated_item_costs() -> None:
    summary = summarise(_costs(), participants=2, rated_items=2, cores=2)

    # A participant: 8 ms gunicorn + 3 ms PostgreSQL = 11 ms for 2 rated items.
    assert summary["per_participant_ms"] == {"server": 8.0, "database": 3.0, "client": 1.5}
    assert summary["per_rated_item_ms"] == 5.5
    assert summary["ceiling_rated_items_per_s"] == pytest.approx(2000 / 5.5, abs=0.05)
    assert summary["ceiling_with_client_rated_items_per_s"] == pytest.approx(2000 / 6.25, abs=0.05)


def test_no_participants_is_refused() -> None:
    with pytest.raises(ValueError, match="participants"):
        summarise(_costs(), participants=0)


@pytest.mark.skipif(not schedstat_available(), reason="this kernel exposes no schedstat")
def test_the_counter_grows_with_the_cpu_a_process_spends() -> None:
    before = group_cpu_ns(os.getpid())
    began = time.process_time_ns()
    while time.process_time_ns() - began < 50_000_000:  # 50 ms of CPU
        pass

    spent = cpu_ns_between(before, group_cpu_ns(os.getpid()))

    assert 40_000_000 <= spent < 2_000_000_000


def test_a_process_that_ended_between_readings_is_left_out_not_subtracted() -> None:
    # Process 2 ended (an autovacuum worker), process 3 started: 30 + 20, never 30 - 50.
    assert cpu_ns_between({1: 100, 2: 50}, {1: 130, 3: 20}) == 50
