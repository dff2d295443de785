"""Validators of listings, feeds and sitemaps shared by the workers through Redis (one hash
per outlet: path -> JSON), written as each document ends: by then the requests it led to
are queued in Redis."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from crawler.context import crawl_context
from crawler.core import meta
from crawler.distributed.keys import RedisKeys
from crawler.validators import Validators, document_path

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class RedisValidators(Validators):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.server = crawl_context(crawler).redis
        self.keys = RedisKeys.from_settings(crawler.settings)

    def get(self, outlet: str, url: str) -> dict[str, str] | None:
        if not self.ask:
            return None
        try:
            value = self.server.hget(self.keys.validators(outlet), document_path(url))
        except RedisError as exc:  # asking without validators costs bytes, not documents
            logger.debug("Validators of %s unknown: %s", url, exc)
            return None
        return json.loads(value) if value else None

    def keep(self, request: Request, outlet: str, url: str, validators: dict[str, str]) -> None:
        """Kept with the request: the scheduler writes them with its acknowledgement, once the
        requests that followed from the document are in Redis. Written earlier, a worker dying
        meanwhile would leave a document whose next fetch answers 304 while what it listed
        was never queued."""
        if self.enabled and validators:
            request.meta[meta.VALIDATORS] = (
                self.keys.validators(outlet), document_path(url), json.dumps(validators))
