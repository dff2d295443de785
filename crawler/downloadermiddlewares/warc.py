"""Downloader middleware: an article page's answer kept as it came, for its WARC record."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

from crawler.context import crawl_context
from crawler.core import meta
from crawler.warc import WarcWriter, capture

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)


class RawResponseMiddleware:
    """Downloader middleware (595): keeps an article page's answer as it came, before
    ``HttpCompressionMiddleware`` decodes it and after redirects were followed."""

    def __init__(self, writer: WarcWriter) -> None:
        self.writer = writer

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RawResponseMiddleware:
        writer = crawl_context(crawler).warc
        if writer is None:
            raise NotConfigured("WARC_DIR is not set")
        return cls(writer)

    def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.get(meta.KIND) == "article" and not 300 <= response.status < 400:
            self.writer.keep(request, capture(request, response, datetime.now(UTC)))
        return response
