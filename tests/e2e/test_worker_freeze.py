"""A worker paused (SIGSTOP) past WORKER_TIMEOUT, its leases returned to the queue by the
others, then resumed and stopped: it drains at once, and the crawl loses nothing and stores
nothing twice. Three workers on a private redis-server, the demo outlet on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from conftest import run_crawler, store_count, wait_for
from test_distributed import KEYS, assert_each_listed_article_once, assert_redis_drained, schedule

from crawler.core.stalls import (
    latency_without_stalls,
    stall_since,
    stalled_within,
    wait_without_stalls,
)
from crawler.distributed.scheduler import still_held

#: how long the worker stands still: five times WORKER_TIMEOUT
PAUSE = 20.0
SETTINGS = (
    "-s", "WORKER_HEARTBEAT=1", "-s", "WORKER_TIMEOUT=4",
    # AutoThrottle as in production (the tests' defaults turn it off), at one request in
    # flight per latency: a pause read as latency would space requests PAUSE apart
    "-s", "AUTOTHROTTLE_ENABLED=True", "-s", "AUTOTHROTTLE_TARGET_CONCURRENCY=1",
    # nor may the pause pass for a timeout
    "-s", f"DOWNLOAD_TIMEOUT={PAUSE + 10:g}",
)


def test_a_stall_is_the_time_past_the_tick_and_its_tolerance():
    assert stall_since(10.0, 10.9, interval=0.5, tolerance=1.0) is None
    assert stall_since(10.0, 12.0, interval=0.5, tolerance=1.0) == (10.5, 12.0)


def test_a_latency_loses_the_stalls_within_it():
    stalls = [(5.0, 25.0), (40.0, 41.0)]
    assert stalled_within(0.0, 30.0, stalls) == 20.0
    # answered at 30 after 26 s, of which 20 the process stood still
    assert latency_without_stalls(26.0, 30.0, stalls) == pytest.approx(6.0)
    assert latency_without_stalls(0.2, 30.0, stalls) == pytest.approx(0.2)
    assert latency_without_stalls(20.5, 25.0, stalls) == 0.5


def test_a_wait_leaves_out_the_slices_the_process_stood_still():
    def waits(pauses: dict[int, float], ready_at: int | None = None):
        """A clock and a wait on it: the n-th slice takes what it asked, plus pauses[n]."""
        now, slices = [0.0], []

        def wait(seconds: float) -> bool:
            slices.append(seconds)
            now[0] += seconds + pauses.get(len(slices), 0.0)
            return len(slices) == ready_at
        return wait, (lambda: now[0]), slices

    # 20 s stood still in the second slice: 3 s of waiting still take 6 slices of 0.5
    wait, clock, slices = waits({2: 20.0})
    assert not wait_without_stalls(wait, 3.0, clock)
    assert slices == [0.5] * 6 and clock() == 23.0
    # late by less than the tolerance: a busy process, the time counts
    wait, clock, slices = waits({2: 0.9})
    assert not wait_without_stalls(wait, 3.0, clock)
    assert len(slices) == 5 and sum(slices) == pytest.approx(2.1)
    # what is waited for comes after the stall: no timeout
    wait, clock, _ = waits({1: 20.0}, ready_at=2)
    assert wait_without_stalls(wait, 1.0, clock)


def test_only_requests_still_leased_are_kept():
    assert still_held(["a", "b", "c"], [True, False, True]) == ["a", "c"]


def worker_id(worker) -> str:
    return re.search(r"Worker (\S+) taking work from Redis", worker.output()).group(1)


def stat(worker, name: str) -> int:
    """A figure of the stats a stopped worker dumped (0 when it has none)."""
    found = re.search(rf"'{re.escape(name)}': (\d+)", worker.output())
    return int(found.group(1)) if found else 0


def settled(client) -> bool:
    """Nothing queued, leased or waiting for a mirror (a document every mirror failed just
    now waits a few seconds for one, then a worker finishes it)."""
    return not any(
        client.zcard(key) if kind != "inflight" else client.hlen(key)
        for kind in ("queue", "inflight", "waiting")
        for key in client.scan_iter(f"{KEYS.prefix}:{kind}:*")
    )


@pytest.mark.parametrize("sigterm_after", [0.0, 5.0], ids=["at-once", "at-5s"])
def test_a_worker_resumed_after_its_leases_were_taken_over_drains_at_once(
    demo_outlet, redis_server, workers, tmp_path, sigterm_after
):
    fx = demo_outlet("dead", "flaky", "healthy", articles=200, delay=0.1,
                     politeness={"requests_per_second": 20})
    store = f"sqlite:///{tmp_path}/crawl.db"
    crew = [workers(redis_server.url, store, fx.outlet_dir, *SETTINGS) for _ in range(3)]
    client = redis_server.client()
    wait_for(lambda: client.zcard(KEYS.workers) == len(crew), 60, "every worker's heartbeat")
    schedule(fx, redis_server.url)
    paused = crew[0]
    name = worker_id(paused)
    wait_for(lambda: store_count(store) >= 20, 60, "some articles stored")
    wait_for(lambda: client.hlen(KEYS.inflight(name)) >= 8, 60, "requests leased to it")

    os.kill(paused.process.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    wait_for(lambda: client.zscore(KEYS.workers, name) is None, PAUSE, "its leases taken over")
    time.sleep(max(0.0, PAUSE - (time.monotonic() - stopped_at)))
    os.kill(paused.process.pid, signal.SIGCONT)
    time.sleep(sigterm_after)
    took = paused.stop(signal.SIGTERM)
    assert took < 30, f"drained in {took:.1f} s"
    assert paused.process.returncode == 0, paused.output()[-3000:]
    assert "its leases went back to the queue" in paused.output()

    wait_for(lambda: store_count(store) >= len(fx.expected_articles()), 120,
             "every article stored")
    wait_for(lambda: settled(client), 60, "the crawl to settle")
    for worker in crew[1:]:
        assert worker.stop(signal.SIGTERM) < 30
        assert worker.process.returncode == 0, worker.output()[-3000:]
    assert_each_listed_article_once(fx, store)
    # written once in all: a second write of an article (the paused worker's and its
    # taker's) changes nothing and counts nothing
    assert sum(stat(w, "articles/new_or_changed") for w in crew) == len(fx.expected_articles())
    assert_redis_drained(client)
    result = run_crawler("status", "--redis", redis_server.url, "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)["outlets"][fx.name]
    assert (state["queued"], state["in_flight"], state["waiting"]) == (0, 0, 0), state
    print(f"drained in {took:.1f} s after SIGCONT + {sigterm_after:g} s; "
          f"dropped {stat(paused, 'scheduler/dropped_taken_over')} taken requests")
