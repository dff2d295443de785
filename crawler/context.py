"""The parts of a crawl that several components share, built once per crawler.

The spider, middlewares, pipelines and extensions each reach them through
:func:`crawl_context`, so there is one outlet catalog, one mirror health, one waiting room,
one ledger, one failover, one store, one pool of extraction workers and (workers) one
Redis client per crawler, whatever asks first. The crawl's mode (``CRAWL_MODE``,
:mod:`crawler.mode`) chooses the backends of the parts that differ between a standalone
crawl and a worker.
"""

from __future__ import annotations

import os
import socket
import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any

from scrapy.utils.misc import build_from_crawler, load_object

from crawler.mode import backend

if TYPE_CHECKING:
    from redis import Redis
    from scrapy.crawler import Crawler

    from crawler.core.outlets import OutletCatalog
    from crawler.extraction import ExtractorPool
    from crawler.failover import Failover
    from crawler.ledger import RequestLedger
    from crawler.mirror_registry import MirrorRegistry
    from crawler.mirrors import MirrorHealth
    from crawler.stall_clock import StallClock
    from crawler.storage import Store
    from crawler.validators import Validators
    from crawler.waiting import WaitingRoom
    from crawler.warc import WarcWriter


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class CrawlContext:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @cached_property
    def worker_id(self) -> str:
        """This process's name among the workers (``WORKER_ID``, else made up)."""
        return self.crawler.settings.get("WORKER_ID") or new_worker_id()

    @cached_property
    def redis(self) -> Redis:
        """The worker's one Redis client (one connection pool), shared by the scheduler,
        the dupefilter, mirror health, politeness, the waiting room and the metrics."""
        from crawler.connection import redis_client

        return redis_client(self.crawler.settings)

    @cached_property
    def store(self) -> Store:
        """The crawl's one store (``STORE_URI``): one PostgreSQL pool per worker, shared by
        the stored-article check and the writer. Closed when the engine stops: after the
        pipelines wrote their last batch and every spider_closed handler ran."""
        from scrapy import signals

        from crawler.storage import open_store

        settings = self.crawler.settings
        store = open_store(settings["STORE_URI"], pool_size=settings.getint("STORE_POOL_SIZE"))
        self.crawler.signals.connect(store.close, signal=signals.engine_stopped, weak=False)
        return store

    @cached_property
    def extractor(self) -> ExtractorPool:
        """The process's one pool of extraction workers (``EXTRACTION_PROCESSES``), shared by
        the extraction pipeline and the verification of candidate mirrors. Closed when the
        engine stops, after the pipelines' last page."""
        from scrapy import signals

        from crawler.extraction import ExtractionOptions, ExtractorPool

        settings = self.crawler.settings
        pool = ExtractorPool(
            processes=settings.getint("EXTRACTION_PROCESSES"),
            timeout=settings.getfloat("EXTRACTION_TIMEOUT"),
            options=ExtractionOptions(
                second_opinion=settings.getbool("EXTRACTION_SECOND_OPINION")),
        )
        self.crawler.signals.connect(pool.close, signal=signals.engine_stopped, weak=False)
        return pool

    @cached_property
    def catalog(self) -> OutletCatalog:
        from crawler.core.outlets import OutletCatalog

        return OutletCatalog.from_setting(self.crawler.settings.get("OUTLETS_DIR"))

    @cached_property
    def health(self) -> MirrorHealth:
        return build_from_crawler(self._backend("health"), self.crawler)

    @cached_property
    def ledger(self) -> RequestLedger:
        from crawler.ledger import RequestLedger

        return RequestLedger(self.crawler)

    @cached_property
    def stall_clock(self) -> StallClock:
        """When this process stood still lately: for durations that must not count it."""
        from crawler.stall_clock import StallClock

        return StallClock.from_crawler(self.crawler)

    @cached_property
    def waiting(self) -> WaitingRoom:
        return self._backend("waiting")(self.crawler, self.catalog, self.health, self.ledger)

    @cached_property
    def failover(self) -> Failover:
        from crawler.failover import Failover

        return Failover(self.crawler, self.catalog, self.health, self.waiting)

    @cached_property
    def validators(self) -> Validators:
        return self._in_store("validators") or self._backend("validators")(self.crawler)

    @cached_property
    def warc(self) -> WarcWriter | None:
        """The process's WARC writer, shared by the capturing middleware and the pipeline;
        None unless ``WARC_DIR`` is set."""
        from scrapy.exceptions import NotConfigured

        from crawler.warc import WarcWriter

        try:
            return WarcWriter.from_crawler(self.crawler, self.worker_id)
        except NotConfigured:
            return None

    @cached_property
    def mirror_registry(self) -> MirrorRegistry:
        """The mirrors outlets named that their files do not list."""
        return self._in_store("mirror_registry") or build_from_crawler(
            self._backend("mirror_registry"), self.crawler)

    def _backend(self, part: str) -> type:
        return load_object(backend(self.crawler.settings, part))

    def _in_store(self, part: str) -> Any:
        """The part, if its backend keeps it in the crawl's store (``from_store``): the
        store owns its file, the part goes through it. Else None."""
        cls = self._backend(part)
        if not hasattr(cls, "from_store"):
            return None
        return cls.from_store(self.crawler, self.store)

    #: the robots.txt middleware, once built: the sitemaps robots.txt names
    robots = None

    def connect(self) -> CrawlContext:
        """Build the parts that listen to the crawl's signals: call before the engine starts."""
        _ = self.ledger, self.waiting, self.validators, self.stall_clock
        return self


def crawl_context(crawler: Crawler) -> CrawlContext:
    """The crawler's context, made the first time it is asked for; it lives, and goes,
    with the crawler."""
    context = getattr(crawler, "news_crawl_context", None)
    if context is None:
        context = crawler.news_crawl_context = CrawlContext(crawler)
    return context
