"""Item pipeline: a stored article's answer and request written as WARC records."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured

from crawler.context import crawl_context
from crawler.core import meta, signals
from crawler.core.revisions import revision_hash
from crawler.items import ArticleItem
from crawler.warc import WarcWriter

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def is_stored_version(item: ArticleItem) -> bool:
    """Whether a revisit found the version of the article it was queued for."""
    request = item.request
    stored = request.meta.get(meta.STORED_VERSION) if request is not None else None
    return bool(stored) and stored == revision_hash(item.record())


class WarcPipeline:
    """Item pipeline (700, before the store): writes a stored article's answer and request
    (:class:`WarcWriter`) and names them on the item (``warc_file``, ``warc_record_id``).

    A write that fails (a full disk) stops the crawl, as the store's errors do: the article
    is still stored, without its record."""

    def __init__(self, crawler: Crawler, writer: WarcWriter) -> None:
        self.crawler = crawler
        self.writer = writer
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warc")
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcPipeline:
        writer = crawl_context(crawler).warc
        if writer is None:
            raise NotConfigured("WARC_DIR is not set")
        return cls(crawler, writer)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem):
            return item
        raw = self.writer.take(item.request)
        if raw is None:
            # the item names a request other than the one downloaded: nothing to write
            self.crawler.stats.inc_value("warc/no_capture")
            return item
        if is_stored_version(item):
            # a revisit answered 200 with the version stored: its record is in the WARC already
            # (the article names it), and the store notes that it was seen
            self.crawler.stats.inc_value("warc/unchanged")
            return item
        loop = asyncio.get_running_loop()
        try:
            written = await loop.run_in_executor(self._thread, self.writer.write, raw)
        except OSError as exc:
            logger.error("Cannot write to WARC_DIR, stopping the crawl: %s", exc)
            self.crawler.stats.inc_value("warc/write_failed")
            asyncio.ensure_future(self.crawler.engine.close_spider_async(reason="warc_error"))
            return item
        item.warc_file, item.warc_record_id = written.file, written.record_id
        self.crawler.stats.inc_value("warc/records")
        self.crawler.stats.inc_value("warc/bytes", written.size)
        self.crawler.signals.send_catch_log(signals.warc_written, outlet=item.outlet,
                                            size=written.size)
        return item

    def open_spider(self) -> None:
        self._schedule_age_check()

    def _schedule_age_check(self) -> None:
        if self.writer.max_age is None:
            return
        # often enough that a file closes within a tenth of its age limit of it
        delay = max(self.writer.max_age / 10, 0.1)
        self._timer = asyncio.get_running_loop().call_later(delay, self._check_age)

    def _check_age(self) -> None:
        self._thread.submit(self.writer.close_if_old)
        self._schedule_age_check()

    def close_spider(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._thread.shutdown(wait=True)
        self.writer.close()
