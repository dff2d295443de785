"""RequestLedger: each request ends once, counted by its outcome; in a worker, the end
releases the request's lease by a direct call to the scheduler, whose failure is seen."""

from __future__ import annotations

import logging

import pytest
from conftest import leasing_scheduler, project_crawler
from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.exceptions import DontCloseSpider

from crawler.context import crawl_context
from crawler.core import meta, signals
from crawler.core.steps import Ended, Parked
from crawler.distributed.keys import RedisKeys
from crawler.distributed.scheduler import LeasingScheduler
from crawler.distributed.status import read_status
from crawler.ledger import REFUSED, UNACCOUNTED, WAITING_ROOM, RequestHandled

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


# -- the account of open documents ----------------------------------------------------------------


def standalone_ledger():
    crawler = project_crawler()
    return crawler, crawl_context(crawler).ledger


def scheduled(crawler, request: Request) -> Request:
    """What the engine does with a request it is handed: ``request_scheduled``."""
    crawler.signals.send_catch_log(scrapy_signals.request_scheduled, request=request,
                                   spider=None)
    return request


def test_a_document_opens_when_scheduled_and_closes_at_its_end():
    crawler, ledger = standalone_ledger()
    request = scheduled(crawler, article(1))
    document = request.meta[meta.DOCUMENT]
    assert set(ledger.open) == {document}
    assert not request.dont_filter  # a new document: the dupefilter decides
    ledger.finish(request, "stored")
    assert ledger.open == {}


def test_an_attempt_of_an_open_document_is_never_a_duplicate():
    crawler, ledger = standalone_ledger()
    first = scheduled(crawler, article(1))
    # a redirect back to the same URL, as Scrapy's RedirectMiddleware makes it
    again = scheduled(crawler, first.replace(url=first.url))
    assert again.dont_filter
    assert again.meta[meta.DOCUMENT] == first.meta[meta.DOCUMENT]
    assert len(ledger.open) == 1


def test_a_duplicate_dropped_by_the_scheduler_is_no_document():
    crawler, ledger = standalone_ledger()
    duplicate = scheduled(crawler, article(1))
    crawler.signals.send_catch_log(scrapy_signals.request_dropped, request=duplicate,
                                   spider=None)
    assert ledger.open == {}
    assert crawler.stats.get_value("requests/ended/refused") is None


def test_a_refused_attempt_ends_lost():
    crawler, ledger = standalone_ledger()
    attempt = scheduled(crawler, scheduled(crawler, article(1)).replace(url=article(1).url))
    crawler.signals.send_catch_log(scrapy_signals.request_dropped, request=attempt, spider=None)
    assert crawler.stats.get_value(f"requests/ended/{REFUSED}") == 1
    assert ledger.lost == [attempt.url]


def test_a_document_no_path_ends_is_unaccounted_at_the_second_idle_moment():
    crawler, ledger = standalone_ledger()
    heard = outcomes_heard(crawler)
    forgotten = scheduled(crawler, article(1))
    waiting = scheduled(crawler, article(2))
    ledger.held_by(waiting, WAITING_ROOM)  # held, not forgotten
    with pytest.raises(DontCloseSpider):
        ledger.on_spider_idle()  # the first idle moment: a store's batch may be on its way
    assert heard == []
    ledger.on_spider_idle()
    assert heard == [UNACCOUNTED]
    assert crawler.stats.get_value(f"requests/ended/{UNACCOUNTED}") == 1
    assert ledger.lost == [forgotten.url]
    assert set(ledger.open) == {waiting.meta[meta.DOCUMENT]}


def test_a_document_that_ends_between_two_idle_moments_is_not_unaccounted():
    crawler, ledger = standalone_ledger()
    request = scheduled(crawler, article(1))
    with pytest.raises(DontCloseSpider):
        ledger.on_spider_idle()
    ledger.finish(request, "stored")
    ledger.on_spider_idle()
    assert crawler.stats.get_value(f"requests/ended/{UNACCOUNTED}") is None


def test_a_document_open_when_the_spider_closes_is_unaccounted():
    crawler, ledger = standalone_ledger()
    scheduled(crawler, article(1))
    ledger.on_spider_closed()
    assert crawler.stats.get_value(f"requests/ended/{UNACCOUNTED}") == 1


def test_a_second_end_of_a_document_is_not_counted():
    crawler, ledger = standalone_ledger()
    first = scheduled(crawler, article(1))
    copy = first.replace(url=first.url)  # two requests of one document alive: a bug
    ledger.finish(first, "stored")
    ledger.finish(copy, "given_up")
    assert crawler.stats.get_value("requests/ended/given_up") is None
    assert crawler.stats.get_value("documents/ended_twice") == 1


def test_a_worker_hands_its_documents_to_redis(redis_url):
    scheduler = leasing_scheduler(redis_url, SCHEDULER_PUSH_BATCH=1)
    crawler = scheduler.crawler
    ledger = crawl_context(crawler).ledger
    # a seed queued by `crawler schedule` has no document yet: it opens when taken
    scheduler.queues.push([("demo", article(1))])
    taken = scheduler.next_request()
    document = taken.meta[meta.DOCUMENT]
    assert set(ledger.open) == {document}
    # a link it leads to opens here, and leaves once queued in Redis
    link = scheduled(crawler, article(2))
    scheduler.enqueue_request(link)
    assert set(ledger.open) == {document}
    # the document goes to another mirror: queued with its lease released, Redis holds it
    again = scheduled(crawler, taken.replace(url="http://b.example/news/1"))
    assert scheduler.enqueue_request(again)
    assert ledger.open == {}
    retaken = [scheduler.next_request() for _ in range(2)]
    assert {r.meta[meta.DOCUMENT] for r in retaken} == {document, link.meta[meta.DOCUMENT]}


def test_crawler_status_lists_the_documents_a_worker_holds_for_long(redis_url):
    scheduler = leasing_scheduler(redis_url, DOCUMENT_OPEN_WARN=0.0)
    scheduler.queues.push([("demo", article(1)), ("demo", article(2))])
    held = scheduler.next_request()
    scheduler.beat()
    status = read_status(scheduler.server, KEYS, worker_timeout=20)
    assert [(d["url"], d["worker"], d["holder"]) for d in status["open_documents"]] == [
        (held.url, scheduler.worker, None)]
    crawl_context(scheduler.crawler).ledger.finish(held, "stored")
    scheduler.beat()
    assert read_status(scheduler.server, KEYS, worker_timeout=20)["open_documents"] == []
