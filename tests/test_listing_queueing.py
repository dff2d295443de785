"""A huge listing: capped at LISTING_MAX_LINKS, and its links queued in Redis in batches, a
bounded number of round trips rather than one or two per link."""

from __future__ import annotations

import signal
import time

from conftest import run_crawler, wait_for

from crawler.distributed.keys import RedisKeys

KEYS = RedisKeys()
LINKS = 100_000
CAP = 10_000


def huge_listing(links: int) -> bytes:
    items = "".join(f'<li><a href="/news/2024/01/01/{n}/">Story {n}</a></li>'
                    for n in range(1, links + 1))
    return f"<!DOCTYPE html><html><body><ul>{items}</ul></body></html>".encode()


def calls(client, command: str) -> int:
    return client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def test_a_huge_listing_is_capped_and_queued_in_few_round_trips(
    nginx_outlet, redis_server, workers, tmp_path
):
    # slow politeness: the worker takes few articles while the listing's links are queued
    fx = nginx_outlet("healthy", pages="demo", articles=10,
                      politeness={"requests_per_second": 0.5, "concurrency": 1})
    fx.serve_page(0, "/section/politics", huge_listing(LINKS))
    client = redis_server.client()
    worker = workers(redis_server.url, f"sqlite:///{tmp_path}/crawl.db", fx.outlet_dir,
                     "-s", f"LISTING_MAX_LINKS={CAP}")
    wait_for(lambda: client.zcard(KEYS.workers), 60, "the worker's first heartbeat")
    client.config_resetstat()
    reads_before = client.info("stats")["total_reads_processed"]
    started = time.monotonic()
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", redis_server.url, "--section", "politics")
    assert result.returncode == 0, result.stderr
    polls = 0

    def queued() -> bool:
        nonlocal polls
        polls += 1
        return calls(client, "zadd") >= CAP + 1  # the listing itself, and its links

    wait_for(queued, 60, f"{CAP} links queued", interval=0.5)
    elapsed = time.monotonic() - started
    reads = client.info("stats")["total_reads_processed"] - reads_before
    transactions = calls(client, "exec")
    checked = calls(client, "hsetnx")
    print(f"{elapsed=:.1f} s {reads=} {polls=} {transactions=} {checked=}")
    worker.stop(signal.SIGTERM)
    # queued once each: back in the queue now, but for the few the worker finished
    assert CAP - 50 <= client.zcard(KEYS.queue(fx.name)) <= CAP
    log = worker.output()
    assert elapsed < 60
    assert "LISTING_MAX_LINKS" in log and f"{LINKS - CAP} further links left out" in log
    assert "'listing/links_capped': 1" in log
    # one MULTI/EXEC per batch of 100, not one per link
    assert transactions < CAP / 50, transactions
    # every read of the server, the dupefilter's pipelines and the worker's other traffic
    # included (a batch of 100 requests, about 100 KB, takes a few 16 KB reads): link by
    # link it would be at least two round trips per link
    assert reads - 3 * polls < CAP / 5, (reads, polls)
    assert checked >= CAP  # every link was checked by the dupefilter
