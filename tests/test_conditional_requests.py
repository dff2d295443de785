"""ConditionalRequestMiddleware: listings, feeds and sitemaps are asked for with the
validators of their last answer, on any mirror; nothing else is (``get_crawler``, the
crawl's validators beside a real SQLite store)."""

from __future__ import annotations

import pytest
from conftest import NEWS_MIRRORS, NEWS_OUTLET_FILE, outlet_crawler
from scrapy import Request

from crawler.context import crawl_context
from crawler.core import meta
from crawler.downloadermiddlewares.conditional import ConditionalRequestMiddleware

A, B = NEWS_MIRRORS
ETAG, MODIFIED = '"v1"', "Tue, 01 Dec 2026 08:00:00 GMT"


def middleware_after_a_crawl(tmp_path, **settings) -> ConditionalRequestMiddleware:
    """The middleware of a crawl that follows one which read /world and /feed.xml."""
    first = outlet_crawler(tmp_path, NEWS_OUTLET_FILE, "news")
    validators = crawl_context(first).validators
    for path in ("/world", "/feed.xml"):
        validators.keep(Request(A + path), "news", A + path,
                        {"ETag": ETAG, "Last-Modified": MODIFIED})
    validators.save("finished")
    return ConditionalRequestMiddleware(outlet_crawler(tmp_path, NEWS_OUTLET_FILE, "news",
                                                       **settings))


def asked(middleware, url: str, **request_meta) -> dict[bytes, bytes]:
    request = Request(url, meta={meta.OUTLET: "news", **request_meta})
    middleware.process_request(request)
    return {k: v[0] for k, v in request.headers.items()}


@pytest.mark.parametrize("kind", ["listing", "feed"])
def test_a_discovery_document_is_asked_for_only_if_changed_on_any_mirror(tmp_path, kind):
    middleware = middleware_after_a_crawl(tmp_path)
    path = "/world" if kind == "listing" else "/feed.xml"
    headers = asked(middleware, B + path, **{meta.KIND: kind})
    assert headers[b"If-None-Match"] == ETAG.encode()
    assert headers[b"If-Modified-Since"] == MODIFIED.encode()
    assert asked(middleware, f"{B}/world?page=2", **{meta.KIND: kind}) == {}


def test_articles_checks_and_requests_with_their_own_validators_are_left_alone(tmp_path):
    middleware = middleware_after_a_crawl(tmp_path)
    assert asked(middleware, f"{A}/world", **{meta.KIND: "article"}) == {}
    # a mirror check must see the page itself, not a 304
    assert asked(middleware, f"{A}/world", **{meta.KIND: "listing", meta.CHECK: True}) == {}
    revisit = Request(f"{A}/world", headers={"If-None-Match": '"other"'},
                      meta={meta.OUTLET: "news", meta.KIND: "listing"})
    middleware.process_request(revisit)
    assert revisit.headers.getlist("If-None-Match") == [b'"other"']
    assert b"If-Modified-Since" not in revisit.headers
    assert asked(middleware, f"{A}/world", **{meta.KIND: "listing", meta.OUTLET: None}) == {}


def test_a_full_crawl_asks_for_everything(tmp_path):
    middleware = middleware_after_a_crawl(tmp_path, DISCOVERY_FULL=True)
    assert asked(middleware, f"{A}/world", **{meta.KIND: "listing"}) == {}
