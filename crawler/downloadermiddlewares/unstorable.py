"""Downloader middleware: once the store failed for good, articles are not fetched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.component import OutletComponent
from crawler.core import meta, signals
from crawler.core.steps import Ended
from crawler.ledger import STORE_FAILED

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


class UnstorableArticles(OutletComponent):
    """Downloader middleware, first of all: after ``signals.store_failed`` (a standalone
    crawl's store is read-only, full or corrupt) every article request ends
    ``store_failed`` here, unfetched; listings, feeds and sitemaps are still read, so the
    crawl counts every article its outlet lists, each once (after the dupefilter), as
    stored or lost."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        #: why the store takes nothing more, once it failed
        self.failure: str | None = None
        crawler.signals.connect(self.store_failed, signal=signals.store_failed)

    def store_failed(self, error: str, **_: Any) -> None:
        self.failure = error

    def process_request(self, request: Request) -> None:
        if self.failure is not None and request.meta.get(meta.KIND) == "article":
            raise self.ledger.dropped(request, Ended(STORE_FAILED, self.failure))
