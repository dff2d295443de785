"""The base of the crawler's Scrapy components that handle an outlet's requests."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import Request

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.judging import MIRROR, Verdict

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Outlet
    from crawler.failover import Decision

logger = logging.getLogger(__name__)


class OutletComponent:
    """Shared by the middlewares: the outlet a request belongs to, and the crawl's parts."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.health = context.health
        self.failover = context.failover
        self.ledger = context.ledger

    @classmethod
    def from_crawler(cls, crawler: Crawler):
        return cls(crawler)

    def outlet_of(self, request: Request) -> Outlet | None:
        name = request.meta.get(meta.OUTLET)
        return self.catalog.get(name) if name else None

    def act_on(self, request: Request, verdict: Verdict, kept: bool = False) -> Request:
        """A verdict on ``request``'s download, carried out: the request to send instead, or
        the request dropped (:meth:`answer`)."""
        self.failover.downloaded(request, verdict.outcome, served=verdict.about != MIRROR)
        if verdict.about == MIRROR:
            return self.answer(request, self.failover.mirror_failed(request, verdict, kept))
        return self.answer(request, self.failover.document_answered(request, verdict))

    def answer(self, request: Request, decision: Decision) -> Request:
        """The failover's decision about ``request`` as a downloader middleware answers
        Scrapy: the request to send next is returned; an end (recorded in the ledger) or a
        wait in the waiting room drops ``request``."""
        if isinstance(decision, Request):
            return decision
        raise self.ledger.dropped(request, decision)
