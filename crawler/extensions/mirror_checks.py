"""Mirror checks: how a mirror taken out on content evidence comes back.

A mirror that served something other than the outlet (a block page, one page for every
document) is not probed by the documents that wait for it: a document that fails on every
mirror would fail there too, and keep a healthy mirror out for good
(:func:`crawler.core.judging.may_probe`). Once its cool-down is over, this extension asks it for a
document whose healthy answer is known: a listing that listed articles
(:meth:`Failover.known_good_listing`). When that lists articles again, the mirror is back
(:func:`crawler.core.judging.judge_check`); otherwise it stays out for another cool-down. One
worker in all wins each check (:meth:`MirrorHealth.claim_probe`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import signals as scrapy_signals

from crawler.context import crawl_context
from crawler.core import signals
from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: seconds between looks at the mirrors out of rotation
TICK = 1.0


class MirrorChecks:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.health = context.health
        self.failover = context.failover
        #: outlets with a mirror out of rotation, as this process heard
        self._watched: set[str] = set()
        self._ticker = Ticker(self.tick, TICK, "Mirror checks")
        crawler.signals.connect(self.watch, signal=signals.mirror_state_changed)
        crawler.signals.connect(self.open, signal=scrapy_signals.spider_opened)
        crawler.signals.connect(self.close, signal=scrapy_signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorChecks:
        return cls(crawler)

    def watch(self, outlet: str, mirror: str, up: bool) -> None:
        if not up:
            self._watched.add(outlet)

    def open(self) -> None:
        self._ticker.start()

    def close(self) -> None:
        self._ticker.stop()

    def tick(self) -> None:
        for request in self.due_checks():
            self.crawler.stats.inc_value("mirror/checks/sent")
            self.crawler.engine.crawl(request)

    def due_checks(self) -> list[Request]:
        """The checks due now, each one's probe won."""
        due = []
        for name in list(self._watched):
            outlet = self.catalog.get(name)
            if all(self.health.states(outlet).values()):
                self._watched.discard(name)
                continue
            for mirror in self.health.due_checks(outlet):
                listing = self.failover.known_good_listing(outlet)
                if listing is None or not self.health.claim_probe(name, mirror):
                    continue
                url, section = listing
                logger.info("Checking whether mirror %s of %s serves it again: %s", mirror,
                            name, url)
                due.append(self.crawler.spider.check_request(outlet, mirror, url, section))
        return due
