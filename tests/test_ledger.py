"""RequestLedger: each request ends once, counted by its outcome; in a worker, the end
releases the request's lease by a direct call to the scheduler, whose failure is seen."""

from __future__ import annotations

import logging

from conftest import leasing_scheduler
from scrapy import Request

from crawler.context import crawl_context
from crawler.core import signals
from crawler.core.steps import Ended, Parked
from crawler.distributed.keys import RedisKeys
from crawler.distributed.scheduler import LeasingScheduler
from crawler.ledger import RequestHandled

KEYS = RedisKeys()


def article(number: int) -> Request:
    return Request(f"http://a.example/news/{number}", meta={"outlet": "demo"})


def outcomes_heard(crawler) -> list[str]:
    heard: list[str] = []
    crawler.signals.connect(lambda request, outcome: heard.append(outcome),
                            signal=signals.request_finished, weak=False)
    return heard


def test_a_request_ends_once_and_is_counted(redis_url):
    crawler = leasing_scheduler(redis_url).crawler
    ledger, heard = crawl_context(crawler).ledger, outcomes_heard(crawler)
    request = article(1)
    ledger.finish(request, "given_up")
    ledger.finish(request, "stored")
    assert heard == ["given_up"]
    assert crawler.stats.get_value("requests/ended/given_up") == 1
    assert crawler.stats.get_value("requests/ended/stored") is None
    assert ledger.lost == [request.url]


def test_a_dropped_request_ends_or_waits(redis_url):
    crawler = leasing_scheduler(redis_url).crawler
    ledger, heard = crawl_context(crawler).ledger, outcomes_heard(crawler)
    ended, parked = article(1), article(2)
    handled = ledger.dropped(ended, Ended("robots", "forbidden by robots.txt"))
    assert isinstance(handled, RequestHandled) and str(handled) == "forbidden by robots.txt"
    assert isinstance(ledger.dropped(parked, Parked("waiting for a mirror")), RequestHandled)
    assert heard == ["robots"]  # a parked request has not ended: its lease stays


def test_the_end_releases_the_lease_in_redis(redis_url):
    scheduler = leasing_scheduler(redis_url, SCHEDULER_ACK_DELAY=0)
    ledger = crawl_context(scheduler.crawler).ledger
    assert ledger.lease_keeper is scheduler
    scheduler.queues.push([("demo", article(1))])
    [taken] = scheduler.queues.take("demo")
    inflight = KEYS.inflight(scheduler.worker)
    assert scheduler.server.hexists(inflight, taken.meta["lease"])
    ledger.finish(taken, "stored")
    assert not scheduler.server.hexists(inflight, taken.meta["lease"])


class _BrokenScheduler(LeasingScheduler):
    """A scheduler with a bug in its acknowledgement."""

    def request_finished(self, request: Request, outcome: str) -> None:
        raise KeyError("lease")


def test_a_failed_release_is_seen_and_the_request_done_again(redis_url, caplog):
    working = leasing_scheduler(redis_url)
    crawler = working.crawler
    broken = _BrokenScheduler(crawler, working.server)
    broken.queues, broken.spider = working.queues, working.spider
    ledger, heard = crawl_context(crawler).ledger, outcomes_heard(crawler)
    assert ledger.lease_keeper is broken
    broken.queues.push([("demo", article(1))])
    [taken] = broken.queues.take("demo")
    with caplog.at_level(logging.ERROR, logger="crawler.ledger"):
        ledger.finish(taken, "stored")
    assert [r.getMessage() for r in caplog.records] == [
        f"Could not release the lease of {taken.url} (stored)"]
    assert crawler.stats.get_value("leases/ack_failed") == 1
    assert heard == ["stored"]  # what only watches still hears of it
    # the lease stays, and goes back to the queue when the worker stops: done again, not lost
    inflight = KEYS.inflight(broken.worker)
    assert broken.server.hexists(inflight, taken.meta["lease"])
    broken.close("shutdown")
    assert [r.url for r in broken.queues.take("demo")] == [taken.url]
