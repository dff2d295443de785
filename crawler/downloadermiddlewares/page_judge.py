"""Downloader middleware: the decoded page judged (block pages, notices, meta refreshes)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import Request

from crawler.component import OutletComponent
from crawler.core import meta
from crawler.core.discovery import FEED, SITEMAP
from crawler.core.judging import (
    judge_page,
    judge_refresh,
    mirror_failure,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response


logger = logging.getLogger(__name__)


class PageJudgeMiddleware(OutletComponent):
    """Downloader middleware (after ``HttpCompressionMiddleware``): judges the decoded page.
    A block page fails the mirror, and so does a page that failed the document checks for
    other documents (:meth:`Failover.serves_one_page`: a seizure notice, a bot check, a
    parked domain), unless the mirror is the last one serving the outlet; a page that is not
    HTML is the mirror's answer about the document, asked again elsewhere."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        self.refresh = (settings.getbool("METAREFRESH_ENABLED"),
                        settings.getlist("METAREFRESH_IGNORE_TAGS"),
                        settings.getfloat("METAREFRESH_MAXDELAY"))

    def process_response(self, request: Request, response: Response) -> Request | Response:
        outlet = self.outlet_of(request)
        if outlet is None or 300 <= response.status < 400:
            return response
        kind = request.meta.get(meta.KIND)
        verdict = judge_page(response, outlet, html=kind not in (FEED, SITEMAP))
        refresh_enabled, ignore_tags, max_delay = self.refresh
        if verdict is None and refresh_enabled:
            verdict = judge_refresh(response, outlet, kind == "article", ignore_tags, max_delay)
        if (verdict is None and 200 <= response.status < 300
                and self.failover.serves_one_page(request, response.body)):
            verdict = mirror_failure("the same page for different documents", "blocked",
                                     strong=True)
        if verdict is not None:
            kept = verdict.strong and self.failover.spares_last_mirror(request, verdict,
                                                                       response.body)
            return self.act_on(request, verdict, kept)
        outcome = "ok" if response.status < 400 else "http_error"
        self.failover.downloaded(request, outcome, served=True)
        return response
