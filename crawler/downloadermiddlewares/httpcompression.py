"""Scrapy's ``HttpCompressionMiddleware``, with a body too large once decoded named, and a
body cut short judged.

Scrapy drops a response whose body grows past ``DOWNLOAD_MAXSIZE`` while it is decompressed
(a compression bomb, or just a huge page) with an ``IgnoreRequest``; here that end is
recorded as ``too_large`` where it is decided. Scrapy decodes a compressed body cut short
without complaint: here it is the mirror's failure (``judge_body``), and the document is
asked of another mirror.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.exceptions import IgnoreRequest

from crawler.component import OutletComponent
from crawler.core.judging import judge_body
from crawler.core.steps import Ended

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response


class OutletHttpCompressionMiddleware(HttpCompressionMiddleware):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OutletHttpCompressionMiddleware:
        middleware = super().from_crawler(crawler)
        middleware.component = OutletComponent(crawler)
        return middleware

    def process_response(self, request: Request, response: Response,
                         spider: Spider | None = None) -> Request | Response:
        # Scrapy rewrites the header in place as it decodes
        encodings = response.headers.getlist("Content-Encoding")
        try:
            decoded = super().process_response(request, response)
        except IgnoreRequest:  # raised for a body over DOWNLOAD_MAXSIZE, and nothing else
            raise self.component.ledger.dropped(request, Ended(
                "too_large", f"larger than DOWNLOAD_MAXSIZE once decoded: {request.url}")) \
                from None
        if decoded is response or self.component.outlet_of(request) is None:
            return decoded  # nothing was decoded, or not the outlet's
        verdict = judge_body(response.status, response.body, encodings)
        if verdict is not None:
            return self.component.act_on(request, verdict)
        return decoded
