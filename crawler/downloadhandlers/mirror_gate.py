"""Download handler: the mirror is confirmed when the request leaves, not when it was queued.

All mirrors of an outlet share one download slot, and downloader middlewares see a request
*before* it waits there (and in the politeness limiter): a mirror chosen or confirmed in a
middleware may have left rotation, or asked for a pause with Retry-After, by the time the
request goes out. The one place where a request really leaves is the download handler call
(``Downloader._download``), so the check is made there, by a handler for http and https that
wraps Scrapy's own HTTP/1.1 handler: just before sending, it asks the mirror health whether
the request's mirror may be asked now (:meth:`~crawler.mirrors.MirrorHealth.may_send`); if
not, it raises :class:`~crawler.mirrors.MirrorUnavailable`, which the failover middleware's
``process_exception`` turns into the failover's decision (another mirror, or the waiting
room) without counting anything against the mirror.

Why not elsewhere: a slot is Scrapy's private ``deque`` of (request, Deferred) pairs with no
hook, and a scheduler or a queue subclass decides *when* a request is taken, not when it
leaves the slot; a ``request_reached_downloader`` handler cannot stop a download. The
handler is Scrapy's documented extension point on that very path, and leaves the slot's
concurrency, delays and AutoThrottle as they are.

A download that timed out while this process stood still (a frozen worker, a paused
container: :class:`~crawler.stall_clock.StallClock`) never had its time: it raises
:class:`~crawler.mirrors.DownloadStalled`, and goes again as a held-back request does,
nothing counted against its mirror.

A probe (``meta["mirror_probe"]``) or a mirror check goes to a mirror out of rotation on
purpose, and goes; a Retry-After holds back every request alike.

The same place sees an answer first: a 429 or 503 with a Retry-After holds its mirror here,
as it arrives, because the slot lets its next request go as soon as the handler returns,
before any middleware has seen the answer. (The failover middleware then moves the
document on; its hold is the same one, and changes nothing.)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from scrapy.utils.misc import build_from_crawler, load_object

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.judging import TIMEOUT_ERRORS, retry_after_seconds
from crawler.mirrors import DownloadStalled, MirrorUnavailable

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response


class MirrorGateHandler:
    """http/https download handler: Scrapy's HTTP/1.1 handler behind the mirror check."""

    lazy = False
    #: the handler that sends what passes
    inner = "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"

    def __init__(self, crawler: Crawler) -> None:
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.health = context.health
        self.retry_after_max = crawler.settings.getfloat("MIRROR_RETRY_AFTER_MAX")
        self.stall_clock = context.stall_clock
        self.handler = build_from_crawler(load_object(self.inner), crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorGateHandler:
        return cls(crawler)

    async def download_request(self, request: Request) -> Response:
        name = request.meta.get(meta.OUTLET)
        if name is None:  # robots.txt and candidate mirrors' requests: not an outlet's
            return await self.handler.download_request(request)
        outlet = self.catalog.get(name)
        mirror = outlet.mirror_asked(request)
        if mirror is None:
            return await self.handler.download_request(request)
        if not self.health.may_send(outlet, mirror, bool(request.meta.get(meta.PROBE))):
            raise MirrorUnavailable(f"{mirror} may not be asked now")
        started = time.monotonic()
        try:
            response = await self.handler.download_request(request)
        except TIMEOUT_ERRORS as exc:
            if self.stall_clock.stalled_within(started, time.monotonic()) > 0:
                # the process stood still while it waited: the mirror had no fair chance
                raise DownloadStalled(f"{request.url}: this process stood still during "
                                      f"its download") from exc
            raise
        seconds = retry_after_seconds(response.status, response.headers.get(b"Retry-After"),
                                      time.time(), self.retry_after_max)
        if seconds is not None:
            self.health.hold(outlet.name, mirror, seconds)
        return response

    async def close(self) -> None:
        await self.handler.close()
