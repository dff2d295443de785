"""A huge listing: capped at LISTING_MAX_LINKS, and its links queued in Redis in batches, a
bounded number of round trips rather than one or two per link; and the scheduler's batches
(takes, delayed acknowledgements) keep every lease until its request has ended."""

from __future__ import annotations

import signal
import time

from conftest import leasing_scheduler, run_crawler, wait_for

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
    scripts = calls(client, "evalsha")
    checked = calls(client, "hsetnx")
    print(f"{elapsed=:.1f} s {reads=} {polls=} {transactions=} {scripts=} {checked=}")
    worker.stop(signal.SIGTERM)
    # queued once each: back in the queue now, but for the few the worker finished
    assert CAP - 50 <= client.zcard(KEYS.queue(fx.name)) <= CAP
    log = worker.output()
    assert elapsed < 60
    assert "LISTING_MAX_LINKS" in log and f"{LINKS - CAP} further links left out" in log
    assert "'listing/links_capped': 1" in log
    # one push script per batch of 100, not one per link: each adds the outlet to the set of
    # queues once (the other scripts, takes and politeness, add nothing)
    pushes = calls(client, "sadd")
    assert pushes < CAP / 50, (pushes, scripts, transactions)
    # every read of the server, the dupefilter's pipelines and the worker's other traffic
    # included (a batch of 100 requests, about 100 KB, takes a few 16 KB reads): link by
    # link it would be at least two round trips per link
    assert reads - 3 * polls < CAP / 5, (reads, polls)
    assert checked >= CAP  # every link was checked by the dupefilter


def test_a_listing_is_acknowledged_only_once_its_links_are_in_redis(redis_url):
    from scrapy import Request

    # acknowledgements wait for the next take, however slow this machine is
    scheduler = leasing_scheduler(redis_url, SCHEDULER_ACK_DELAY=3600)
    queues, client = scheduler.queues, scheduler.server
    inflight = KEYS.inflight(scheduler.worker)
    queues.push([("demo", Request("http://a.example/section/x", meta={"outlet": "demo"},
                                  dont_filter=True))])
    [listing] = queues.take("demo")
    lease = listing.meta["lease"]

    def article(n: int) -> Request:
        return Request(f"http://a.example/news/{n}", meta={"outlet": "demo"})

    for n in range(250):
        assert scheduler.enqueue_request(article(n))
    assert client.zcard(KEYS.queue("demo")) == 200  # two full batches; 50 wait for the tick
    scheduler.request_finished(listing, "listing_handled")
    assert client.hexists(inflight, lease)  # the acknowledgement waits for the next take
    scheduler.next_request()  # the engine's tick: the rest of the links, then take and ack
    assert not client.hexists(inflight, lease)
    taken = client.hlen(inflight)
    assert taken == scheduler.take_count
    assert client.zcard(KEYS.queue("demo")) + taken == 250

    for n in range(300):  # 250 seen already, 50 new
        scheduler.enqueue_request(article(n))
    scheduler.next_request()  # served from what was taken; the rest of the links go out
    assert client.zcard(KEYS.queue("demo")) + client.hlen(inflight) == 300
    assert scheduler.crawler.stats.get_value("dupefilter/filtered") == 250


def test_a_stopping_worker_acknowledges_what_ended_and_returns_what_it_took(redis_url):
    from scrapy import Request

    scheduler = leasing_scheduler(redis_url, SCHEDULER_ACK_DELAY=3600, SCHEDULER_TAKE_BATCH=4)
    queues, client = scheduler.queues, scheduler.server
    queues.push(("demo", Request(f"http://a.example/news/{n}", meta={"outlet": "demo"}))
                for n in range(10))
    first, second = scheduler.next_request(), scheduler.next_request()
    assert client.hlen(KEYS.inflight(scheduler.worker)) == 4  # two started, two waiting here
    assert client.zcard(KEYS.queue("demo")) == 6
    scheduler.request_finished(first, "stored")  # its acknowledgement waits
    scheduler.close("shutdown")
    # the ended request is gone for good; the one in flight and the two never started are back
    assert client.hlen(KEYS.inflight(scheduler.worker)) == 0
    queued = {r.url for r in queues.take("demo", 10)}
    assert len(queued) == 9 and first.url not in queued and second.url in queued


def test_a_duplicate_retry_releases_its_lease_in_the_same_script(redis_url):
    from scrapy import Request

    scheduler = leasing_scheduler(redis_url)
    queues, client = scheduler.queues, scheduler.server
    queues.push([("demo", Request("http://a.example/news/1", meta={"outlet": "demo"}))])
    [taken] = queues.take("demo")
    # the same document, already seen by the dupefilter, queued again with its lease
    scheduler.df.request_seen(taken)
    retry = taken.replace(priority=5)
    assert not scheduler.enqueue_request(retry)
    assert client.hlen(KEYS.inflight(scheduler.worker)) == 0
    assert client.zcard(KEYS.queue("demo")) == 0


def test_batch_decisions():
    from crawler.distributed.scheduler import ack_due, may_take, take_size

    assert take_size(8, 16) == 8 and take_size(32, 16) == 16 and take_size(0, 16) == 1
    assert not ack_due(None, 10.0, 1.0)
    assert not ack_due(9.5, 10.0, 1.0) and ack_due(9.0, 10.0, 1.0) and ack_due(10.0, 10.0, 0)
    assert may_take(None, 10.0, 0.2) and not may_take(9.9, 10.0, 0.2) and may_take(9.7, 10.0, 0.2)
