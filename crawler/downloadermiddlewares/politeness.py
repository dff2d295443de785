"""Downloader middleware: a request waits for its host's slot in the politeness limiter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.utils.misc import build_from_crawler, load_object

from crawler.context import crawl_context
from crawler.core import meta
from crawler.mode import backend

if TYPE_CHECKING:
    from scrapy.crawler import Crawler



class PolitenessMiddleware:
    """Downloader middleware: holds requests of an outlet until its politeness allows them."""

    def __init__(self, crawler: Crawler) -> None:
        self.catalog = crawl_context(crawler).catalog
        cls = load_object(backend(crawler.settings, "limiter"))
        self.limiter = build_from_crawler(cls, crawler)
        crawler.signals.connect(self.on_request_left, signal=scrapy_signals.request_left_downloader)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PolitenessMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        # a candidate mirror's verification is asked as politely as the outlet's pages
        name = request.meta.get("outlet") or request.meta.get(meta.CANDIDATE_OF)
        if name is None or "politeness_slot" in request.meta:
            return
        limits = self.catalog.get(name).politeness
        if limits.requests_per_second or limits.concurrency:
            request.meta["politeness_slot"] = await self.limiter.acquire(name, limits)

    def on_request_left(self, request: Request, spider: Any = None) -> None:
        slot = request.meta.pop("politeness_slot", None)
        if slot is not None:
            self.limiter.release(slot)
