"""Scrapy's ``HttpCompressionMiddleware``, with a body too large once decoded named.

Scrapy drops a response whose body grows past ``DOWNLOAD_MAXSIZE`` while it is decompressed
(a compression bomb, or just a huge page) with an ``IgnoreRequest``; here that end is
recorded as ``too_large`` where it is decided.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.exceptions import IgnoreRequest

from crawler.context import crawl_context
from crawler.core.steps import Ended

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response


class OutletHttpCompressionMiddleware(HttpCompressionMiddleware):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OutletHttpCompressionMiddleware:
        middleware = super().from_crawler(crawler)
        middleware.ledger = crawl_context(crawler).ledger
        return middleware

    def process_response(self, request: Request, response: Response,
                         spider: Spider | None = None) -> Request | Response:
        try:
            return super().process_response(request, response)
        except IgnoreRequest:  # raised for a body over DOWNLOAD_MAXSIZE, and nothing else
            raise self.ledger.dropped(request, Ended(
                "too_large", f"larger than DOWNLOAD_MAXSIZE once decoded: {request.url}")) \
                from None
