"""Downloader middleware: one cookie jar per mirror of an outlet.

Sites commonly gate pages behind a cookie: a first answer redirects to a check page that
sets a cookie and redirects back. Scrapy's ``CookiesMiddleware`` passes such gates; this
keeps what one mirror sets from reaching another (mirrors may share a host name's parent
domain, or, on one machine, an address: cookies ignore ports) or another outlet's mirrors.
``COOKIES_ENABLED = False`` turns cookies off altogether.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.component import OutletComponent

if TYPE_CHECKING:
    from scrapy import Request

#: Scrapy's meta key naming the cookie jar a request uses
COOKIEJAR = "cookiejar"


def cookiejar_of(outlet: str, mirror: str) -> str:
    """The name of the cookie jar of ``outlet``'s ``mirror``."""
    return f"{outlet} {mirror}"


class MirrorCookieJarMiddleware(OutletComponent):
    """Before Scrapy's ``CookiesMiddleware`` (700): names the jar of the mirror the request
    goes to now, so a request moved to another mirror leaves the old mirror's cookies."""

    def process_request(self, request: Request) -> None:
        outlet = self.outlet_of(request)
        if outlet is None:
            return
        mirror = outlet.mirror_asked(request)
        request.meta[COOKIEJAR] = cookiejar_of(outlet.name, mirror or request.url)
