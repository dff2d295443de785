"""Scrapy's redirect middlewares, with the end of a redirect loop named.

Scrapy drops a request that redirected more than ``REDIRECT_MAX_TIMES`` with an
``IgnoreRequest``; here that end is recorded as ``redirect_loop`` where it is decided, so no
one has to read it out of the exception's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware, RedirectMiddleware
from scrapy.exceptions import IgnoreRequest

from crawler.context import crawl_context
from crawler.core.steps import Ended

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


class RedirectLoopNamed:
    """Over a ``BaseRedirectMiddleware``: its one drop, a redirect loop, ends the request."""

    crawler: Crawler

    def _redirect(self, redirected: Request, request: Request, reason: Any) -> Request:
        try:
            return super()._redirect(redirected, request, reason)  # type: ignore[misc]
        except IgnoreRequest:  # raised for too many redirects, and nothing else
            ledger = crawl_context(self.crawler).ledger
            raise ledger.dropped(request, Ended("redirect_loop",
                                                f"max redirections reached: {request.url}")) \
                from None


class OutletRedirectMiddleware(RedirectLoopNamed, RedirectMiddleware):
    """Scrapy's ``RedirectMiddleware`` (status redirects), loops named."""


class OutletMetaRefreshMiddleware(RedirectLoopNamed, MetaRefreshMiddleware):
    """Scrapy's ``MetaRefreshMiddleware``, loops named."""
