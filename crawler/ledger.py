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

It also keeps the account of open documents, the one place every path passes: a document
opens when its first request is scheduled (it is given an id, ``meta["document"]``, that
every later request for it carries), and closes at its one end, or when it leaves this
process (a worker's requests go back to Redis, where its lease or the queue holds them). A
request carrying an open document's id is an attempt of it (another mirror, a redirect, a
second look): never a duplicate of itself, whatever the dupefilter has seen. A document that
is still open when the crawl has nothing left to do (the engine idle twice over, or the
spider closed) and that no waiting room holds has been lost by a path that forgot it: it
ends as ``unaccounted``, named, counted and lost, so a bug shows as a loss instead of a
crawl that never finishes or exits 0.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from scrapy import signals as scrapy_signals
from scrapy.exceptions import DontCloseSpider, DownloadCancelledError, DropItem, IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.defer import CancelledError

from crawler.core import meta, signals
from crawler.core.judging import judge_exception
from crawler.core.steps import Ended, Parked

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: the end the ledger gives a document that every path forgot (a bug: always 0)
UNACCOUNTED = "unaccounted"
#: the end of an attempt the scheduler refused to queue
REFUSED = "refused"
#: outcomes that lose a document: a crawl with any of them did not get everything
LOST = frozenset({"given_up", "error", "too_large", "redirect_loop", "off_outlet",
                  "extraction_failed", "store_failed", UNACCOUNTED, REFUSED})
#: the outcome of an article the store could not take (it is read-only, full or corrupt)
STORE_FAILED = "store_failed"
#: the holder (RequestLedger.held_by) of documents waiting for a mirror
WAITING_ROOM = "waiting room"
#: ended documents remembered, so that a second end of one is seen (a bounded window)
REMEMBERED_ENDS = 100_000
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


def new_document_id() -> str:
    return uuid.uuid4().hex[:20]


@dataclass
class OpenDocument:
    #: its latest request in this process
    request: Request
    #: monotonic time it opened here
    since: float
    #: what holds it while the crawl may look idle (the waiting room, the store's batch):
    #: held, not forgotten; None while it is in the crawl's own hands
    holder: str | None = None


