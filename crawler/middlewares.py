"""Spider and downloader middlewares: thin layers over :mod:`crawler.judging` (what an answer
says) and :class:`crawler.failover.Failover` (what to do about it).

Spider side, on a callback's output: :class:`StoredArticleFilter` drops articles already
stored, then :class:`MirrorRoutingMiddleware` sends what is left to the best mirror.
Downloader side, on the way back: :class:`MirrorFailoverMiddleware` (610) judges the raw
answer (status, redirects off the outlet) before Scrapy follows redirects, and
:class:`PageJudgeMiddleware` (585) judges the page after Scrapy decompressed it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.exceptions import IgnoreRequest

from crawler import meta, signals
from crawler.context import crawl_context
from crawler.discovery import DISCOVERY_KINDS, FEED, SITEMAP, conditional_headers
from crawler.failover import RequestEnded
from crawler.judging import (
    MIRROR,
    Verdict,
    judge_exception,
    judge_page,
    judge_redirect,
    judge_refresh,
    judge_status,
    mirror_failure,
)
from crawler.redact import redact_url
from crawler.storage import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.outlets import Outlet

logger = logging.getLogger(__name__)


class _OutletRequests:
    """Shared by the middlewares: the outlet a request belongs to, and the crawl's parts."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.health = context.health
        self.failover = context.failover

    @classmethod
    def from_crawler(cls, crawler: Crawler):
        return cls(crawler)

    def outlet_of(self, request: Request) -> Outlet | None:
        name = request.meta.get(meta.OUTLET)
        return self.catalog.get(name) if name else None


class MirrorRoutingMiddleware(_OutletRequests):
    """Spider middleware: sends each new request of an outlet to the mirror best for it now.

    Spiders ask for documents on the canonical mirror; this picks the host, so the scheduler
    holds requests that go straight to a working mirror. With every mirror out, the URL is
    left as it is: the downloader side parks the request until a mirror is back.
    """

    def route(self, request: Any) -> Any:
        if not isinstance(request, Request) or request.meta.get(meta.ROUTED):
            return request
        outlet = self.outlet_of(request)
        if outlet is None:
            return request
        request.meta[meta.ROUTED] = True
        mirror = self.health.choose(outlet)
        if mirror is None:
            return request
        request.meta[meta.MIRROR] = mirror
        if not self.health.is_up(outlet, mirror):
            request.meta[meta.PROBE] = True
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
    articles are fetched again and stored idempotently, rather than lost. A store that was
    unavailable is not asked again (each time waiting for its timeout) until a batch was
    stored or ``STORE_RETRY_MAX`` passed. When every article of a listing page is stored,
    the section's next page (``meta.IF_NEW``) goes too: the older pages hold nothing new
    either (``crawler crawl --full`` walks them all).
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.store = crawl_context(crawler).store
        self.retry_max = crawler.settings.getfloat("STORE_RETRY_MAX")
        #: while the store is away: when to ask it again (monotonic seconds)
        self._ask_again_at: float | None = None
        # one thread: the check waits for nothing but the store
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stored-filter")
        crawler.signals.connect(self.close, signal=scrapy_signals.spider_closed)
        crawler.signals.connect(self._store_answers, signal=signals.articles_stored)

    def _store_answers(self, **_: Any) -> None:
        self._ask_again_at = None

    def close(self) -> None:
        self._reader.shutdown(wait=True)

    def _article_urls(self, results: list[Any]) -> dict[int, str]:
        canonical: dict[int, str] = {}
        for i, obj in enumerate(results):
            if isinstance(obj, Request) and obj.meta.get(meta.KIND) == "article":
                outlet = self.outlet_of(obj)
                if outlet is not None:
                    canonical[i] = outlet.canonical_url(obj.url)
        return canonical

    def _stored(self, urls: list[str]) -> set[str]:
        if self._ask_again_at is not None and time.monotonic() < self._ask_again_at:
            self.crawler.stats.inc_value("articles/unchecked", len(urls))
            return set()
        try:
            return self.store.existing(urls)
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable):
                self._ask_again_at = time.monotonic() + self.retry_max
            logger.warning("Store cannot say what is stored (%s): fetching all %d articles",
                           exc, len(urls))
            return set()

    def _without(self, results: list[Any], canonical: dict[int, str], stored: set[str]):
        if stored:
            self.crawler.stats.inc_value("articles/already_stored", len(stored))
        # a listing page all of whose articles are stored: the older pages hold nothing new
        nothing_new = set(canonical.values()) <= stored
        kept = []
        for i, obj in enumerate(results):
            if canonical.get(i) in stored:
                continue
            if nothing_new and isinstance(obj, Request) and obj.meta.get(meta.IF_NEW):
                self.crawler.stats.inc_value("listing/stopped_nothing_new")
                continue
            kept.append(obj)
        return kept

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
    """Downloader middleware (before ``RedirectMiddleware``): keeps requests on the outlet and
    on a mirror that can serve them, and judges the raw answer: connection errors, timeouts,
    statuses in ``MIRROR_FAILOVER_HTTP_CODES``, 404/410, redirects off the outlet.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.failover_codes = frozenset(
            int(code) for code in crawler.settings.getlist("MIRROR_FAILOVER_HTTP_CODES")
        )

    def process_request(self, request: Request) -> Request | None:
        outlet = self.outlet_of(request)
        if outlet is None:
            return None
        if not outlet.owns(request.url):
            return self._left_the_outlet(request)
        if request.meta.get(meta.PROBE):
            return None
        # the mirror may have left rotation while the request waited in the queue
        return self.failover.reroute(request)

    def _left_the_outlet(self, request: Request) -> Request:
        """A request off the outlet never goes out. One that a redirect or a meta refresh made
        (probes included) is the mirror's doing: the document goes to another mirror."""
        redirected_from = request.meta.get("redirect_urls") or []
        logger.warning("Refused %s: not on a mirror of %s", redact_url(request.url),
                       request.meta[meta.OUTLET])
        if not redirected_from:
            raise RequestEnded("off_outlet", f"not on the outlet: {request.url}")
        original = request.replace(url=redirected_from[0])
        verdict = mirror_failure(f"redirect off the outlet to {redact_url(request.url)}",
                                 "blocked")
        return self.failover.mirror_failed(original, verdict)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if self.outlet_of(request) is None:
            return response
        verdict = judge_status(response.status, self.failover_codes) or judge_redirect(
            request.url, response.status, response.headers.get(b"Location"),
            self.outlet_of(request), article=request.meta.get(meta.KIND) == "article",
        )
        if verdict is not None:
            if verdict.about == MIRROR and 300 <= response.status < 400:
                self._redirected_off(request, response)
            return _act_on(self.failover, request, verdict)
        if 300 <= response.status < 400:
            self.failover.downloaded(request, "ok", served=True)
        return response

    def _redirected_off(self, request: Request, response: Response) -> None:
        """A mirror in rotation redirecting off the outlet may be sending readers to its new
        address: the target's host is a candidate mirror (crawler.mirror_discovery)."""
        outlet = self.outlet_of(request)
        mirror = request.meta.get(meta.MIRROR) or outlet.mirror_of(request.url)
        if mirror and self.health.is_up(outlet, mirror):
            target = urljoin(request.url, response.headers[b"Location"].decode("latin-1"))
            self.crawler.signals.send_catch_log(
                signals.redirect_off_outlet, outlet=outlet.name, mirror=mirror,
                url=request.url, target=target)

    def process_exception(self, request: Request, exception: BaseException) -> Request | None:
        if self.outlet_of(request) is None or isinstance(exception, IgnoreRequest):
            return None  # the request's errback hands it to the ledger
        verdict = judge_exception(exception)
        if verdict is None:
            return None
        return _act_on(self.failover, request, verdict)


