"""Extension: what revisits found, recorded in the store."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy import signals as scrapy_signals

from crawler.context import crawl_context
from crawler.core import meta, signals
from crawler.storage import Removal, StoreError

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


logger = logging.getLogger(__name__)


class RevisitRecorder:
    """Writes what revisits found that is not a new version: seen unchanged (304), or
    removed. Collected on the event loop as requests end, written on one background thread
    every ``STORE_FLUSH_SECONDS`` and when the crawl closes; a write that fails is logged and
    left to the next revisit, which asks again."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.context = crawl_context(crawler)
        self.flush_seconds = crawler.settings.getfloat("STORE_FLUSH_SECONDS")
        self._seen: list[str] = []
        self._removed: dict[str, str] = {}  # canonical URL -> outlet
        self._timer: asyncio.TimerHandle | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="revisits")
        crawler.signals.connect(self.request_finished, signal=signals.request_finished)
        crawler.signals.connect(self.close, signal=scrapy_signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RevisitRecorder:
        return cls(crawler)

    def request_finished(self, request: Request | None, outcome: str, **_: Any) -> None:
        if request is None or not request.meta.get(meta.REVISIT):
            return
        outlet = self.context.catalog.get(request.meta[meta.OUTLET])
        key = outlet.canonical_url(request.url)
        if outcome == "not_modified":
            self._seen.append(key)
        elif outcome == "not_found":
            self._removed[key] = outlet.name
        else:
            return
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_seconds,
                                                                self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        seen, removed = self._take()
        future = asyncio.get_running_loop().run_in_executor(self._writer, self._write, seen,
                                                            removed)
        future.add_done_callback(lambda done: self._report(seen, removed, done.result()))

    def close(self) -> None:
        """The crawl ends: what was found so far is written before the store closes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._writer.shutdown(wait=True)  # a write under way finishes first
        seen, removed = self._take()
        self._report(seen, removed, self._write(seen, removed))

    def _take(self) -> tuple[list[str], dict[str, str]]:
        seen, self._seen = self._seen, []
        removed, self._removed = self._removed, {}
        return seen, removed

    def _write(self, seen: list[str], removed: dict[str, str]) -> list[Removal]:
        """On the writer thread (or at close): the store calls only."""
        when = datetime.now(UTC).isoformat(timespec="seconds")
        store = self.context.store
        removals: list[Removal] = []
        try:
            if seen:
                store.seen_unchanged(seen, when)
            if removed:
                removals = store.mark_removed(list(removed), when)
        except StoreError as exc:
            logger.warning("Could not record %d revisits: %s; the next revisit asks again",
                           len(seen) + len(removed), exc)
        return removals

    def _report(self, seen: list[str], removed: dict[str, str],
                removals: list[Removal]) -> None:
        """On the event loop: stats, signals, log lines."""
        if seen:
            self.crawler.stats.inc_value("revisits/not_modified", len(seen))
        for removal in removals:
            outlet = removed[removal.canonical_url]
            if removal.checks == 1:  # newly removed: counted once
                self.crawler.stats.inc_value("articles/removed")
                self.crawler.signals.send_catch_log(signals.article_removed, outlet=outlet,
                                                    removal=removal)
            logger.info("Removed from every mirror of %s (%s check%s): %s", outlet,
                        removal.checks, "" if removal.checks == 1 else "s",
                        removal.canonical_url)
