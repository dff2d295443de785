"""The validators (ETag, Last-Modified) of listings, feeds and sitemaps, one contract for
both backends: beside a standalone crawl's SQLite store (crawler.validators.StoreValidators)
and in Redis for every worker (crawler.distributed.validators.RedisValidators). Each case
runs one crawl that keeps validators and settles them as its backend does (the SQLite
one when the crawl finishes, the Redis one with the request's acknowledgement), then a
second crawl that asks with them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import project_crawler
from scrapy import Request

from crawler.context import crawl_context
from crawler.core import meta
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.distributed.validators import RedisValidators
from crawler.validators import StoreValidators, Validators

NEWS = "news"
PAGE = "https://news-one.example/world?page=2"
#: the same listing on another of the outlet's mirrors
ON_A_MIRROR = "https://news-two.example/world?page=2"
TAGGED = {"ETag": '"v1"', "Last-Modified": "Tue, 01 Dec 2026 08:00:00 GMT"}


@dataclass
class Backend:
    """Crawls over one backend: ``crawl(**settings)`` builds the validators of a new crawl,
    and ``settle(validators, request)`` ends ``request``'s crawl as that backend keeps them."""

    crawl: Callable[..., Validators]
    settle: Callable[[Validators, Request], None]


def sqlite_backend(tmp_path) -> Backend:
    def build(**settings: Any) -> Validators:
        crawler = project_crawler(STORE_URI=f"sqlite:///{tmp_path}/crawl.db", **settings)
        crawler.stats.open_spider()
        return crawl_context(crawler).validators

    return Backend(build, lambda validators, request: validators.save("finished"))


def redis_backend(redis_server) -> Backend:
    client = redis_server.client()

    def build(**settings: Any) -> Validators:
        return RedisValidators(project_crawler(REDIS_URL=redis_server.url, **settings))

    def settle(validators: Validators, request: Request) -> None:
        # what the scheduler sends with the request's acknowledgement
        OutletQueues(client, RedisKeys(), "worker-1", None).ack(
            [], [request.meta[meta.VALIDATORS]])

    return Backend(build, settle)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path) -> Backend:
    if request.param == "sqlite":
        return sqlite_backend(tmp_path)
    return redis_backend(request.getfixturevalue("redis_server"))


def kept(validators: Validators, url: str = PAGE, found: dict | None = None) -> Request:
    request = Request(url, meta={meta.OUTLET: NEWS})
    validators.keep(request, NEWS, url, TAGGED if found is None else found)
    return request


def test_the_next_crawl_asks_with_them_on_any_mirror_of_the_outlet(backend):
    first = backend.crawl()
    backend.settle(first, kept(first))
    second = backend.crawl()
    assert second.get(NEWS, ON_A_MIRROR) == TAGGED
    assert second.get(NEWS, "https://news-one.example/world?page=3") is None
    assert second.get("elsewhere", PAGE) is None


def test_an_answer_read_later_replaces_them(backend):
    first = backend.crawl()
    backend.settle(first, kept(first))
    second = backend.crawl()
    backend.settle(second, kept(second, ON_A_MIRROR, {"ETag": '"v2"'}))
    assert backend.crawl().get(NEWS, PAGE) == {"ETag": '"v2"'}


def test_a_full_crawl_asks_without_them_and_still_keeps_what_it_read(backend):
    first = backend.crawl()
    backend.settle(first, kept(first))
    full = backend.crawl(DISCOVERY_FULL=True)
    assert full.get(NEWS, PAGE) is None
    backend.settle(full, kept(full, found={"ETag": '"v2"'}))
    assert backend.crawl().get(NEWS, PAGE) == {"ETag": '"v2"'}


def test_with_conditional_requests_off_none_are_asked_with_or_kept(backend):
    first = backend.crawl()
    backend.settle(first, kept(first))
    off = backend.crawl(CONDITIONAL_REQUESTS=False)
    assert off.get(NEWS, PAGE) is None
    request = kept(off, found={"ETag": '"v2"'})
    assert meta.VALIDATORS not in request.meta
    if isinstance(off, StoreValidators):
        off.save("finished")
    assert backend.crawl().get(NEWS, PAGE) == TAGGED


@pytest.mark.parametrize("how", ["lost a request", "not stored", "stopped"])
def test_a_standalone_crawl_that_missed_something_keeps_none(tmp_path, how):
    backend = sqlite_backend(tmp_path)
    first = backend.crawl()
    kept(first)
    if how == "lost a request":
        first.crawler.stats.inc_value("requests/ended/given_up")
    elif how == "not stored":
        first.crawler.stats.inc_value("articles/not_stored")
    first.save("shutdown" if how == "stopped" else "finished")
    # else a 304 would hide, at the next crawl, an article that this one never stored
    assert backend.crawl().get(NEWS, PAGE) is None


def test_a_worker_keeps_them_with_the_request_until_its_acknowledgement(redis_server):
    backend = redis_backend(redis_server)
    worker = backend.crawl()
    request = kept(worker)
    # a worker killed now leaves no validators: the listing is asked for in full again
    assert backend.crawl().get(NEWS, PAGE) is None
    key, path, _ = request.meta[meta.VALIDATORS]
    assert (key, path) == (RedisKeys().validators(NEWS), "/world?page=2")
    backend.settle(worker, request)
    assert backend.crawl().get(NEWS, PAGE) == TAGGED


def test_an_unreachable_redis_means_asking_without_them(redis_server):
    worker = RedisValidators(project_crawler(REDIS_URL=redis_server.url))
    redis_server.stop()
    assert worker.get(NEWS, PAGE) is None
