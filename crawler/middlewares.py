"""Spider and downloader middlewares: routing requests over mirrors, failing over, and not
fetching what is stored already."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from twisted.internet import error as net_error

from crawler import signals
from crawler.mirrors import mirror_health, outlet_catalog
from crawler.storage import StoreError, open_store

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.outlets import Outlet

logger = logging.getLogger(__name__)

TIMEOUT_ERRORS = (DownloadTimeoutError, net_error.TimeoutError, TimeoutError)
CONNECTION_ERRORS = (
    DownloadConnectionRefusedError,
    CannotResolveHostError,
    DownloadFailedError,
    ResponseDataLossError,
    net_error.ConnectError,
    net_error.ConnectionLost,
    net_error.ConnectionDone,
    OSError,
)


def _outcome_of(exception: BaseException) -> str | None:
    if isinstance(exception, TIMEOUT_ERRORS):
        return "timeout"
    if isinstance(exception, CONNECTION_ERRORS):
        return "connection_error"
    return None


class _OutletRequests:
    """Shared by the middlewares: the outlet a request belongs to."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.catalog = outlet_catalog(crawler)
        self.health = mirror_health(crawler)

    def outlet_of(self, request: Request) -> Outlet | None:
        name = request.meta.get("outlet")
        return self.catalog.get(name) if name else None


class MirrorRoutingMiddleware(_OutletRequests):
    """Spider middleware: sends each new request of an outlet to the mirror best for it now.

    Spiders ask for documents on the canonical mirror; this picks the host, so the scheduler
    holds requests that go straight to a working mirror.
    """

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorRoutingMiddleware:
        return cls(crawler)

    def route(self, request: Any) -> Any:
        if not isinstance(request, Request) or "mirror_round" in request.meta:
            return request
        outlet = self.outlet_of(request)
        if outlet is None:
            return request
        mirror = self.health.choose(outlet)
        request.meta["mirror_round"] = 0
        if mirror is None:
            return request
        if not self.health.is_up(outlet.name, mirror):
            request.meta["mirror_probe"] = True
        if outlet.mirror_of(request.url) == mirror:
            return request
        return request.replace(url=outlet.on_mirror(request.url, mirror))

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in start:
            yield self.route(request)

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterable[Any]:
        for obj in result:
            yield self.route(obj)

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        async for obj in result:
            yield self.route(obj)


