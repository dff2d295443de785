"""Running crawls in this process: the shared part of `crawler crawl`, `demo` and `worker`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawler.progress import CrawlProgress, Snapshot
from crawler.spiders.outlet import OutletSpider


def crawler_settings(overrides: list[str], **values: Any) -> Settings:
    """The project's settings, then ``values`` (None means "keep the default"), then the
    ``NAME=VALUE`` overrides given with ``-s``."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    for name, value in values.items():
        if value is not None:
            settings.set(name, str(value) if isinstance(value, Path) else value, "cmdline")
    for override in overrides:
        name, sep, value = override.partition("=")
        if not sep or not name:
            raise ValueError(f"-s takes NAME=VALUE, got {override!r}")
        settings.set(name.strip(), value, priority="cmdline")
    return settings


def run_crawl(settings: Settings, outlet: str, sections: list[str], console: Console) -> Snapshot:
    """Crawl one outlet to the end in this process; returns what happened."""
    if console.is_terminal and settings.getpriority("LOG_LEVEL") < 40:
        # the live table is the progress report; keep Scrapy's log to what needs attention
        settings.set("LOG_LEVEL", "WARNING", priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(OutletSpider)
    progress = CrawlProgress(crawler, [outlet], console)
    progress.attach()
    process.crawl(crawler, outlet=outlet, sections=",".join(sections))
    process.start()
    summary = progress.snapshot()
    summary.finish_reason = crawler.stats.get_value("finish_reason", "unknown")
    return summary


def run_worker(settings: Settings) -> str:
    """Run a distributed worker until it is stopped; returns Scrapy's finish reason."""
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(OutletSpider)
    process.crawl(crawler)
    process.start()
    return crawler.stats.get_value("finish_reason", "unknown")