class RequestLedger:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.lost: list[str] = []
        self.lease_keeper: LeaseKeeper | None = None
        #: document id -> the open document, for those this process holds
        self.open: dict[str, OpenDocument] = {}
        #: ids of the documents that ended lately, to see a second end
        self._ended: OrderedDict[str, str] = OrderedDict()
        #: open documents seen at the last idle moment: still open at the next, they are lost
        self._suspects: set[str] = set()
        connect = crawler.signals.connect
        connect(self.on_request_scheduled, signal=scrapy_signals.request_scheduled)
        connect(self.on_request_dropped, signal=scrapy_signals.request_dropped)
        connect(self.on_spider_idle, signal=scrapy_signals.spider_idle)
        connect(self.on_spider_closed, signal=scrapy_signals.spider_closed)
        connect(self.on_item_dropped, signal=scrapy_signals.item_dropped)
        connect(self.on_item_error, signal=scrapy_signals.item_error)
        connect(self.on_spider_error, signal=scrapy_signals.spider_error)
        connect(self.on_articles_stored, signal=signals.articles_stored)

    # -- the account of open documents ---------------------------------------------------------

    def hold(self, request: Request) -> str | None:
        """``request`` is this process's now (scheduled here, or taken from Redis): its
        document opens, given an id if it has none yet. Returns the id (None: not an
        outlet's request, outside the account)."""
        if request.meta.get(meta.OUTLET) is None:
            return None
        document = request.meta.get(meta.DOCUMENT)
        if document is None:
            document = request.meta[meta.DOCUMENT] = new_document_id()
        elif document in self._ended:
            # done again: its lease came back (a failed acknowledgement, a takeover)
            self.crawler.stats.inc_value("documents/reopened")
        self.open[document] = OpenDocument(request, time.monotonic())
        return document

    def handed_off(self, request: Request) -> None:
        """``request`` left this process still open: Redis holds it now (a worker's queue,
        lease or waiting room)."""
        self.open.pop(request.meta.get(meta.DOCUMENT), None)

    def all_handed_off(self) -> None:
        """Every open document went back to Redis with this worker's leases (it stops)."""
        self.open.clear()

    def held_by(self, request: Request, holder: str) -> None:
        """``request`` is held in this process by ``holder`` (a waiting room for a mirror, the
        store's next batch), which ends it or hands it on: the crawl may be idle meanwhile."""
        document = request.meta.get(meta.DOCUMENT)
        if document is None or document not in self.open:
            document = self.hold(request)
        if document is not None:
            self.open[document].holder = holder

    def open_longer_than(self, seconds: float) -> list[OpenDocument]:
        """The documents open here for more than ``seconds``, the oldest first."""
        now = time.monotonic()
        return sorted((o for o in self.open.values() if now - o.since > seconds),
                      key=lambda o: o.since)

    def on_request_scheduled(self, request: Request, **_: Any) -> None:
        attempt = meta.DOCUMENT in request.meta
        if self.hold(request) is not None and attempt:
            # an attempt of a document already admitted: its identity was checked once
            request.dont_filter = True

    def on_request_dropped(self, request: Request, **_: Any) -> None:
        """The scheduler refused ``request``: a duplicate of another document is no document
        of its own; an attempt must never be refused, and ends lost if it is."""
        if request.dont_filter:
            logger.error("The scheduler refused %s: lost", request.url)
            self.finish(request, REFUSED)
        else:
            self.open.pop(request.meta.get(meta.DOCUMENT), None)

    def on_spider_idle(self) -> None:
        """Nothing to do, and documents still open that no waiting room holds: once more
        to be sure (a store's batch may still be on its way), then they are lost."""
        forgotten = {d for d, o in self.open.items() if o.holder is None}
        lost = forgotten & self._suspects
        self._suspects = forgotten - lost
        for document in lost:
            self._unaccounted(self.open[document].request)
        if self._suspects:
            raise DontCloseSpider("documents are still open")

    def on_spider_closed(self) -> None:
        # the pipelines are closed (the store wrote its last batch); connected before the
        # waiting rooms: those they hold are ended by them (given up)
        for document in [d for d, o in self.open.items() if o.holder != WAITING_ROOM]:
            self._unaccounted(self.open[document].request)

    def _unaccounted(self, request: Request) -> None:
        logger.error("%s was left open by the crawl, with no end recorded: counted as lost "
                     "(%s)", request.url, UNACCOUNTED)
        self.finish(request, UNACCOUNTED)

    # -- ends --------------------------------------------------------------------------------------

    def finish(self, request: Request | None, outcome: str) -> None:
        """Record ``request``'s final outcome; a request ends once, later calls are ignored."""
        if request is None or request.meta.get(meta.ENDED):
            return
        request.meta[meta.ENDED] = outcome
        document = request.meta.get(meta.DOCUMENT)
        if document is not None and document in self._ended:
            # ended here already (a lease done again after a failed acknowledgement): its
            # lease goes, its end is not counted twice
            self.crawler.stats.inc_value("documents/ended_twice")
            self.open.pop(document, None)
            self._release(request, outcome)
            return
        if document is not None:
            self.open.pop(document, None)
            self._ended[document] = outcome
            if len(self._ended) > REMEMBERED_ENDS:
                self._ended.popitem(last=False)
        self.crawler.stats.inc_value(f"requests/ended/{outcome}")
        if outcome in LOST:
            if len(self.lost) < NAMED_LOSSES:
                self.lost.append(request.url)
            if outcome == "redirect_loop":
                logger.warning("Redirect loop at %s: not stored", request.url)
        self._release(request, outcome)
        self.crawler.signals.send_catch_log(
            signals.request_finished, request=request, outcome=outcome
        )

    def _release(self, request: Request, outcome: str) -> None:
        if self.lease_keeper is None:
            return
        try:
            self.lease_keeper.request_finished(request, outcome)
        except Exception:
            # its lease stays, and goes back to the queue: the request is done again
            logger.exception("Could not release the lease of %s (%s)", request.url, outcome)
            self.crawler.stats.inc_value("leases/ack_failed")

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