class StoredArticleFilter(_OutletRequests):
    """Spider middleware: drops requests for articles the store already holds, so a re-crawl
    of a section fetches only what is new (one store query per listing page).

    The query runs off the event loop, and a store that cannot answer filters nothing: the
    articles are fetched again and stored idempotently, rather than lost.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.store = open_store(crawler.settings["STORE_URI"])
        # one thread: a store connection is not for concurrent use
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stored-filter")
        crawler.signals.connect(self.close, signal=scrapy_signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StoredArticleFilter:
        return cls(crawler)

    def close(self) -> None:
        self._reader.shutdown(wait=True)
        self.store.close()

    def _article_urls(self, results: list[Any]) -> dict[int, str]:
        canonical: dict[int, str] = {}
        for i, obj in enumerate(results):
            if isinstance(obj, Request) and obj.meta.get("kind") == "article":
                outlet = self.outlet_of(obj)
                if outlet is not None:
                    canonical[i] = outlet.canonical_url(obj.url)
        return canonical

    def _stored(self, urls: list[str]) -> set[str]:
        try:
            return self.store.existing(urls)
        except StoreError as exc:
            logger.warning("Store cannot say what is stored (%s): fetching all %d articles",
                           exc, len(urls))
            return set()

    def _without(self, results: list[Any], canonical: dict[int, str], stored: set[str]):
        if stored:
            self.crawler.stats.inc_value("articles/already_stored", len(stored))
        return [obj for i, obj in enumerate(results) if canonical.get(i) not in stored]

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterable[Any]:
        results = list(result)
        canonical = self._article_urls(results)
        if not canonical:
            return results
        return self._without(results, canonical, self._stored(list(canonical.values())))

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        results = [obj async for obj in result]
        canonical = self._article_urls(results)
        if canonical:
            loop = asyncio.get_running_loop()
            stored = await loop.run_in_executor(
                self._reader, self._stored, list(canonical.values())
            )
            results = self._without(results, canonical, stored)
        for obj in results:
            yield obj


class MirrorFailoverMiddleware(_OutletRequests):
    """Downloader middleware: judges every answer of a mirror and moves a document to the
    next mirror when its mirror fails it.

    A failure is a connection error, a timeout, a status in ``MIRROR_FAILOVER_HTTP_CODES``, a
    redirect off the outlet's mirrors, a 2xx page carrying one of the outlet's
    ``blocked_markers``, or a 2xx page without a single link into the outlet (the last three
    take the mirror out of rotation at once: it is serving something else). Pages that
    look wrong only to the spider or the extraction (``signals.response_suspect``) fail over
    the same way. A document that failed on every mirror ``MIRROR_MAX_ROUNDS`` times is given
    up (``signals.request_finished`` with outcome "given_up").
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        self.failover_codes = frozenset(
            int(code) for code in settings.getlist("MIRROR_FAILOVER_HTTP_CODES")
        )
        self.max_rounds = settings.getint("MIRROR_MAX_ROUNDS")
        self._markers: dict[str, tuple[bytes, ...]] = {}
        self._outlet_links: dict[str, re.Pattern[bytes]] = {}
        crawler.signals.connect(self.on_response_suspect, signal=signals.response_suspect)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorFailoverMiddleware:
        return cls(crawler)

    # -- downloader middleware -------------------------------------------------------------------

    def process_request(self, request: Request) -> Request | None:
        outlet = self.outlet_of(request)
        if outlet is None or request.meta.get("mirror_probe"):
            return None
        mirror = outlet.mirror_of(request.url)
        if mirror is not None and self.health.is_up(outlet.name, mirror):
            return None
        # the mirror left rotation while this request waited in the queue
        better = self.health.choose(outlet, exclude=self._tried(request))
        if better is None or better == mirror:
            return None
        return self._on_mirror(request, outlet, better, tried=self._tried(request))

    def process_response(self, request: Request, response: Response) -> Request | Response:
        outlet = self.outlet_of(request)
        if outlet is None:
            return response
        mirror = outlet.mirror_of(request.url)
        status = response.status
        latency = request.meta.get("download_latency")
        if status in self.failover_codes:
            return self._failed(request, outlet, mirror, "http_error", f"HTTP {status}", latency)
        if 300 <= status < 400 and b"Location" in response.headers:
            target = urljoin(request.url, response.headers[b"Location"].decode("latin-1"))
            if outlet.mirror_of(target) is None:
                return self._failed(
                    request, outlet, mirror, "blocked", f"redirect off the outlet to {target}",
                    latency, severe=True,
                )
        elif 200 <= status < 300:
            if self._carries_block_marker(outlet, response.body):
                return self._failed(
                    request, outlet, mirror, "blocked", "block page", latency, severe=True
                )
            if not self._links_into_outlet(outlet, response.body):
                # a parked domain, an ad page: whatever it is, it is not the outlet
                return self._failed(
                    request, outlet, mirror, "blocked", "page without a link into the outlet",
                    latency, severe=True,
                )
        outcome = "ok" if status < 400 else "http_error"
        self._outcome(outlet, mirror, outcome, latency)
        if status < 400:
            self.health.record_success(outlet.name, mirror)
            return response
        # a definite answer such as 404: the document is not there, on any mirror
        self._finished(request, f"http_{status}")
        raise IgnoreRequest(f"HTTP {status} for {request.url}")

    def process_exception(self, request: Request, exception: BaseException) -> Request | None:
        outlet = self.outlet_of(request)
        if outlet is None:
            return None
        if isinstance(exception, IgnoreRequest):
            # robots.txt or another middleware declined it: final, nothing to store
            self._finished(request, "ignored")
            return None
        outcome = _outcome_of(exception)
        if outcome is None:
            return None
        mirror = outlet.mirror_of(request.url)
        reason = f"{type(exception).__name__}: {exception}".strip().rstrip(":")
        return self._failed(request, outlet, mirror, outcome, reason, None)

    # -- suspect pages (signal from the spider or extraction) -------------------------------------

    def on_response_suspect(self, request: Request, reason: str, response: Any = None,
                            severe: bool = False) -> None:
        outlet = self.outlet_of(request)
        if outlet is None:
            return
        mirror = outlet.mirror_of(request.url)
        self.health.record_failure(outlet.name, mirror, reason, severe=severe)
        retry = self._next_request(request, outlet, mirror, reason)
        if retry is not None:
            self.crawler.engine.crawl(retry)

    # -- helpers ---------------------------------------------------------------------------------

    def _links_into_outlet(self, outlet: Outlet, body: bytes) -> bool:
        pattern = self._outlet_links.get(outlet.name)
        if pattern is None:
            # a root-relative link (not protocol-relative) or an absolute one to a mirror
            mirrors = b"|".join(re.escape(m.encode()) for m in outlet.mirrors)
            pattern = self._outlet_links[outlet.name] = re.compile(
                rb"""href\s*=\s*["']?(?:/(?!/)|""" + mirrors + rb")", re.IGNORECASE
            )
        return pattern.search(body) is not None

    def _carries_block_marker(self, outlet: Outlet, body: bytes) -> bool:
        markers = self._markers.get(outlet.name)
        if markers is None:
            markers = self._markers[outlet.name] = tuple(
                m.encode("utf-8") for m in outlet.blocked_markers
            )
        return any(marker in body for marker in markers)

    def _outcome(self, outlet: Outlet, mirror: str | None, outcome: str, seconds) -> None:
        self.crawler.stats.inc_value(f"mirror/outcome/{outcome}")
        self.crawler.signals.send_catch_log(
            signals.request_outcome, outlet=outlet.name, mirror=mirror, outcome=outcome,
            seconds=seconds,
        )

    def _finished(self, request: Request, outcome: str) -> None:
        self.crawler.signals.send_catch_log(
            signals.request_finished, request=request, outcome=outcome
        )

    def _failed(self, request, outlet, mirror, outcome, reason, latency, *, severe=False):
        self._outcome(outlet, mirror, outcome, latency)
        if mirror is not None:
            self.health.record_failure(outlet.name, mirror, reason, severe=severe)
        retry = self._next_request(request, outlet, mirror, reason)
        if retry is None:
            raise IgnoreRequest(f"gave up on {request.url}: {reason}")
        return retry

    @staticmethod
    def _tried(request: Request) -> frozenset[str]:
        return frozenset(request.meta.get("mirrors_tried", ()))

    def _next_request(self, request, outlet, mirror, reason) -> Request | None:
        """The same document on the next mirror, or None (and the document given up)."""
        tried = self._tried(request) | ({mirror} if mirror else set())
        # within a round only mirrors in rotation: known-bad ones wait for the next round
        nxt = self.health.choose(outlet, exclude=tried, allow_down=False)
        round_ = request.meta.get("mirror_round", 0)
        if nxt is None:
            round_ += 1
            tried = frozenset()
            nxt = None if round_ >= self.max_rounds else self.health.choose(outlet)
        if nxt is None:
            logger.warning("Giving up on %s after every mirror failed (%s)", request.url, reason)
            self.crawler.stats.inc_value("mirror/given_up")
            self._finished(request, "given_up")
            return None
        retry = self._on_mirror(request, outlet, nxt, tried=tried, round_=round_)
        logger.info("Failover %s -> %s for %s (%s)", mirror, nxt, request.url, reason)
        self.crawler.stats.inc_value("mirror/failovers")
        self.crawler.signals.send_catch_log(
            signals.mirror_failover, outlet=outlet.name, from_mirror=mirror, to_mirror=nxt,
            reason=reason, request=retry,
        )
        return retry

    def _on_mirror(self, request, outlet, mirror, *, tried, round_=None) -> Request:
        meta = {
            **request.meta,
            "mirrors_tried": sorted(tried),
            "mirror_round": request.meta.get("mirror_round", 0) if round_ is None else round_,
            "mirror_probe": not self.health.is_up(outlet.name, mirror),
        }
        for transient in ("download_latency", "download_slot_key", "redirect_times"):
            meta.pop(transient, None)
        # same fingerprint as the original: it must pass the dupefilter again
        return request.replace(
            url=outlet.on_mirror(request.url, mirror), meta=meta, dont_filter=True,
            priority=request.priority + 1,
        )
