"""Item pipelines: extraction, then storage."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy import signals as scrapy_signals

from crawler import signals
from crawler.context import crawl_context
from crawler.extraction import ExtractionError, ExtractionTimeout, ExtractorPool
from crawler.failover import Attempts, RequestEnded, RequestWaiting
from crawler.items import ArticleItem, FinishedRequest
from crawler.judging import TEXT_PREFIX, document_answer, judge_text, text_answer
from crawler.ledger import ItemContinues, ItemEnded
from crawler.storage import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FinishedRequestPipeline:
    """Ends the requests the spider is finished with (:class:`FinishedRequest`).

    Scrapy hands a callback's output to the scheduler and the pipelines in order, so by the
    time the marker arrives here every request the listing produced is scheduled: in
    distributed mode its lease may go. The ledger hears of it through ``item_dropped``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FinishedRequestPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, FinishedRequest):
            return item
        raise ItemEnded(item.outcome, "not an article")


class ExtractionPipeline:
    """Turns a fetched article page into clean text and metadata.

    Extraction runs in worker processes under ``EXTRACTION_TIMEOUT``. A page with no text, or
    text shorter than the outlet's ``min_text_length``, is a mirror's answer about the
    document: failover asks another mirror, and the text is stored once mirrors agree. A page
    over the time limit or crashing the extractor is counted and not stored.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.failover = context.failover
        settings = crawler.settings
        self.pool = ExtractorPool(
            processes=settings.getint("EXTRACTION_PROCESSES"),
            timeout=settings.getfloat("EXTRACTION_TIMEOUT"),
            second_opinion=settings.getbool("EXTRACTION_SECOND_OPINION"),
        )
        crawler.signals.connect(self.pool.close, signal=scrapy_signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ExtractionPipeline:
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem):
            return item
        outlet = self.catalog.get(item.outlet)
        started = time.perf_counter()
        reason = None
        try:
            extracted = await self.pool.extract(
                item.body, item.url, outlet.boilerplate, item.encoding, outlet.selectors
            )
        except ExtractionTimeout:
            extracted, reason = None, "timeout"
        except ExtractionError as exc:
            logger.warning("Extraction failed on %s: %s", item.url, exc)
            extracted, reason = None, "error"
        if extracted is None and reason is None:
            reason = "empty"
        if extracted is not None and extracted.selector_fallback:
            # the outlet's body selector found nothing: its markup may have changed
            self.crawler.stats.inc_value("extraction/selector_fallback")
        self.crawler.signals.send_catch_log(
            signals.extraction_finished, outlet=item.outlet,
            seconds=time.perf_counter() - started, ok=reason is None, reason=reason,
        )
        if reason in ("timeout", "error"):
            self.crawler.stats.inc_value(f"extraction/failed/{reason}")
            raise ItemEnded("extraction_failed", f"extraction {reason}: {item.url}", "INFO")
        verdict = judge_text(extracted.text if extracted else None, outlet)
        if verdict is None and self.failover.may_be_notice(item.request, item.body):
            # a small page that links nowhere into the outlet: a notice long enough to pass
            # for an article, perhaps; taken once another look agrees
            verdict = document_answer(text_answer(extracted.text),
                                      "a page that links nowhere into the outlet")
        if verdict is not None and not _accepted(item, verdict.answer):
            if extracted is None:
                self.crawler.stats.inc_value("extraction/failed/empty")
            self._ask_another_mirror(item, verdict)
        if verdict is None and item.in_rotation:
            self.crawler.signals.send_catch_log(
                signals.article_page_accepted, outlet=item.outlet, mirror=item.mirror,
                url=item.url, body=item.body,
                headers={"Onion-Location": item.onion_location} if item.onion_location else {})
        item.body = b""  # the page is not needed any more; don't hold it while batching
        # the feed's title and date stand in only where the page gives none
        item.title = extracted.title or item.hints.get("title")
        item.author = extracted.author
        item.published = extracted.published or item.hints.get("published")
        item.language = extracted.language
        item.text = extracted.text
        item.content_hash = content_hash(extracted.text)
        return item

    def _ask_another_mirror(self, item: ArticleItem, verdict) -> None:
        try:
            retry = self.failover.document_answered(item.request, verdict, body=item.body)
        except RequestEnded as ended:
            raise ItemEnded(ended.outcome, f"{ended.outcome}: {item.url}", "INFO") from None
        except RequestWaiting:
            raise ItemContinues(f"waiting for a mirror: {item.url}") from None
        self.crawler.engine.crawl(retry)
        raise ItemContinues(f"{verdict.reason} at {item.url}: asking {retry.url}")


def _accepted(item: ArticleItem, answer: str | None) -> bool:
    """A short text settled by agreement is fetched once more to be stored: take it."""
    return bool(answer and answer.startswith(TEXT_PREFIX)
                and Attempts.of(item.request).accept_from == item.mirror)


class StorePipeline:
    """Writes articles to the store (``STORE_URI``) in batches.

    A batch is written when it holds ``STORE_BATCH_SIZE`` articles or is
    ``STORE_FLUSH_SECONDS`` old. Writes run on one background thread, so the crawl never waits
    on the store. While the store is unavailable the crawl pauses (no new work is taken), the
    batch is held and retried with back-off; ``signals.articles_stored`` is sent only once a
    batch is durable.
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

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem):
            return item
        item.fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.pending.append(item)
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
            logger.error("Cannot write to the store, stopping the crawl: %s", exc)
            self.crawler.stats.set_value("store/error", str(exc))
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
        except StoreError as exc:
            logger.error("Could not store the last articles: %s", exc)
        finally:
            self._writer.shutdown(wait=True)  # the crawl context closes the store
