"""Spider middleware: articles already stored are not fetched again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy import signals as scrapy_signals

from crawler.component import OutletComponent
from crawler.context import crawl_context
from crawler.core import meta, signals
from crawler.storage import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response


logger = logging.getLogger(__name__)


class StoredArticleFilter(OutletComponent):
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
            # an attempt of a document already open (meta.DOCUMENT) is its own, never dropped
            if (isinstance(obj, Request) and obj.meta.get(meta.KIND) == "article"
                    and meta.DOCUMENT not in obj.meta):
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
            if (nothing_new and isinstance(obj, Request) and obj.meta.get(meta.IF_NEW)
                    and meta.DOCUMENT not in obj.meta):
                self.crawler.stats.inc_value("listing/stopped_nothing_new")
                continue
            kept.append(obj)
        return kept

    async def process_spider_output(
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
