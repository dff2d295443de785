"""Downloader middleware: listings, feeds and sitemaps asked for with their validators."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import Request

from crawler.component import OutletComponent
from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.discovery import DISCOVERY_KINDS, conditional_headers

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


logger = logging.getLogger(__name__)


class ConditionalRequestMiddleware(OutletComponent):
    """Downloader middleware: asks for listings, feeds and sitemaps with the validators of
    their last answer (kept per outlet and path by ``context.validators``), so an unchanged
    one answers 304 with no body. Added at download time, so seeds queued by ``crawler
    schedule`` are asked for the same way."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.validators = crawl_context(crawler).validators

    def process_request(self, request: Request) -> None:
        name = request.meta.get(meta.OUTLET)
        if (name is None or request.meta.get(meta.KIND) not in DISCOVERY_KINDS
                or request.meta.get(meta.CHECK)  # its answer must be the page itself
                or b"If-None-Match" in request.headers
                or b"If-Modified-Since" in request.headers):
            return
        for header, value in conditional_headers(self.validators.get(name, request.url)).items():
            request.headers[header] = value
