"""The one owner of a request's final outcome.

Every request of an outlet ends exactly once, one way or another: its article stored, its
listing handled, a final answer about the document (not found, not HTML, no text), given
up, refused by robots.txt, or dropped inside Scrapy (too large, a redirect loop, a bug). The
ledger hears of each end from Scrapy's own hooks (the request's errback, ``item_dropped``,
``item_error``, ``spider_error``) and from ``articles_stored``, counts it by outcome
(stats ``requests/ended/<outcome>``), and sends ``signals.request_finished`` once: the
distributed scheduler releases the request's lease on it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals as scrapy_signals
from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError

from crawler.core import meta, signals
from crawler.core.judging import judge_exception
from crawler.failover import RequestEnded, RequestWaiting

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: outcomes that lose a document: a crawl with any of them did not get everything
LOST = frozenset({"given_up", "error", "too_large", "redirect_loop", "off_outlet",
                  "extraction_failed"})
#: how many lost documents a crawl names in its summary
NAMED_LOSSES = 20


class ItemEnded(DropItem):
    """Raised by a pipeline: the item's request has its final ``outcome``."""

    def __init__(self, outcome: str, message: str = "", log_level: str = "DEBUG") -> None:
        super().__init__(message or outcome, log_level=log_level)
        self.outcome = outcome


class ItemContinues(DropItem):
    """Raised by a pipeline: the item's request goes on (another mirror, or it waits)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, log_level="DEBUG")


def outcome_of(exception: BaseException) -> str | None:
    """The outcome of a request whose download ended with ``exception``; None when the
    request goes on (it waits for a mirror)."""
    if isinstance(exception, RequestWaiting):
        return None
    if isinstance(exception, RequestEnded):
        return exception.outcome
    if isinstance(exception, HttpError):
        return f"http_{exception.response.status}"
    if isinstance(exception, IgnoreRequest):
        message = str(exception)
        if "robots.txt" in message:
            return "robots"
        if "max redirections" in message:
            return "redirect_loop"
        if "DOWNLOAD_MAXSIZE" in message or "exceeded" in message:
            return "too_large"
        return "ignored"
    if type(exception).__name__ in ("CancelledError", "DownloadCancelledError"):
        return "too_large"  # the download handler cancels a body over DOWNLOAD_MAXSIZE
    verdict = judge_exception(exception)
    return verdict.outcome if verdict is not None else "error"


class RequestLedger:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.lost: list[str] = []
        connect = crawler.signals.connect
        connect(self.on_item_dropped, signal=scrapy_signals.item_dropped)
        connect(self.on_item_error, signal=scrapy_signals.item_error)
        connect(self.on_spider_error, signal=scrapy_signals.spider_error)
        connect(self.on_articles_stored, signal=signals.articles_stored)

    def finish(self, request: Request | None, outcome: str) -> None:
        """Record ``request``'s final outcome; a request ends once, later calls are ignored."""
        if request is None or request.meta.get(meta.ENDED):
            return
        request.meta[meta.ENDED] = outcome
        self.crawler.stats.inc_value(f"requests/ended/{outcome}")
        if outcome in LOST:
            if len(self.lost) < NAMED_LOSSES:
                self.lost.append(request.url)
            if outcome == "redirect_loop":
                logger.warning("Redirect loop at %s: not stored", request.url)
        self.crawler.signals.send_catch_log(
            signals.request_finished, request=request, outcome=outcome
        )

    def failed(self, exception: BaseException, request: Request) -> None:
        """A request's errback: the download or a middleware ended it with ``exception``."""
        outcome = outcome_of(exception)
        if outcome is not None:
            if outcome == "error":
                logger.error("%s failed: %s: %s", request.url, type(exception).__name__,
                             exception)
            self.finish(request, outcome)

    # -- Scrapy's hooks --------------------------------------------------------------------------

    def on_item_dropped(self, item: Any, response: Any, exception: BaseException,
                        **_: Any) -> None:
        request = getattr(item, "request", None)
        if request is None or isinstance(exception, ItemContinues):
            return
        self.finish(request, getattr(exception, "outcome", None) or "dropped")

    def on_item_error(self, item: Any, response: Any, failure: Any, **_: Any) -> None:
        self.finish(getattr(item, "request", None), "error")

    def on_spider_error(self, failure: Any, response: Any, **_: Any) -> None:
        # a bug in a callback: don't redeliver the page to fail again for ever
        self.finish(getattr(response, "request", None), "error")

    def on_articles_stored(self, requests: list[Request], **_: Any) -> None:
        for request in requests:
            # how the article was found: a listing, a feed, a sitemap
            if request is not None and not request.meta.get(meta.ENDED):
                found_by = request.meta.get(meta.FOUND_BY, "listing")
                self.crawler.stats.inc_value(f"articles/found_by/{found_by}")
            self.finish(request, "stored")
