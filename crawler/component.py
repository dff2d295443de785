"""The base of the crawler's Scrapy components that handle an outlet's requests."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import Request

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.judging import (
    MIRROR,
    Verdict,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Outlet

logger = logging.getLogger(__name__)


class OutletComponent:
    """Shared by the middlewares: the outlet a request belongs to, and the crawl's parts."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.health = context.health
        self.failover = context.failover

    @classmethod
    def from_crawler(cls, crawler: Crawler):
        return cls(crawler)

    def outlet_of(self, request: Request) -> Outlet | None:
        name = request.meta.get(meta.OUTLET)
        return self.catalog.get(name) if name else None


def act_on(failover, request: Request, verdict: Verdict, kept: bool = False) -> Request:
    failover.downloaded(request, verdict.outcome, served=verdict.about != MIRROR)
    if verdict.about == MIRROR:
        return failover.mirror_failed(request, verdict, kept)
    return failover.document_answered(request, verdict)
