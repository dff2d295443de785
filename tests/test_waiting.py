"""The waiting room: documents no mirror can take now. The rule of what goes back (written
once, for both rooms), the lines a user reads meanwhile, and the workers' room in Redis
built as a worker builds it, over its shared mirror health."""

from __future__ import annotations

import time

import pytest
from conftest import NEWS_MIRRORS, NEWS_OUTLET_FILE, outlet_crawler
from scrapy import Request

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.outlets import Outlet
from crawler.core.steps import Attempts, Ended
from crawler.distributed.keys import RedisKeys
from crawler.distributed.waiting import RedisWaitingRoom
from crawler.waiting import WaitingRoom, documents_to_release, outage_line

A, B = NEWS_MIRRORS
NEWS = Outlet(name="news", mirrors=[A, B], sections={"world": "/world"},
              article_url=r"^/a/\d+")


@pytest.mark.parametrize(("states", "next_probe_in", "released"), [
    ({A: True, B: False}, None, None),  # a mirror takes them: every one that is due
    ({A: True, B: True}, 30.0, None),
    ({A: False, B: False}, 0.0, 1),  # all out, a probe due: one goes, to probe
    ({A: False, B: False}, 12.5, 0),  # all out, the next probe later: none
    ({A: False, B: False}, None, 0),  # all out on content evidence: only checks probe them
], ids=["one-up", "all-up", "probe-due", "probe-later", "no-probe"])
def test_what_goes_back_to_the_crawl(states, next_probe_in, released):
    assert documents_to_release(states, next_probe_in) == released


def test_the_lines_say_what_waits_and_for_what():
    assert outage_line(NEWS, {A: False, B: False}, 7, 12.4) == (
        "all 2 mirrors of news out: 7 documents waiting, next probe in 12 s")
    assert outage_line(NEWS, {A: False, B: False}, 7, None) == (
        "all 2 mirrors of news out: 7 documents waiting")
    assert outage_line(NEWS, {A: True, B: False}, 3, None) == (
        "news: 3 documents waiting to be tried again")
    alone = Outlet(name="solo", mirrors=[A], sections={"world": "/world"},
                   article_url=r"^/a/\d+")
    assert outage_line(alone, {A: False}, 1, 0.0) == (
        "the mirror of solo out: 1 documents waiting, next probe in 0 s")


@pytest.fixture
def workers(tmp_path, redis_server):
    """Workers' crawlers on one Redis, each with its spider open: ``workers()`` is another.
    A mirror leaves rotation at its first failure and is probed ``cooldown`` seconds later."""
    opened = []

    def start(cooldown: float = 60.0):
        folder = tmp_path / f"worker{len(opened)}"
        folder.mkdir()
        crawler = outlet_crawler(folder, NEWS_OUTLET_FILE, "news", CRAWL_MODE="distributed",
                                 REDIS_URL=redis_server.url, MIRROR_FAILURE_THRESHOLD=1,
                                 MIRROR_COOLDOWN=cooldown)
        context = crawl_context(crawler)
        context.waiting.open(crawler.spider)
        opened.append(context)
        return crawler, context

    yield start
    for context in opened:
        context.waiting.close()


def article(number: int) -> Request:
    return Request(f"{A}/a/{number}", meta={meta.OUTLET: "news"})


def queued(redis_server) -> int:
    return int(redis_server.client().zcard(RedisKeys().queue("news")))


def test_a_workers_room_keeps_documents_in_redis_until_a_mirror_is_back(workers, redis_server):
    crawler, context = workers()
    room, health = context.waiting, context.health
    assert isinstance(room, RedisWaitingRoom) and isinstance(room, WaitingRoom)
    for mirror in (A, B):
        health.record_failure("news", mirror, "timeout")
    room.add(article(1), delay=0)
    room.add(article(2), delay=0)
    _, other = workers()
    assert other.waiting.count("news") == 2  # in Redis, not in this process
    room.tick()  # every mirror out, the next probe a minute away: nothing goes
    other.waiting.tick()
    assert (room.count("news"), queued(redis_server)) == (2, 0)
    health.record_success("news", B)
    other.waiting.tick()  # any worker sends them back, once
    room.tick()
    assert (room.count("news"), queued(redis_server)) == (0, 2)
    assert crawler.stats.get_value("documents/waited") == 2


def test_a_document_goes_back_once_its_delay_is_over(workers, redis_server):
    _, context = workers()
    context.waiting.add(article(1), delay=1.0)
    context.waiting.tick()  # every mirror is in rotation, but its delay is not over
    assert queued(redis_server) == 0
    time.sleep(1.1)
    context.waiting.tick()
    assert queued(redis_server) == 1


def test_while_every_mirror_is_out_one_document_goes_when_a_probe_is_due(workers, redis_server):
    _, context = workers(cooldown=1.0)
    for mirror in (A, B):
        context.health.record_failure("news", mirror, "connection_error")
    for number in range(3):
        context.waiting.add(article(number), delay=0)
    context.waiting.tick()
    assert queued(redis_server) == 0
    time.sleep(1.1)
    context.waiting.tick()  # the cool-down is over: one goes, and its answer probes
    assert (context.waiting.count("news"), queued(redis_server)) == (2, 1)


def test_past_the_horizon_a_workers_document_goes_though_no_mirror_is_back(workers,
                                                                            redis_server):
    # every mirror out for good (on content evidence: only a mirror check could bring one
    # back): a document whose horizon passed goes back to the crawl all the same, where the
    # failover gives it up; one still within it waits
    _, context = workers()
    for mirror in (A, B):
        context.health.record_failure("news", mirror, "block page", strong=True)
    horizon = context.waiting.give_up_after
    for number, since in ((1, time.time() - horizon - 1), (2, time.time())):
        request = article(number)
        request.meta[meta.ATTEMPTS] = Attempts(failed_on=[A, B], since=since).to_meta()
        context.waiting.add(request, delay=60)
    context.waiting.tick()
    assert (context.waiting.count("news"), queued(redis_server)) == (1, 1)
    decision = context.failover.reroute(context.waiting.queues.take("news")[0])
    assert isinstance(decision, Ended) and decision.outcome == "given_up"
