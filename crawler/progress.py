"""Progress of a running crawl: a live table on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from scrapy import signals as scrapy_signals

from crawler.context import crawl_context
from crawler.ledger import LOST
from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


@dataclass
class Snapshot:
    pages: int = 0
    articles_stored: int = 0
    already_stored: int = 0
    extraction_failures: int = 0
    #: documents not stored for good: given up, too large, redirect loops, extraction failures
    lost: int = 0
    #: the first of them, by URL
    lost_urls: list[str] = field(default_factory=list)
    waiting: int = 0
    #: extracted articles the store did not take (it failed)
    not_stored: int = 0
    failovers: int = 0
    #: revisits: queued, that found a new version, that found the article gone (first time)
    revisits: int = 0
    revised: int = 0
    removed: int = 0
    #: requests ended, by outcome (stored, listing_handled, no_text, robots, ...)
    ended: dict[str, int] = field(default_factory=dict)
    #: articles stored, by how they were found (listing, feed, sitemap)
    found_by: dict[str, int] = field(default_factory=dict)
    #: article links read (before deduplication), by source
    listed_by: dict[str, int] = field(default_factory=dict)
    mirrors: dict[str, dict[str, bool]] = field(default_factory=dict)
    #: errors the crawl recorded in its stats (e.g. "revisits/error"), by key
    errors: dict[str, str] = field(default_factory=dict)
    #: Scrapy's finish reason, once the crawl is over
    finish_reason: str | None = None

    @classmethod
    def of(cls, crawler: Crawler, outlets: list[str]) -> Snapshot:
        stats = crawler.stats.get_stats()
        context = crawl_context(crawler)
        health, catalog = context.health, context.catalog
        ended = {k.removeprefix("requests/ended/"): v for k, v in stats.items()
                 if k.startswith("requests/ended/")}
        return cls(
            pages=stats.get("listing/pages", 0),
            articles_stored=stats.get("articles/stored", 0),
            already_stored=stats.get("articles/already_stored", 0),
            extraction_failures=sum(
                v for k, v in stats.items() if k.startswith("extraction/failed/")
            ),
            lost=sum(n for outcome, n in ended.items() if outcome in LOST),
            lost_urls=list(context.ledger.lost),
            waiting=sum(context.waiting.count(name) for name in outlets),
            not_stored=stats.get("articles/not_stored", 0),
            failovers=stats.get("mirror/failovers", 0),
            revisits=stats.get("revisits/queued", 0),
            revised=stats.get("articles/revised", 0),
            removed=stats.get("articles/removed", 0),
            ended=dict(sorted(ended.items())),
            found_by={k.removeprefix("articles/found_by/"): v for k, v in sorted(stats.items())
                      if k.startswith("articles/found_by/")},
            listed_by={k.removeprefix("articles/listed_by/"): v
                       for k, v in sorted(stats.items()) if k.startswith("articles/listed_by/")},
            mirrors={name: health.states(catalog.get(name)) for name in outlets},
            errors={k: v for k, v in stats.items() if k.endswith("/error")},
        )

    def problem(self) -> str | None:
        """Why the crawl did not do its job, in one line; None when it did."""
        if "store/error" in self.errors:  # the cause first: what to repair
            return (f"crawl stopped storing: {self.errors['store/error']} ({self.lost} "
                    "documents not stored)")
        if self.not_stored:
            return f"the store failed: {self.not_stored} extracted articles were not stored"
        if self.lost:
            named = ", ".join(self.lost_urls[:5])
            more = f" and {self.lost - 5} more" if self.lost > 5 else ""
            return f"{self.lost} documents not stored: {named}{more}"
        if "revisits/error" in self.errors:
            return f"revisits not queued: {self.errors['revisits/error']}"
        if not self.articles_stored and not self.already_stored:
            refused = self.ended.get("robots", 0)
            if refused:
                return f"nothing stored: robots.txt refused {refused} documents"
            if self.ended.get("no_articles"):
                return "nothing stored: the sections list no articles on any mirror"
        return None

    def line(self) -> str:
        mirrors = "; ".join(
            f"{outlet}: " + ", ".join(f"{m} {'up' if up else 'DOWN'}" for m, up in states.items())
            for outlet, states in self.mirrors.items()
        )
        return (
            f"pages {self.pages}, stored {self.articles_stored}, "
            f"extraction failures {self.extraction_failures}, not stored {self.lost}, "
            f"waiting for a mirror {self.waiting}, failovers {self.failovers} | {mirrors}"
        )

    def table(self, title: str = "Crawl") -> Table:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        table.add_row("listing pages", str(self.pages))
        table.add_row("articles stored", str(self.articles_stored))
        for source, count in self.found_by.items():
            table.add_row(f"  found by {source}", str(count))
        table.add_row("already stored, skipped", str(self.already_stored))
        table.add_row("not modified (304)", str(self.ended.get("not_modified", 0)))
        table.add_row("extraction failures", str(self.extraction_failures))
        table.add_row("documents not stored (lost)", str(self.lost))
        table.add_row("waiting for a mirror", str(self.waiting))
        table.add_row("mirror failovers", str(self.failovers))
        if self.revisits:
            table.add_row("revisits", str(self.revisits))
            table.add_row("  new revisions stored", str(self.revised))
            table.add_row("  removed from every mirror", str(self.removed))
        for outcome, count in self.ended.items():
            table.add_row(f"ended: {outcome}", str(count))
        for outlet, states in self.mirrors.items():
            for mirror, up in states.items():
                state = "[green]up[/green]" if up else "[red]out of rotation[/red]"
                table.add_row(escape(f"{outlet} {mirror}"), state)
        return table


class CrawlProgress:
    """Follows one crawler; call :meth:`attach` before the crawl starts."""

    def __init__(self, crawler: Crawler, outlets: list[str], console: Console,
                 interval: float = 1.0) -> None:
        self.crawler = crawler
        self.outlets = outlets
        self.console = console
        self.live_display = console.is_terminal
        # a terminal redraws often; a log gets a line every so often
        self.interval = interval if self.live_display else max(interval, 10.0)
        self._ticker = Ticker(self.refresh, self.interval, "Progress refresh")
        self._live: Live | None = None

    def attach(self) -> None:
        self.crawler.signals.connect(self.start, signal=scrapy_signals.engine_started)
        self.crawler.signals.connect(self.stop, signal=scrapy_signals.spider_closed)

    def snapshot(self) -> Snapshot:
        return Snapshot.of(self.crawler, self.outlets)

    def start(self) -> None:
        if self.live_display:
            self._live = Live(self.snapshot().table(), console=self.console, transient=True)
            self._live.start()
        self._ticker.start()

    def refresh(self) -> None:
        snapshot = self.snapshot()
        if self._live is not None:
            self._live.update(snapshot.table())
        else:
            logger.info("Progress: %s", snapshot.line())

    def stop(self) -> None:
        self._ticker.stop()
        if self._live is not None:
            self._live.stop()
            self._live = None
