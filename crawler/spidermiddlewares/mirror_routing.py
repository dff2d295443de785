"""Spider middleware: each new request of an outlet goes to the mirror best for it now."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from scrapy import Request

from crawler.component import OutletComponent
from crawler.core import meta

if TYPE_CHECKING:
    from scrapy.http import Response


logger = logging.getLogger(__name__)


class MirrorRoutingMiddleware(OutletComponent):
    """Spider middleware: sends each new request of an outlet to the mirror best for it now.

    Spiders ask for documents on the canonical mirror; this picks the host, so the scheduler
    holds requests that go straight to a working mirror. With every mirror out, the URL is
    left as it is: the downloader side parks the request until a mirror is back.
    """

    def route(self, request: Any) -> Any:
        if not isinstance(request, Request) or request.meta.get(meta.ROUTED):
            return request
        outlet = self.outlet_of(request)
        if outlet is None:
            return request
        request.meta[meta.ROUTED] = True
        mirror = self.health.choose(outlet)
        if mirror is None:
            return request
        request.meta[meta.MIRROR] = mirror
        if not self.health.is_up(outlet, mirror):
            request.meta[meta.PROBE] = True
        if outlet.mirror_of(request.url) == mirror:
            return request
        return request.replace(url=outlet.on_mirror(request.url, mirror))

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in start:
            yield self.route(request)

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        async for obj in result:
            yield self.route(obj)
