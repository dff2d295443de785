"""Prometheus metrics, fed by the crawler's signals (see README.md: "Metrics").

Each crawler gets its own registry, served on ``METRICS_PORT`` when set. Gauges that describe
shared state (queue depth, in-flight requests, live workers) are read from Redis at scrape time
by the collectors named in ``METRICS_COLLECTORS`` and those of the crawl's mode.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from scrapy import signals as scrapy_signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.misc import build_from_crawler, load_object

from crawler.context import crawl_context
from crawler.core import meta, signals
from crawler.core.outlets import OutletError
from crawler.core.revisions import normalize_published
from crawler.mirror_verification import STATES
from crawler.mode import COLLECTORS, crawl_mode

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

OUTCOMES = ("ok", "http_error", "timeout", "connection_error", "blocked")
#: final outcomes whose series exist from the start (others appear when they happen)
ENDED_OUTCOMES = ("stored", "listing_handled", "given_up")
RESPONSE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30)
EXTRACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: publication to storage: minutes for a crawl that keeps up, days for a backlog
FRESHNESS_BUCKETS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
                     2 * 86400, 7 * 86400)


class CrawlerMetrics:
    """The metric families, in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None, mirror_up: bool = True):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "crawler_requests", "Downloads by outcome", ["outlet", "mirror", "outcome"],
            registry=r,
        )
        self.requests_ended = Counter(
            "crawler_requests_ended", "Requests by final outcome (each request ends once)",
            ["outlet", "outcome"], registry=r,
        )
        self.articles_stored = Counter(
            "crawler_articles_stored", "Articles durably stored", ["outlet", "section"],
            registry=r,
        )
        self.revisions = Counter(
            "crawler_article_revisions", "New versions of stored articles (edits seen on a"
            " revisit)", ["outlet"], registry=r,
        )
        self.removed = Counter(
            "crawler_articles_removed", "Stored articles gone from every mirror", ["outlet"],
            registry=r,
        )
        self.freshness = Histogram(
            "crawler_article_freshness_seconds", "From an article's publication to its storage"
            " (new articles with a date)", ["outlet"], buckets=FRESHNESS_BUCKETS, registry=r,
        )
        self.last_stored = Gauge(
            "crawler_article_last_stored_timestamp_seconds", "When this process last stored a"
            " new article of the outlet (Unix time)", ["outlet"], registry=r,
        )
        self.warc_records = Counter(
            "crawler_warc_records", "Stored articles written to WARC (answer and request)",
            ["outlet"], registry=r,
        )
        self.warc_bytes = Counter(
            "crawler_warc_bytes", "Bytes of WARC file written (compressed records)", ["outlet"],
            registry=r,
        )
        self.extraction_failures = Counter(
            "crawler_extraction_failures", "Pages that gave no article text", ["outlet"],
            registry=r,
        )
        # in distributed mode the shared state is the truth: a collector reads it instead
        self.mirror_up = Gauge(
            "crawler_mirror_up", "1 while the mirror is in rotation, 0 while it is skipped",
            ["outlet", "mirror"], registry=r,
        ) if mirror_up else None
        self.mirror_candidates = Gauge(
            "crawler_mirror_candidates", "Mirrors the outlet named that its file does not list,"
            " by state: new, verifying, verified (proposed), rejected, adopted",
            ["outlet", "state"], registry=r,
        )
        self.failovers = Counter(
            "crawler_mirror_failovers", "Documents moved to another mirror", ["outlet"],
            registry=r,
        )
        self.response_seconds = Histogram(
            "crawler_response_seconds", "Download latency", ["outlet"],
            buckets=RESPONSE_BUCKETS, registry=r,
        )
        self.extraction_seconds = Histogram(
            "crawler_extraction_seconds", "Time to extract one article",
            buckets=EXTRACTION_BUCKETS, registry=r,
        )


