"""Scrapy's redirect middlewares, with a redirect loop judged.

Scrapy drops a request that redirected more than ``REDIRECT_MAX_TIMES`` with an
``IgnoreRequest``; here the loop is the answer of the mirror that went round in circles
about the document (``redirect_loop``), given to the failover where it is decided, so no one
has to read it out of the exception's message: another mirror is asked, and the document
ends ``redirect_loop`` (lost) only when no mirror serves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware, RedirectMiddleware
from scrapy.exceptions import IgnoreRequest

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.judging import REDIRECT_LOOP, document_answer
from crawler.core.steps import Ended

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class RedirectLoopNamed:
    """Over a ``BaseRedirectMiddleware``: its one drop, a redirect loop, is the mirror's
    answer about the document."""

    crawler: Crawler

    def _redirect(self, redirected: Request, request: Request, reason: Any) -> Request:
        try:
            return super()._redirect(redirected, request, reason)  # type: ignore[misc]
        except IgnoreRequest:  # raised for too many redirects, and nothing else
            context = crawl_context(self.crawler)
            if request.meta.get(meta.OUTLET) is None:
                raise context.ledger.dropped(request, Ended(
                    REDIRECT_LOOP, f"max redirections reached: {request.url}")) from None
            # the document is the one first asked for, not the last hop of the loop
            first = (request.meta.get("redirect_urls") or [request.url])[0]
            verdict = document_answer(REDIRECT_LOOP, f"max redirections reached: {first}",
                                      "http_error")
            decision = context.failover.document_answered(request.replace(url=first), verdict)
            if isinstance(decision, Request):
                return decision
            raise context.ledger.dropped(request, decision) from None


class OutletRedirectMiddleware(RedirectLoopNamed, RedirectMiddleware):
    """Scrapy's ``RedirectMiddleware`` (status redirects), loops named."""


class OutletMetaRefreshMiddleware(RedirectLoopNamed, MetaRefreshMiddleware):
    """Scrapy's ``MetaRefreshMiddleware``, loops named."""
