"""The validators (ETag, Last-Modified) of the last answer for each listing, feed and
sitemap, kept per outlet and path (never per mirror host: a document is the same on every
mirror), so the next crawl asks with If-None-Match / If-Modified-Since and a 304 costs
nothing.

A standalone crawl keeps them in its store (SQLite: table ``validators``), and only once the
crawl finished with nothing lost: a 304 must never hide an article a crawl did not store.
A JSON Lines or PostgreSQL store keeps them for the process only. Workers keep them in Redis
(:class:`crawler.distributed.validators.RedisValidators`), written as each document ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy import signals as scrapy_signals

from crawler.ledger import LOST
from crawler.storage import StoreError

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from crawler.storage import Store

logger = logging.getLogger(__name__)

def document_path(url: str) -> str:
    """A document's key on any mirror: its path and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class Validators:
    """In memory, for the life of the process; the base of the others."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        #: False (``crawler crawl --full``, or CONDITIONAL_REQUESTS off): ask for everything
        self.ask = settings.getbool("CONDITIONAL_REQUESTS") and not settings.getbool(
            "DISCOVERY_FULL")
        self.enabled = settings.getbool("CONDITIONAL_REQUESTS")
        self._known: dict[tuple[str, str], dict[str, str]] = {}

    def get(self, outlet: str, url: str) -> dict[str, str] | None:
        if not self.ask:
            return None
        return self._known.get((outlet, document_path(url)))

    def keep(self, request: Request, outlet: str, url: str, validators: dict[str, str]) -> None:
        """Validators of a document ``request`` read to the end."""
        if self.enabled and validators:
            self._known[(outlet, document_path(url))] = validators


class StoreValidators(Validators):
    """In the crawl's store, saved when the crawl finished with nothing lost."""

    def __init__(self, crawler: Crawler, store: Store) -> None:
        super().__init__(crawler)
        self.store = store
        self._pending: dict[tuple[str, str], dict[str, str]] = {}
        if self.enabled:
            try:
                self._known.update(store.validators())
            except StoreError as exc:
                logger.warning("Cannot read the validators of the last crawl: %s", exc)
        crawler.signals.connect(self.save, signal=scrapy_signals.spider_closed)

    @classmethod
    def from_store(cls, crawler: Crawler, store: Store) -> StoreValidators:
        return cls(crawler, store)

    def keep(self, request: Request, outlet: str, url: str, validators: dict[str, str]) -> None:
        if self.enabled and validators:
            self._pending[(outlet, document_path(url))] = validators

    def save(self, reason: str = "") -> None:
        stats = self.crawler.stats.get_stats()
        lost = sum(n for k, n in stats.items()
                   if k.startswith("requests/ended/") and k.rsplit("/", 1)[1] in LOST)
        if reason != "finished" or lost or stats.get("articles/not_stored"):
            if self._pending:
                logger.info("Validators of %d documents not kept: the crawl did not store "
                            "everything", len(self._pending))
            return
        self._known.update(self._pending)
        if not self._pending:
            return
        try:
            self.store.keep_validators(self._pending)
        except StoreError as exc:
            logger.warning("Cannot keep the validators for the next crawl: %s", exc)
        finally:
            self._pending.clear()