class PrometheusMetrics:
    """Scrapy extension: keeps :class:`CrawlerMetrics` up to date from signals and serves
    them on ``METRICS_PORT``."""

    def __init__(self, crawler: Crawler, port: int | None, host: str) -> None:
        self.crawler = crawler
        paths = [*COLLECTORS[crawl_mode(crawler.settings)],
                 *crawler.settings.getlist("METRICS_COLLECTORS")]
        collectors = [build_from_crawler(load_object(path), crawler) for path in paths]
        provided = {name for c in collectors for name in getattr(c, "provides", ())}
        self.metrics = CrawlerMetrics(mirror_up="crawler_mirror_up" not in provided)
        for collector in collectors:
            self.metrics.registry.register(collector)
        self.port = port
        self.host = host
        self._server: Any = None
        connect = crawler.signals.connect
        connect(self.on_request_outcome, signal=signals.request_outcome)
        connect(self.on_mirror_state_changed, signal=signals.mirror_state_changed)
        connect(self.on_mirror_failover, signal=signals.mirror_failover)
        connect(self.on_extraction_finished, signal=signals.extraction_finished)
        connect(self.on_articles_stored, signal=signals.articles_stored)
        connect(self.on_request_finished, signal=signals.request_finished)
        connect(self.on_article_removed, signal=signals.article_removed)
        connect(self.on_warc_written, signal=signals.warc_written)
        connect(self.on_mirror_candidates, signal=signals.mirror_candidates_changed)
        connect(self.on_spider_opened, signal=scrapy_signals.spider_opened)
        connect(self.on_spider_closed, signal=scrapy_signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrometheusMetrics:
        if not crawler.settings.getbool("METRICS_ENABLED", True):
            raise NotConfigured
        port = crawler.settings.get("METRICS_PORT")
        ext = cls(crawler, int(port) if port not in (None, "") else None,
                  crawler.settings.get("METRICS_HOST"))
        return ext

    # -- signals ---------------------------------------------------------------------------------

    def on_spider_opened(self, spider: Any) -> None:
        # every series exists from the start, at 0 (and every mirror in rotation), so that
        # rate() sees a worker's first event and dashboards show outlets before their first
        # request
        catalog = crawl_context(self.crawler).catalog
        name = getattr(spider, "outlet_name", None)
        m = self.metrics
        for outlet_name in [name] if name else catalog.names():
            try:
                outlet = catalog.get(outlet_name)
            except OutletError:  # a bad file is reported by `crawler outlets`, not here
                continue
            m.extraction_failures.labels(outlet.name)
            m.failovers.labels(outlet.name)
            m.revisions.labels(outlet.name)
            m.removed.labels(outlet.name)
            m.warc_records.labels(outlet.name)
            m.warc_bytes.labels(outlet.name)
            for outcome in ENDED_OUTCOMES:
                m.requests_ended.labels(outlet.name, outcome)
            for section in outlet.sections:
                m.articles_stored.labels(outlet.name, section)
            for state in STATES:
                m.mirror_candidates.labels(outlet.name, state)
            for mirror in outlet.mirrors:
                for outcome in OUTCOMES:
                    m.requests.labels(outlet.name, mirror, outcome)
                if m.mirror_up is not None:
                    m.mirror_up.labels(outlet.name, mirror).set(1)
        if self.port is not None:
            ProcessCollector(registry=self.metrics.registry)
            PlatformCollector(registry=self.metrics.registry)
            self._server, _ = start_http_server(
                self.port, addr=self.host, registry=self.metrics.registry
            )
            logger.info("Serving metrics on http://%s:%d/metrics", self.host, self.port)

    def on_spider_closed(self, spider: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def on_request_outcome(self, outlet: str, mirror: str | None, outcome: str, seconds=None):
        self.metrics.requests.labels(outlet, mirror or "", outcome).inc()
        if seconds is not None:
            self.metrics.response_seconds.labels(outlet).observe(seconds)

    def on_request_finished(self, request: Any, outcome: str) -> None:
        self.metrics.requests_ended.labels(request.meta.get("outlet", ""), outcome).inc()

    def on_mirror_state_changed(self, outlet: str, mirror: str, up: bool) -> None:
        if self.metrics.mirror_up is not None:
            self.metrics.mirror_up.labels(outlet, mirror).set(1 if up else 0)

    def on_mirror_candidates(self, outlet: str, counts: dict[str, int]) -> None:
        for state in STATES:
            self.metrics.mirror_candidates.labels(outlet, state).set(counts.get(state, 0))

    def on_warc_written(self, outlet: str, size: int) -> None:
        self.metrics.warc_records.labels(outlet).inc()
        self.metrics.warc_bytes.labels(outlet).inc(size)

    def on_mirror_failover(self, outlet: str, **_: Any) -> None:
        self.metrics.failovers.labels(outlet).inc()

    def on_extraction_finished(self, outlet: str, seconds: float, ok: bool, reason=None) -> None:
        self.metrics.extraction_seconds.observe(seconds)
        if not ok:
            self.metrics.extraction_failures.labels(outlet).inc()

    def on_articles_stored(self, articles: list[dict[str, Any]], requests: list[Any] = (),
                           revised: tuple[str, ...] = (), **_: Any) -> None:
        m = self.metrics
        outlets = {}
        for record, request in zip(articles, requests or [None] * len(articles), strict=True):
            m.articles_stored.labels(record["outlet"], record["section"] or "").inc()
            outlets[record["canonical_url"]] = record["outlet"]
            if request is None or not request.meta.get(meta.REVISIT):
                lag = freshness(record)
                if lag is not None:
                    m.freshness.labels(record["outlet"]).observe(lag)
                m.last_stored.labels(record["outlet"]).set_to_current_time()
        for url in revised:
            m.revisions.labels(outlets.get(url, "")).inc()

    def on_article_removed(self, outlet: str, **_: Any) -> None:
        self.metrics.removed.labels(outlet).inc()


def freshness(record: dict[str, Any]) -> float | None:
    """Seconds from publication to this fetch; None without a usable date (a date in the
    future is a page's mistake, not a lag)."""
    published = normalize_published(record.get("published"))
    try:
        lag = (datetime.fromisoformat(record["fetched_at"])
               - datetime.fromisoformat(published)).total_seconds()
    except (TypeError, ValueError):
        return None
    return lag if lag >= 0 else None
