"""The validators (ETag, Last-Modified) of the last answer for each listing, feed and
sitemap, kept per outlet and path (never per mirror host: a document is the same on every
mirror), so the next crawl asks with If-None-Match / If-Modified-Since and a 304 costs
nothing.

A standalone crawl keeps them beside its SQLite store (table ``validators``), and only once
the crawl finished with nothing lost: a 304 must never hide an article a crawl did not
store. With another store they last for the process only. Workers keep them in Redis
(:class:`crawler.distributed.validators.RedisValidators`), written as each document ends.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy import signals as scrapy_signals

from crawler.ledger import LOST
from crawler.storage import StoreError, path_from_uri

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS validators (
    outlet TEXT NOT NULL,
    path TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    PRIMARY KEY (outlet, path)
)
"""


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
    """Beside a SQLite store, saved when the crawl finished with nothing lost; in memory
    with any other store."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._pending: dict[tuple[str, str], dict[str, str]] = {}
        self.path: str | None = None
        uri = crawler.settings.get("STORE_URI") or ""
        if uri.startswith("sqlite:") and self.enabled:
            self.path = path_from_uri(uri)
            try:
                with self._connect() as db:
                    rows = db.execute("SELECT outlet, path, etag, last_modified FROM validators")
                    for outlet, path, etag, modified in rows:
                        found = {"ETag": etag, "Last-Modified": modified}
                        self._known[(outlet, path)] = {k: v for k, v in found.items() if v}
            except (sqlite3.Error, StoreError) as exc:
                logger.warning("Cannot read the validators of the last crawl: %s", exc)
                self.path = None
        crawler.signals.connect(self.save, signal=scrapy_signals.spider_closed)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0)
        db.execute(SCHEMA)
        return db

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
        if self.path is None or not self._pending:
            return
        rows = [(o, p, v.get("ETag"), v.get("Last-Modified"))
                for (o, p), v in self._pending.items()]
        try:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO validators VALUES (?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            logger.warning("Cannot keep the validators for the next crawl: %s", exc)
        finally:
            self._pending.clear()
