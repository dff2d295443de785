"""Downloader middleware: the raw answer judged (status, redirects off the outlet) before
Scrapy follows redirects.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from scrapy import Request
from scrapy.exceptions import IgnoreRequest

from crawler.component import OutletComponent
from crawler.core import meta, signals
from crawler.core.judging import (
    MIRROR,
    judge_exception,
    judge_redirect,
    judge_status,
    mirror_failure,
    retry_after_seconds,
)
from crawler.core.redact import redact_url
from crawler.core.steps import Ended
from crawler.mirrors import DownloadStalled, MirrorUnavailable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response


logger = logging.getLogger(__name__)


class MirrorFailoverMiddleware(OutletComponent):
    """Downloader middleware (before ``RedirectMiddleware``): keeps requests on the outlet and
    on a mirror that can serve them, and judges the raw answer: connection errors, timeouts,
    statuses in ``MIRROR_FAILOVER_HTTP_CODES``, 404/410, redirects off the outlet.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.failover_codes = frozenset(
            int(code) for code in crawler.settings.getlist("MIRROR_FAILOVER_HTTP_CODES")
        )
        self.retry_after_max = crawler.settings.getfloat("MIRROR_RETRY_AFTER_MAX")

    def process_request(self, request: Request) -> Request | None:
        outlet = self.outlet_of(request)
        if outlet is None:
            return None
        if not outlet.owns(request.url):
            return self._left_the_outlet(request)
        if request.meta.get(meta.PROBE):
            return None
        # the mirror may have left rotation while the request waited in the queue
        decision = self.failover.reroute(request)
        return None if decision is None else self.answer(request, decision)

    def _left_the_outlet(self, request: Request) -> Request:
        """A request off the outlet never goes out. One that a redirect or a meta refresh made
        (probes included) is the mirror's doing: the document goes to another mirror."""
        redirected_from = request.meta.get("redirect_urls") or []
        logger.warning("Refused %s: not on a mirror of %s", redact_url(request.url),
                       request.meta[meta.OUTLET])
        if not redirected_from:
            raise self.ledger.dropped(request, Ended("off_outlet",
                                                     f"not on the outlet: {request.url}"))
        original = request.replace(url=redirected_from[0])
        verdict = mirror_failure(f"redirect off the outlet to {redact_url(request.url)}",
                                 "blocked")
        return self.answer(request, self.failover.mirror_failed(original, verdict))

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if self.outlet_of(request) is None:
            return response
        verdict = judge_status(response.status, self.failover_codes) or judge_redirect(
            request.url, response.status, response.headers.get(b"Location"),
            self.outlet_of(request), article=request.meta.get(meta.KIND) == "article",
        )
        if verdict is not None:
            if verdict.about == MIRROR and 300 <= response.status < 400:
                self._redirected_off(request, response)
            seconds = retry_after_seconds(response.status, response.headers.get(b"Retry-After"),
                                          time.time(), self.retry_after_max)
            if verdict.about == MIRROR and seconds is not None:
                self.failover.downloaded(request, verdict.outcome, served=False)
                return self.answer(request, self.failover.mirror_held(request, verdict, seconds))
            return self.act_on(request, verdict)
        if 300 <= response.status < 400:
            self.failover.downloaded(request, "ok", served=True)
        return response

    def _redirected_off(self, request: Request, response: Response) -> None:
        """A mirror in rotation redirecting off the outlet may be sending readers to its new
        address: the target's host is a candidate mirror (crawler.mirror_discovery)."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        if mirror and self.health.is_up(outlet, mirror):
            target = urljoin(request.url, response.headers[b"Location"].decode("latin-1"))
            self.crawler.signals.send_catch_log(
                signals.redirect_off_outlet, outlet=outlet.name, mirror=mirror,
                url=request.url, target=target)

    def process_exception(self, request: Request, exception: BaseException) -> Request | None:
        if self.outlet_of(request) is None or isinstance(exception, IgnoreRequest):
            return None  # the request's errback hands it to the ledger
        if isinstance(exception, MirrorUnavailable):  # the download handler held it back
            return self.answer(request, self.failover.held_back(request))
        if isinstance(exception, DownloadStalled):  # timed out while this process stood still
            self.crawler.stats.inc_value("downloads/stalled")
            return self.answer(request, self.failover.held_back(request))
        verdict = judge_exception(exception)
        if verdict is None:
            return None
        return self.act_on(request, verdict)