class PageJudgeMiddleware(_OutletRequests):
    """Downloader middleware (after ``HttpCompressionMiddleware``): judges the decoded page.
    A block page fails the mirror, and so does a page that failed the document checks for
    other documents (:meth:`Failover.serves_one_page`: a seizure notice, a bot check, a
    parked domain), unless the mirror is the last one serving the outlet; a page that is not
    HTML is the mirror's answer about the document, asked again elsewhere."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        self.refresh = (settings.getbool("METAREFRESH_ENABLED"),
                        settings.getlist("METAREFRESH_IGNORE_TAGS"),
                        settings.getfloat("METAREFRESH_MAXDELAY"))

    def process_response(self, request: Request, response: Response) -> Request | Response:
        outlet = self.outlet_of(request)
        if outlet is None or 300 <= response.status < 400:
            return response
        kind = request.meta.get(meta.KIND)
        verdict = judge_page(response, outlet, html=kind not in (FEED, SITEMAP))
        refresh_enabled, ignore_tags, max_delay = self.refresh
        if verdict is None and refresh_enabled:
            verdict = judge_refresh(response, outlet, kind == "article", ignore_tags, max_delay)
        if (verdict is None and 200 <= response.status < 300
                and self.failover.serves_one_page(request, response.body)):
            verdict = mirror_failure("the same page for different documents", "blocked",
                                     strong=True)
        if verdict is not None:
            kept = verdict.strong and self.failover.spares_last_mirror(request, verdict,
                                                                       response.body)
            return _act_on(self.failover, request, verdict, kept)
        outcome = "ok" if response.status < 400 else "http_error"
        self.failover.downloaded(request, outcome, served=True)
        return response


class ConditionalRequestMiddleware(_OutletRequests):
    """Downloader middleware: asks for listings, feeds and sitemaps with the validators of
    their last answer (kept per outlet and path by ``context.validators``), so an unchanged
    one answers 304 with no body. Added at download time, so seeds queued by ``crawler
    schedule`` are asked for the same way."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.validators = crawl_context(crawler).validators

    def process_request(self, request: Request) -> None:
        name = request.meta.get(meta.OUTLET)
        if (name is None or request.meta.get(meta.KIND) not in DISCOVERY_KINDS
                or request.meta.get(meta.CHECK)  # its answer must be the page itself
                or b"If-None-Match" in request.headers
                or b"If-Modified-Since" in request.headers):
            return
        for header, value in conditional_headers(self.validators.get(name, request.url)).items():
            request.headers[header] = value


def _act_on(failover, request: Request, verdict: Verdict, kept: bool = False) -> Request:
    failover.downloaded(request, verdict.outcome, served=verdict.about != MIRROR)
    if verdict.about == MIRROR:
        return failover.mirror_failed(request, verdict, kept)
    return failover.document_answered(request, verdict)
