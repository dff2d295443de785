"""Per-outlet politeness: at most ``requests_per_second`` and ``concurrency`` (from the outlet
file) for the outlet as a whole, whichever mirror serves it.

:class:`PolitenessMiddleware` holds each request until the outlet's limiter lets it go. The
limiter is chosen by ``POLITENESS_LIMITER_CLASS``: :class:`LocalLimiter` counts in this
process; the distributed mode's counts in Redis, for all workers together.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.utils.misc import build_from_crawler, load_object

from crawler import meta
from crawler.mirrors import outlet_catalog

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.outlets import Politeness

#: how often a request waiting for a free download slot looks again (seconds)
SLOT_POLL = 0.05


class LocalLimiter:
    """Politeness counted in this process."""

    def __init__(self) -> None:
        self._next_start: dict[str, float] = {}
        self._active: dict[str, set[str]] = {}
        self._tokens = itertools.count()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LocalLimiter:
        return cls()

    async def acquire(self, outlet: str, limits: Politeness) -> str:
        """Wait until a request of ``outlet`` may start; returns a token for :meth:`release`."""
        token = str(next(self._tokens))
        active = self._active.setdefault(outlet, set())
        while limits.concurrency and len(active) >= limits.concurrency:
            await asyncio.sleep(SLOT_POLL)
        active.add(token)
        if limits.requests_per_second:
            now = time.monotonic()
            start = max(now, self._next_start.get(outlet, 0.0))
            self._next_start[outlet] = start + 1.0 / limits.requests_per_second
            if start > now:
                await asyncio.sleep(start - now)
        return token

    def release(self, outlet: str, token: str) -> None:
        self._active.get(outlet, set()).discard(token)


class PolitenessMiddleware:
    """Downloader middleware: holds requests of an outlet until its politeness allows them."""

    def __init__(self, crawler: Crawler) -> None:
        self.catalog = outlet_catalog(crawler)
        cls = load_object(crawler.settings["POLITENESS_LIMITER_CLASS"])
        self.limiter = build_from_crawler(cls, crawler)
        crawler.signals.connect(self.on_request_left, signal=scrapy_signals.request_left_downloader)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PolitenessMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        # a candidate mirror's verification is asked as politely as the outlet's pages
        name = request.meta.get("outlet") or request.meta.get(meta.CANDIDATE_OF)
        if name is None or "politeness_token" in request.meta:
            return
        limits = self.catalog.get(name).politeness
        if limits.requests_per_second or limits.concurrency:
            request.meta["politeness_token"] = await self.limiter.acquire(name, limits)

    def on_request_left(self, request: Request, spider: Any = None) -> None:
        token = request.meta.pop("politeness_token", None)
        if token is not None:
            name = request.meta.get("outlet") or request.meta.get(meta.CANDIDATE_OF)
            self.limiter.release(name, token)
