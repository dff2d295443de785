"""Item pipeline: articles written to the store in batches."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crawler.context import crawl_context
from crawler.core import signals
from crawler.items import ArticleItem
from crawler.ledger import STORE_FAILED, ItemEnded
from crawler.mode import STANDALONE, crawl_mode
from crawler.storage import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class StorePipeline:
    """Writes articles to the store (``STORE_URI``) in batches.

    A batch is written when it holds ``STORE_BATCH_SIZE`` articles or is
    ``STORE_FLUSH_SECONDS`` old. Writes run on one background thread, so the crawl never waits
    on the store. While the store is unavailable the crawl pauses (no new work is taken), the
    batch is held and retried with back-off; ``signals.articles_stored`` is sent only once a
    batch is durable.

    A store that fails for good (read-only, full, corrupt) stops a worker: its batch goes
    back to the queue with the leases. A standalone crawl has no queue to give them back to:
    the batch's articles, and every article after, end ``store_failed`` (lost, counted), and
    ``signals.store_failed`` has those not fetched yet end unfetched
    (:mod:`crawler.downloadermiddlewares.unstorable`).
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.store = crawl_context(crawler).store
        self.batch_size = settings.getint("STORE_BATCH_SIZE")
        self.flush_seconds = settings.getfloat("STORE_FLUSH_SECONDS")
        self.retry_min = settings.getfloat("STORE_RETRY_MIN")
        self.retry_max = settings.getfloat("STORE_RETRY_MAX")
        self.pending: list[ArticleItem] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self.close_timeout = settings.getfloat("STORE_CLOSE_TIMEOUT")
        self._lock: asyncio.Lock | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: set while closing: how long the last batches may wait for an unavailable store
        self._give_up_at: float | None = None
        #: closing, the store stayed away past that: the batches after wait no more
        self._gave_up = False
        #: why the store cannot be written any more (it failed for good), or None
        self.failure: str | None = None
        self.standalone = crawl_mode(settings) == STANDALONE
        self.ledger = crawl_context(crawler).ledger

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem):
            return item
        if self.failure is not None and self.standalone:
            raise ItemEnded(STORE_FAILED, f"not stored: {self.failure}")
        item.fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.pending.append(item)
        self.ledger.held_by(item.request, "store")  # ended once its batch is written
        if len(self.pending) >= self.batch_size:
            await self._flush_or_stop()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_seconds, self._flush_later)
        return item

    def _flush_later(self) -> None:
        self._timer = None
        asyncio.ensure_future(self._flush_or_stop())

    async def _flush_or_stop(self) -> None:
        try:
            await self.flush()
        except StoreError as exc:
            # not a passing outage (that is StoreUnavailable): nothing more can be stored
            self._failed(exc)

    def _failed(self, exc: StoreError, closing: bool = False) -> None:
        if self.failure is not None:
            return
        self.failure = str(exc)
        self.crawler.stats.set_value("store/error", self.failure)
        if self.standalone:
            logger.error("Cannot write to the store, storing nothing more: %s", exc)
            self.crawler.signals.send_catch_log(signals.store_failed, error=self.failure)
            return
        logger.error("Cannot write to the store, stopping the crawl: %s", exc)
        if not closing:
            asyncio.ensure_future(self.crawler.engine.close_spider_async(reason="store_error"))

    async def flush(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one write at a time, in arrival order
            batch, self.pending = self.pending, []
            if batch:
                try:
                    await self._write(batch)
                except StoreError:
                    # a worker's go back to the queue with their leases; a crawl's are lost
                    self.crawler.stats.inc_value("articles/not_stored", len(batch))
                    if self.standalone:
                        for item in batch:
                            self.ledger.finish(item.request, STORE_FAILED)
                    raise

    async def _write(self, batch: list[ArticleItem]) -> None:
        records = [item.record() for item in batch]
        delay = self.retry_min
        paused = False
        loop = asyncio.get_running_loop()
        if self._gave_up:
            raise StoreUnavailable(f"{len(records)} articles not stored: the store stayed away")
        try:
            while True:
                try:
                    written = await loop.run_in_executor(self._writer, self.store.write, records)
                    break
                except StoreUnavailable as exc:
                    if self._give_up_at is not None and time.monotonic() > self._give_up_at:
                        # stopping: unacknowledged, these go back to the queue (workers)
                        self._gave_up = True
                        raise StoreUnavailable(f"{len(records)} articles not stored: {exc}") \
                            from None
                    if not paused:
                        logger.warning("Store unavailable (%s): pausing the crawl", exc)
                        self.crawler.engine.pause()
                        paused = True
                    # stopping: look again soon, the deadline is near
                    await asyncio.sleep(delay if self._give_up_at is None else min(delay, 1.0))
                    delay = min(delay * 2, self.retry_max)
        finally:
            if paused:
                logger.info("Store is back: resuming the crawl")
                self.crawler.engine.unpause()
        self.crawler.stats.inc_value("articles/stored", len(records))
        self.crawler.stats.inc_value("articles/new_or_changed", written)
        if written.revised:
            self.crawler.stats.inc_value("articles/revised", len(written.revised))
        self.crawler.signals.send_catch_log(
            signals.articles_stored, articles=records, requests=[i.request for i in batch],
            revised=written.revised,
        )

    async def close_spider(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._give_up_at = time.monotonic() + self.close_timeout
        try:
            await self.flush()
        except StoreUnavailable as exc:
            logger.error("Could not store the last articles: %s", exc)
        except StoreError as exc:
            self._failed(exc, closing=True)
        finally:
            self._writer.shutdown(wait=True)  # the crawl context closes the store
