"""The spider middlewares over a listing's output, on plain Scrapy requests
(``get_crawler``): articles already in the store are not fetched again
(``StoredArticleFilter``, over a real SQLite store), and each new request goes to the
mirror best for it now (``MirrorRoutingMiddleware``, over the crawl's mirror health).

Each is driven as Scrapy drives it: built by ``from_crawler``, its async
``process_spider_output`` fed an async iterable."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import warnings
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from conftest import NEWS_MIRRORS, NEWS_OUTLET_FILE, outlet_crawler
from scrapy import Request
from scrapy.core.spidermw import SpiderMiddlewareManager
from scrapy.exceptions import ScrapyDeprecationWarning
from scrapy.http import HtmlResponse

from crawler.context import crawl_context
from crawler.core import meta
from crawler.spidermiddlewares.mirror_routing import MirrorRoutingMiddleware
from crawler.spidermiddlewares.stored_articles import StoredArticleFilter

A, B = NEWS_MIRRORS
LISTING = HtmlResponse(f"{A}/world", body=b"<html></html>",
                       request=Request(f"{A}/world", meta={meta.OUTLET: "news"}))


@pytest.fixture
def crawler(tmp_path):
    return outlet_crawler(tmp_path, NEWS_OUTLET_FILE, "news", MIRROR_FAILURE_THRESHOLD=1)


def spider_output(middleware, result: Iterable[Any]) -> list[Any]:
    """What ``middleware`` passes on of a callback's ``result``, as Scrapy calls it."""
    async def callback_output() -> AsyncIterator[Any]:
        for obj in result:
            yield obj

    async def collect() -> list[Any]:
        return [obj async for obj in middleware.process_spider_output(LISTING, callback_output())]

    return asyncio.run(collect())


def article(url: str) -> Request:
    return Request(url, meta={meta.OUTLET: "news", meta.KIND: "article"})


def stored(crawler, *numbers: int) -> None:
    records = []
    for number in numbers:
        url, text = f"{A}/a/{number}", f"The text of article {number}."
        records.append({
            "canonical_url": url, "url": url, "mirror": A, "outlet": "news",
            "section": "world", "title": f"Article {number}", "author": None,
            "published": None, "language": "en", "text": text,
            "content_hash": hashlib.sha256(text.encode()).hexdigest(),
            "fetched_at": "2026-12-01T08:00:00+00:00"})
    crawl_context(crawler).store.write(records)


def test_stored_articles_are_not_asked_for_again_on_any_mirror(crawler):
    stored(crawler, 1, 2)
    middleware = StoredArticleFilter.from_crawler(crawler)
    next_page = Request(f"{A}/world?page=2", meta={meta.OUTLET: "news", meta.IF_NEW: True})
    out = spider_output(middleware, [
        article(f"{A}/a/1"), article(f"{B}/a/2?utm_source=feed"), article(f"{A}/a/3"),
        next_page])
    assert [r.url for r in out] == [f"{A}/a/3", next_page.url]
    assert crawler.stats.get_value("articles/already_stored") == 2
    middleware.close()


def test_a_listing_page_with_nothing_new_ends_the_sections_walk(crawler):
    stored(crawler, 1, 2)
    middleware = StoredArticleFilter.from_crawler(crawler)
    out = spider_output(middleware, [
        article(f"{A}/a/1"), article(f"{A}/a/2"),
        Request(f"{A}/world?page=2", meta={meta.OUTLET: "news", meta.IF_NEW: True}),
        Request(f"{A}/feed.xml", meta={meta.OUTLET: "news", meta.KIND: "feed"})])
    assert [r.url for r in out] == [f"{A}/feed.xml"]  # the older pages hold nothing new
    assert crawler.stats.get_value("listing/stopped_nothing_new") == 1
    middleware.close()


def test_a_store_that_cannot_answer_filters_nothing(crawler, tmp_path):
    stored(crawler, 1)
    middleware = StoredArticleFilter.from_crawler(crawler)
    crawl_context(crawler).store.close()
    (tmp_path / "c.db").unlink()
    (tmp_path / "c.db").mkdir()  # not a database any more
    out = spider_output(middleware, [article(f"{A}/a/1")])
    assert [r.url for r in out] == [f"{A}/a/1"]  # fetched again, stored idempotently
    middleware.close()


def test_new_requests_go_to_a_mirror_in_rotation_once(crawler):
    middleware = MirrorRoutingMiddleware.from_crawler(crawler)
    health = crawl_context(crawler).health
    health.record_failure("news", A, "timeout")
    routed = spider_output(middleware, [
        article(f"{A}/a/1"), "an item", Request("https://elsewhere.example/x")])
    assert routed[0].url == f"{B}/a/1" and routed[0].meta[meta.MIRROR] == B
    assert meta.PROBE not in routed[0].meta
    assert routed[1] == "an item"  # not a request, and not the outlet's: as they were
    assert routed[2].url == "https://elsewhere.example/x" and meta.ROUTED not in routed[2].meta
    health.record_success("news", A)
    again = spider_output(middleware, [routed[0]])
    assert again == [routed[0]]  # routed already: the failover moves it from here on


def test_with_every_mirror_out_the_request_is_left_to_the_downloader_side(crawler):
    middleware = MirrorRoutingMiddleware.from_crawler(crawler)
    health = crawl_context(crawler).health
    for mirror in (A, B):
        health.record_failure("news", mirror, "timeout")
    [request] = spider_output(middleware, [article(f"{A}/a/1")])
    # no mirror to choose before the cool-down: parked by the failover when downloaded
    assert request.url == f"{A}/a/1" and request.meta[meta.ROUTED]
    assert meta.MIRROR not in request.meta


def test_a_mirror_cooled_down_is_probed_by_one_request(tmp_path):
    crawler = outlet_crawler(tmp_path, NEWS_OUTLET_FILE, "news", MIRROR_FAILURE_THRESHOLD=1,
                             MIRROR_COOLDOWN=0.5)
    middleware = MirrorRoutingMiddleware.from_crawler(crawler)
    for mirror in (A, B):
        crawl_context(crawler).health.record_failure("news", mirror, "timeout")
    time.sleep(0.6)
    first, second = spider_output(middleware, [article(f"{A}/a/1"), article(f"{A}/a/2")])
    assert first.meta[meta.PROBE] and first.meta[meta.MIRROR] == A
    # A's probe is taken: the next request probes the other mirror
    assert second.meta[meta.PROBE] and second.meta[meta.MIRROR] == B
    assert second.url == f"{B}/a/2"


def test_scrapy_chains_each_middlewares_async_output_as_it_is(crawler, caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScrapyDeprecationWarning)
        manager = SpiderMiddlewareManager.from_crawler(crawler)
    chained = {type(method.__self__): method
               for method in manager.methods["process_spider_output"] if method is not None}
    for middleware in (StoredArticleFilter, MirrorRoutingMiddleware):
        assert chained[middleware].__func__ is middleware.process_spider_output
    # Scrapy logs an error, not a warning, when it skips a middleware's output method
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
