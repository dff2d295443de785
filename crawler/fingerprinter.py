"""Request identity that does not depend on the mirror.

A document is (outlet, path). Which mirror serves it is chosen late and may change on
failure, so fingerprints (dedup) are computed on the canonical URL: the same path on the
outlet's first mirror.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from w3lib.url import canonicalize_url

from crawler.context import crawl_context

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Outlet, OutletCatalog


class MirrorAwareFingerprinter:
    """Request fingerprints on the document's identity URL, so a document has one fingerprint
    whichever mirror a request for it names, and whatever tracking parameters it carries.

    Requests of an outlet carry ``meta["outlet"]``; others (robots.txt) fall back to their URL.
    """

    def __init__(
        self, catalog: Callable[[], OutletCatalog | Mapping[str, Outlet]] | None = None
    ) -> None:
        #: the outlets by name, asked for at the first request of an outlet (Scrapy builds
        #: the fingerprinter before the outlet files need to be read)
        self._catalog = catalog
        self._cache: WeakKeyDictionary[Request, bytes] = WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorAwareFingerprinter:
        return cls(lambda: crawl_context(crawler).catalog)

    def canonical_url(self, request: Request) -> str:
        """The document's identity URL (:meth:`Outlet.canonical_url`)."""
        name = request.meta.get("outlet")
        if name is None or self._catalog is None:
            return canonicalize_url(request.url)
        return self._catalog().get(name).canonical_url(request.url)

    def fingerprint(self, request: Request) -> bytes:
        cached = self._cache.get(request)
        if cached is None:
            url = self.canonical_url(request)
            digest = hashlib.sha1(request.method.encode() + b" " + url.encode())
            if request.body:
                digest.update(b"\0" + request.body)
            cached = self._cache[request] = digest.digest()
        return cached
