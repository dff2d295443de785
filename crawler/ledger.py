"""The one owner of a request's final outcome.

Every request of an outlet ends exactly once, one way or another: its article stored, its
listing handled, a final answer about the document (not found, not HTML, no text), given
up, refused by robots.txt, or dropped inside Scrapy (too large, a redirect loop, a bug). The
ledger hears of each end from the components that decide it (:meth:`RequestLedger.dropped`,
a middleware dropping a request), from Scrapy's own hooks (the request's errback,
``item_dropped``, ``item_error``, ``spider_error``) and from ``articles_stored``, and counts
it by outcome (stats ``requests/ended/<outcome>``). An outcome is a named value set where it
is decided, never read out of an exception's message.

Once per request it calls the lease keeper (the distributed scheduler: the request's lease
is acknowledged) directly, so that a failure is seen: logged, counted
(``leases/ack_failed``), and the lease left to be redone (it goes back to the queue when the
worker stops or is taken over). Then it sends ``signals.request_finished`` for those that
only watch (metrics, revisits, the WARC writer).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from scrapy import signals as scrapy_signals
from scrapy.exceptions import DownloadCancelledError, DropItem, IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.defer import CancelledError

from crawler.core import meta, signals
from crawler.core.judging import judge_exception
from crawler.core.steps import Ended, Parked

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: outcomes that lose a document: a crawl with any of them did not get everything
LOST = frozenset({"given_up", "error", "too_large", "redirect_loop", "off_outlet",
                  "extraction_failed", "store_failed"})
#: the outcome of an article the store could not take (it is read-only, full or corrupt)
STORE_FAILED = "store_failed"
#: how many lost documents a crawl names in its summary
NAMED_LOSSES = 20


class RequestHandled(IgnoreRequest):
    """Raised by a downloader middleware, where Scrapy expects IgnoreRequest, for a request
    the crawler has dealt with: its end recorded already, or parked in the waiting room.
    Its errback lets it be."""


class LeaseKeeper(Protocol):
    """What holds a lease on each request until its end (the distributed scheduler)."""

    def request_finished(self, request: Request, outcome: str) -> None: ...


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
    request was dealt with where it was dropped (:class:`RequestHandled`)."""
    if isinstance(exception, RequestHandled):
        return None
    if isinstance(exception, HttpError):
        return f"http_{exception.response.status}"
    if isinstance(exception, IgnoreRequest):
        return "ignored"  # dropped by a middleware that does not name an outcome
    if isinstance(exception, (DownloadCancelledError, CancelledError)):
        return "too_large"  # the download handler cancels a body over DOWNLOAD_MAXSIZE
    verdict = judge_exception(exception)
    return verdict.outcome if verdict is not None else "error"


class RequestLedger:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.lost: list[str] = []
        self.lease_keeper: LeaseKeeper | None = None
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
        if self.lease_keeper is not None:
            try:
                self.lease_keeper.request_finished(request, outcome)
            except Exception:
                # its lease stays, and goes back to the queue: the request is done again
                logger.exception("Could not release the lease of %s (%s)", request.url,
                                 outcome)
                self.crawler.stats.inc_value("leases/ack_failed")
        self.crawler.signals.send_catch_log(
            signals.request_finished, request=request, outcome=outcome
        )

    def dropped(self, request: Request, end: Ended | Parked) -> RequestHandled:
        """A middleware drops ``request``: it ended (the outcome is recorded here) or waits
        for a mirror. Returns what the middleware raises to tell Scrapy."""
        if isinstance(end, Ended):
            self.finish(request, end.outcome)
            return RequestHandled(end.reason or end.outcome)
        return RequestHandled(end.reason)

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
