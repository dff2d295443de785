"""CompactDupeFilter against a real, private redis-server (fixtures from tests/redis_server.py,
imported by conftest.py)."""

from __future__ import annotations

import hashlib
import math
import time

import pytest
import redis
from scrapy import Request
from scrapy.core.scheduler import Scheduler as ScrapyScheduler
from scrapy.utils.test import get_crawler
from scrapy_redis.scheduler import Scheduler as RedisScheduler

from crawler.distributed.dupefilter import (
    DEFAULT_BUCKETS,
    CompactDupeFilter,
    LayoutMismatch,
)

DAY = 86400.0
FILTER = "crawler.distributed.dupefilter.CompactDupeFilter"


class Clock:
    """Unix time that a test moves on by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_crawler(url: str, **settings):
    crawler = get_crawler(settings_dict={"REDIS_URL": url, **settings})
    crawler.spider = crawler._create_spider()
    return crawler


def make_filter(url: str, **settings) -> CompactDupeFilter:
    return CompactDupeFilter.from_crawler(make_crawler(url, **settings))


def article(n: int, host: str = "https://www.presstv.ir") -> Request:
    return Request(f"{host}/Detail/2024/05/01/{n}/")


def fingerprints(count: int, start: int = 0) -> list[bytes]:
    return [hashlib.sha1(b"https://example.org/a/%d" % n).digest() for n in range(start, count)]


def test_new_then_seen(redis_url):
    dupefilter = make_filter(redis_url)
    assert dupefilter.request_seen(article(1)) is False
    assert dupefilter.request_seen(article(1)) is True
    assert dupefilter.request_seen(article(2)) is False
    # the default fingerprinter canonicalizes: same query in another order is the same request
    assert dupefilter.request_seen(Request("https://x.test/p?a=1&b=2")) is False
    assert dupefilter.request_seen(Request("https://x.test/p?b=2&a=1")) is True
    assert dupefilter.request_seen(Request("https://x.test/p?b=2&a=1", method="POST")) is False


def test_uses_the_crawlers_fingerprinter(redis_url):
    crawler = make_crawler(redis_url)
    dupefilter = CompactDupeFilter.from_crawler(crawler)
    assert dupefilter.fingerprinter is crawler.request_fingerprinter
    fingerprint = crawler.request_fingerprinter.fingerprint(article(7))
    assert dupefilter.fingerprint_seen(fingerprint) is False
    assert dupefilter.request_seen(article(7)) is True


def test_two_workers_share_what_they_have_seen(redis_url):
    worker_a = make_filter(redis_url)
    worker_b = make_filter(redis_url)
    assert worker_a.request_seen(article(1)) is False
    assert worker_b.request_seen(article(1)) is True
    assert worker_b.request_seen(article(2)) is False
    assert worker_a.request_seen(article(2)) is True


def test_two_workers_with_retention_share_what_they_have_seen(redis_url):
    settings = {"DUPEFILTER_RETENTION_DAYS": 60, "DUPEFILTER_PERIOD_DAYS": 30}
    worker_a = make_filter(redis_url, **settings)
    worker_b = make_filter(redis_url, **settings)
    assert worker_a.request_seen(article(1)) is False
    assert worker_b.request_seen(article(1)) is True


def test_filters_with_other_keys_are_independent(redis_url):
    mine = make_filter(redis_url)
    other = make_filter(redis_url, DUPEFILTER_KEY="crawler:dupefilter:other")
    assert mine.request_seen(article(1)) is False
    assert other.request_seen(article(1)) is False


def test_batch_agrees_with_single_lookups(redis_url):
    dupefilter = make_filter(redis_url)
    batch = fingerprints(10)
    assert dupefilter.fingerprint_seen(batch[3]) is False
    expected = [False] * 3 + [True] + [False] * 6 + [True, True]
    assert dupefilter.fingerprints_seen(batch + batch[:2]) == expected
    assert all(dupefilter.fingerprints_seen(batch))


def test_fields_are_binary_and_buckets_hold_them(redis_url):
    dupefilter = make_filter(redis_url)
    dupefilter.request_seen(article(1))
    keys = [k for k in dupefilter.server.keys("crawler:dupefilter:all:*")]
    assert len(keys) == 1
    fields = dupefilter.server.hkeys(keys[0])
    assert len(fields) == 1 and len(fields[0]) == 8


def test_forget(redis_url):
    dupefilter = make_filter(redis_url)
    dupefilter.request_seen(article(1))
    dupefilter.request_seen(article(2))
    assert dupefilter.forget(article(1)) is True
    assert dupefilter.forget(article(1)) is False
    assert dupefilter.request_seen(article(1)) is False  # may be tried again
    assert dupefilter.request_seen(article(1)) is True
    assert dupefilter.request_seen(article(2)) is True  # the others stay


def test_forget_with_retention_reaches_older_periods(redis_url):
    clock = Clock()
    dupefilter = make_filter(redis_url, DUPEFILTER_RETENTION_DAYS=3, DUPEFILTER_PERIOD_DAYS=1)
    dupefilter.clock = clock
    dupefilter.request_seen(article(1))
    clock.advance(2 * DAY)
    assert dupefilter.forget(article(1)) is True
    assert dupefilter.request_seen(article(1)) is False


def test_seen_count(redis_url):
    dupefilter = make_filter(redis_url, DUPEFILTER_BUCKETS=64)
    assert dupefilter.seen_count() == 0
    dupefilter.fingerprints_seen(fingerprints(1000))
    dupefilter.fingerprints_seen(fingerprints(1000))
    assert dupefilter.seen_count() == 1000
    dupefilter.forget_fingerprint(fingerprints(1)[0])
    assert dupefilter.seen_count() == 999


def test_retention_forgets_what_is_older_than_the_window(redis_url):
    clock = Clock(now=1_000 * DAY + 0.25 * DAY)  # a quarter into a period
    dupefilter = make_filter(redis_url, DUPEFILTER_RETENTION_DAYS=2, DUPEFILTER_PERIOD_DAYS=1)
    dupefilter.clock = clock
    assert dupefilter.request_seen(article(1)) is False
    clock.advance(1 * DAY)
    assert dupefilter.request_seen(article(2)) is False
    # remembered for at least the retention...
    clock.advance(1 * DAY - 1)
    assert dupefilter.request_seen(article(1)) is True
    assert dupefilter.request_seen(article(2)) is True
    # ...and at most retention + one period; being seen again does not extend it
    clock.advance(0.75 * DAY + 1)
    assert dupefilter.request_seen(article(1)) is False
    assert dupefilter.request_seen(article(2)) is True
    clock.advance(1 * DAY)
    assert dupefilter.request_seen(article(2)) is False
    assert dupefilter.request_seen(article(1)) is True  # recorded anew above


def test_retention_window_boundaries(redis_url):
    """At every offset into a period, a fingerprint is remembered for at least the retention
    and forgotten by ceil(retention / period) + 1 periods."""
    retention, period = 2.5, 1.0
    forgotten_by = (math.ceil(retention / period) + 1) * period
    for offset in (0.0, 0.1, 0.5, 0.999):
        clock = Clock(now=(2_000 + offset) * DAY)
        dupefilter = make_filter(
            redis_url,
            DUPEFILTER_KEY=f"retention-test:{offset}",
            DUPEFILTER_RETENTION_DAYS=retention,
            DUPEFILTER_PERIOD_DAYS=period,
        )
        dupefilter.clock = clock
        assert dupefilter.request_seen(article(1)) is False
        clock.advance(retention * DAY)
        assert dupefilter.request_seen(article(1)) is True
        clock.advance((forgotten_by - retention) * DAY)
        assert dupefilter.request_seen(article(2)) is False  # a fresh one in this period
        assert dupefilter.request_seen(article(1)) is False  # the first has gone


def test_period_keys_expire_when_they_leave_the_window(redis_url):
    clock = Clock(now=5_000.5 * DAY)
    dupefilter = make_filter(redis_url, DUPEFILTER_RETENTION_DAYS=2, DUPEFILTER_PERIOD_DAYS=1)
    dupefilter.clock = clock
    dupefilter.fingerprints_seen(fingerprints(100))
    keys = dupefilter.server.keys("crawler:dupefilter:5000:*")
    assert keys
    for key in keys:
        ttl = dupefilter.server.pttl(key)
        # the window ends at the end of period 5002: 2.5 days from now
        assert 2.5 * DAY * 1000 - 5_000 < ttl <= 2.5 * DAY * 1000


def test_period_keys_really_expire(redis_url):
    """A sub-second period on the real clock: Redis itself drops the keys."""
    seconds = 0.2 / DAY
    dupefilter = make_filter(
        redis_url, DUPEFILTER_RETENTION_DAYS=seconds, DUPEFILTER_PERIOD_DAYS=seconds
    )
    dupefilter.fingerprints_seen(fingerprints(100))
    assert dupefilter.server.keys("crawler:dupefilter:[0-9]*")
    deadline = time.monotonic() + 10
    while dupefilter.server.keys("crawler:dupefilter:[0-9]*") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dupefilter.server.keys("crawler:dupefilter:[0-9]*") == []
    assert dupefilter.seen_count() == 0


def test_close_keeps_the_fingerprints(redis_url):
    dupefilter = make_filter(redis_url)
    dupefilter.request_seen(article(1))
    dupefilter.close("finished")
    assert make_filter(redis_url).request_seen(article(1)) is True


def test_clear_removes_only_its_own_keys(redis_url):
    mine = make_filter(redis_url)
    mine_with_retention = make_filter(
        redis_url, DUPEFILTER_KEY="crawler:dupefilter:r", DUPEFILTER_RETENTION_DAYS=30
    )
    longer_key = make_filter(redis_url, DUPEFILTER_KEY="crawler:dupefilter:other")
    glob_key = make_filter(redis_url, DUPEFILTER_KEY="crawler:dupefilter*")
    for dupefilter in (mine, mine_with_retention, longer_key, glob_key):
        dupefilter.fingerprints_seen(fingerprints(200))
    server = mine.server
    server.set("crawler:dupefilter", "a key named like the prefix")
    server.set("crawler:dupefilter:all", "not a bucket")
    server.set("crawler:dupefilterx:all:1", "another prefix")
    server.rpush("default:requests", "queued")
    before = set(server.keys("*"))

    mine.clear()

    removed = before - set(server.keys("*"))
    assert b"crawler:dupefilter:layout" in removed
    buckets = removed - {b"crawler:dupefilter:layout"}
    assert buckets and all(k.startswith(b"crawler:dupefilter:all:") for k in buckets)
    assert mine.seen_count() == 0
    assert not any(mine.fingerprints_seen(fingerprints(200)))
    assert all(longer_key.fingerprints_seen(fingerprints(200)))
    assert all(mine_with_retention.fingerprints_seen(fingerprints(200)))
    assert all(glob_key.fingerprints_seen(fingerprints(200)))

    glob_key.clear()  # its glob characters match only themselves
    assert all(longer_key.fingerprints_seen(fingerprints(200)))
    assert not any(glob_key.fingerprints_seen(fingerprints(200)))


def test_buckets_stay_listpacks_at_100k_urls(redis_url):
    dupefilter = make_filter(redis_url)
    assert dupefilter.buckets == DEFAULT_BUCKETS
    batch = fingerprints(100_000)
    assert not any(dupefilter.fingerprints_seen(batch))
    server = dupefilter.server
    keys = list(server.scan_iter(match="crawler:dupefilter:all:*", count=1000))
    assert len(keys) == DEFAULT_BUCKETS
    pipe = server.pipeline(transaction=False)
    for key in keys:
        pipe.object("encoding", key)
    assert set(pipe.execute()) == {b"listpack"}
    assert dupefilter.seen_count() == 100_000
    assert all(dupefilter.fingerprints_seen(batch))


def test_layout_mismatch_is_refused(redis_url):
    make_filter(redis_url, DUPEFILTER_BUCKETS=1024)
    with pytest.raises(LayoutMismatch, match="buckets=1024"):
        make_filter(redis_url, DUPEFILTER_BUCKETS=2048)
    with pytest.raises(LayoutMismatch):
        make_filter(redis_url, DUPEFILTER_BUCKETS=1024, DUPEFILTER_RETENTION_DAYS=30)
    make_filter(redis_url, DUPEFILTER_BUCKETS=1024)  # the same layout is fine


def test_retention_may_change_but_period_may_not(redis_url):
    make_filter(redis_url, DUPEFILTER_RETENTION_DAYS=30, DUPEFILTER_PERIOD_DAYS=10)
    make_filter(redis_url, DUPEFILTER_RETENTION_DAYS=90, DUPEFILTER_PERIOD_DAYS=10)
    with pytest.raises(LayoutMismatch):
        make_filter(redis_url, DUPEFILTER_RETENTION_DAYS=90, DUPEFILTER_PERIOD_DAYS=30)


@pytest.mark.parametrize(
    "settings",
    [
        {"DUPEFILTER_BUCKETS": 1000},
        {"DUPEFILTER_BUCKETS": 0},
        {"DUPEFILTER_PERIOD_DAYS": 0},
        {"DUPEFILTER_RETENTION_DAYS": -1},
    ],
)
def test_bad_settings_are_refused(redis_url, settings):
    with pytest.raises(ValueError, match="DUPEFILTER_"):
        make_filter(redis_url, **settings)


def test_retention_none_given_as_text(redis_url):
    assert make_filter(redis_url, DUPEFILTER_RETENTION_DAYS="None").retention_days is None


def test_from_settings_refuses_a_fingerprinter_it_cannot_build(redis_url):
    crawler = make_crawler(redis_url)
    assert CompactDupeFilter.from_settings(crawler.settings).request_seen(article(1)) is False
    crawler = make_crawler(
        redis_url, REQUEST_FINGERPRINTER_CLASS="crawler.fingerprinter.MirrorAwareFingerprinter"
    )
    with pytest.raises(ValueError, match="from_crawler"):
        CompactDupeFilter.from_settings(crawler.settings)


def test_decoded_responses(redis_url):
    dupefilter = make_filter(redis_url, REDIS_DECODE_RESPONSES=True)
    assert dupefilter.request_seen(article(1)) is False
    assert dupefilter.request_seen(article(1)) is True
    assert dupefilter.seen_count() == 1
    make_filter(redis_url, REDIS_DECODE_RESPONSES=True)  # reads the layout back as text
    dupefilter.clear()
    assert dupefilter.server.keys("*") == []


def test_scrapy_redis_scheduler_with_persistence(redis_url):
    settings = {
        "SCHEDULER_PERSIST": True,
        "DUPEFILTER_CLASS": FILTER,
        "DUPEFILTER_RETENTION_DAYS": 30,
    }
    crawler = make_crawler(redis_url, **settings)
    scheduler = RedisScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    assert isinstance(scheduler.df, CompactDupeFilter)
    assert scheduler.df.fingerprinter is crawler.request_fingerprinter
    assert scheduler.enqueue_request(article(1)) is True
    assert scheduler.enqueue_request(article(1)) is False
    assert scheduler.enqueue_request(article(1).replace(dont_filter=True)) is True
    scheduler.close("shutdown")

    crawler = make_crawler(redis_url, **settings)
    scheduler = RedisScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    assert scheduler.enqueue_request(article(1)) is False
    assert scheduler.enqueue_request(article(2)) is True


def test_scrapy_redis_scheduler_without_persistence_clears_only_the_filter(redis_url):
    crawler = make_crawler(redis_url, SCHEDULER_PERSIST=False, DUPEFILTER_CLASS=FILTER)
    other = make_filter(redis_url, DUPEFILTER_KEY="crawler:dupefilter:other")
    other.request_seen(article(1))
    scheduler = RedisScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    scheduler.enqueue_request(article(1))
    scheduler.close("finished")
    server = scheduler.server
    assert server.keys("crawler:dupefilter:all:*") == []
    assert other.request_seen(article(1)) is True


def test_scrapy_scheduler_counts_filtered_requests(redis_url):
    crawler = make_crawler(
        redis_url,
        DUPEFILTER_CLASS=FILTER,
        # the default queue asks the engine's downloader, which only a running crawl has
        SCHEDULER_PRIORITY_QUEUE="scrapy.pqueues.ScrapyPriorityQueue",
    )
    scheduler = ScrapyScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    assert isinstance(scheduler.df, CompactDupeFilter)
    assert scheduler.enqueue_request(article(1)) is True
    assert scheduler.enqueue_request(article(1)) is False
    assert scheduler.enqueue_request(article(1)) is False
    assert crawler.stats.get_value("dupefilter/filtered") == 2
    scheduler.close("finished")
    assert make_filter(redis_url).request_seen(article(1)) is True


def test_survives_a_redis_crash_with_aof(redis_server_factory):
    server = redis_server_factory(appendonly=True)
    dupefilter = make_filter(server.url, DUPEFILTER_RETENTION_DAYS=30)
    dupefilter.fingerprints_seen(fingerprints(500))
    server.restart(kill=True)
    dupefilter = make_filter(server.url, DUPEFILTER_RETENTION_DAYS=30)
    assert all(dupefilter.fingerprints_seen(fingerprints(500)))
    assert dupefilter.request_seen(article(1)) is False


# -- the test helper itself ------------------------------------------------------------------
def test_private_server_is_not_the_shared_one(redis_server):
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis_server.client() as client:
        config = client.config_get("save") | client.config_get("appendonly")
        assert config == {"save": "", "appendonly": "no"}
        assert client.config_get("dir")["dir"] == str(redis_server.dir)


def test_restart_keeps_or_drops_data(redis_server_factory):
    server = redis_server_factory()
    port = server.port
    with server.client() as client:
        client.set("k", "v")
    server.restart()
    assert server.port == port
    with server.client() as client:
        assert client.get("k") == b"v"
    server.restart(keep_data=False)
    with server.client() as client:
        assert client.get("k") is None
        client.set("k", "v")
    server.restart(kill=True)  # a crash without AOF loses everything
    with server.client() as client:
        assert client.get("k") is None


def test_aof_keeps_data_through_a_crash_unless_told_not_to(redis_server_factory):
    server = redis_server_factory(appendonly=True)
    with server.client() as client:
        client.set("k", "v")
    server.restart(kill=True)
    with server.client() as client:
        assert client.get("k") == b"v"
    server.restart(keep_data=False)
    with server.client() as client:
        assert client.get("k") is None


def test_stop_really_stops(redis_server_factory):
    server = redis_server_factory()
    process = server.process
    server.stop()
    assert process.poll() is not None
    with pytest.raises(redis.ConnectionError), server.client() as client:
        client.ping()
