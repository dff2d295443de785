"""robots.txt per outlet rather than per host.

Scrapy keeps one robots.txt per host. An outlet's mirrors serve one site, so its rules are
the outlet's, wherever a request goes; and a failing mirror's answer (a 503, a 403 of a
block, a seizure notice, a parked domain's page) says nothing about them: read as robots.txt
it would allow everything. So the rules are fetched from the outlet's mirrors in order of
preference until one answers with a real robots.txt (or 404/410: there is none, everything
is allowed), and kept for ``ROBOTSTXT_TTL`` seconds. While no mirror answers, the rules are
unknown: the outlet's requests wait for a mirror (the waiting room) rather than go out
unchecked, and the rules are asked for again after ``RETRY_UNKNOWN`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.sitemap import sitemap_urls_from_robots

from crawler.context import crawl_context
from crawler.core.judging import judge_exception
from crawler.core.steps import Ended

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.core.outlets import Outlet

logger = logging.getLogger(__name__)

#: when no mirror answers properly, look again after this long (seconds); each look that
#: fails counts against the mirrors, so an outage takes them out of rotation
RETRY_UNKNOWN = 3.0
#: the rules of an outlet none of whose mirrors served its robots.txt
UNKNOWN = object()


class OutletRobotsTxtMiddleware(RobotsTxtMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.health = context.health
        self.failover = context.failover
        self.ledger = context.ledger
        self.ttl = crawler.settings.getfloat("ROBOTSTXT_TTL")
        self.failover_codes = frozenset(
            int(code) for code in crawler.settings.getlist("MIRROR_FAILOVER_HTTP_CODES"))
        # outlet -> (parser or None for "allow all", monotonic time it expires)
        self._rules: dict[str, tuple[Any, float]] = {}
        self._fetching: dict[str, asyncio.Future] = {}
        #: outlet -> canonical URLs of the sitemaps its robots.txt names
        self._sitemaps: dict[str, list[str]] = {}
        context.robots = self

    async def sitemaps_of(self, outlet: Outlet) -> list[str]:
        """The sitemaps the outlet's robots.txt names (``Sitemap:``), on the canonical
        mirror; sitemaps off the outlet are left out."""
        await self.robot_parser(Request(f"{outlet.canonical}/robots.txt",
                                        meta={"outlet": outlet.name}))
        return list(self._sitemaps.get(outlet.name, []))

    async def robot_parser(self, request: Request) -> Any:
        name = request.meta.get("outlet")
        if name is None:
            return await super().robot_parser(request)
        rules = self._rules.get(name)
        if rules is not None and rules[1] > time.monotonic():
            return rules[0]
        pending = self._fetching.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._fetching[name] = asyncio.get_running_loop().create_future()
        try:
            parser = await self._fetch(self.catalog.get(name))
            pending.set_result(parser)
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            del self._fetching[name]
        return parser

    async def _fetch(self, outlet: Outlet) -> Any:
        # a held mirror (Retry-After) is not asked, for robots.txt either
        available = [m for m, ok in self.health.available(outlet).items() if ok]
        held = self.health.held(outlet)
        for mirror in available + [m for m in outlet.mirrors
                                   if m not in available and m not in held]:
            robots = Request(f"{mirror}/robots.txt", priority=self.DOWNLOAD_PRIORITY,
                             meta={"dont_obey_robotstxt": True}, callback=NO_CALLBACK)
            try:
                response = await self.crawler.engine.download_async(robots)
            except Exception as exc:
                logger.debug("robots.txt of %s: %s", mirror, exc)
                verdict = judge_exception(exc)
                if verdict is not None:
                    self.health.record_failure(outlet.name, mirror, f"robots.txt: {verdict.reason}")
                continue
            self._stats.inc_value(f"robotstxt/response_status_count/{response.status}")
            if response.status in self.failover_codes:
                self.health.record_failure(outlet.name, mirror,
                                           f"robots.txt: HTTP {response.status}")
                continue
            if response.status in (404, 410):  # the outlet has none: everything allowed
                return self._keep(outlet, None, self.ttl)
            if 200 <= response.status < 300 and _is_robots_txt(response):
                self._stats.inc_value("robotstxt/response_count")
                parser = build_from_crawler(self._parserimpl, self.crawler, response.body)
                self._sitemaps[outlet.name] = _sitemaps(outlet, response)
                return self._keep(outlet, parser, self.ttl)
        previous = self._rules.get(outlet.name)
        log = logger.debug if previous is not None and previous[0] is UNKNOWN else logger.warning
        log("No mirror of %s served its robots.txt: its requests wait for one", outlet.name)
        return self._keep(outlet, UNKNOWN, RETRY_UNKNOWN)

    def process_request_2(self, rp: Any, request: Request) -> None:
        if rp is UNKNOWN:
            raise self.ledger.dropped(
                request, self.failover.wait(request, "robots.txt unknown: no mirror served it"))
        try:
            super().process_request_2(rp, request)
        except IgnoreRequest:  # the one reason Scrapy's middleware drops a request
            raise self.ledger.dropped(request, Ended("robots", "forbidden by robots.txt")) \
                from None

    def _keep(self, outlet: Outlet, parser: Any, seconds: float) -> Any:
        self._rules[outlet.name] = (parser, time.monotonic() + seconds)
        return parser


def _sitemaps(outlet: Outlet, response: Response) -> list[str]:
    urls = []
    for url in sitemap_urls_from_robots(response.body, base_url=response.url):
        if outlet.owns(url):
            urls.append(outlet.canonical_url(url))
        else:
            logger.info("robots.txt of %s names a sitemap off the outlet: %s", outlet.name, url)
    return list(dict.fromkeys(urls))


def _is_robots_txt(response: Response) -> bool:
    """A robots.txt is plain text; an HTML page in its place is some other site's answer."""
    content_type = response.headers.get(b"Content-Type", b"").lower()
    return b"html" not in content_type and response.body.lstrip()[:1] != b"<"
