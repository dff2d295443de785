"""The one spider: an outlet's sections, their pagination, and the articles they list."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from scrapy import Request, Spider
from scrapy.http import Response

from crawler import meta
from crawler.context import crawl_context
from crawler.failover import RequestEnded, RequestWaiting
from crawler.items import ArticleItem, FinishedRequest
from crawler.judging import NO_ARTICLES, document_answer
from crawler.outlets import Outlet

logger = logging.getLogger(__name__)

#: articles before listings, so a crawl stores as it goes instead of listing everything first
ARTICLE_PRIORITY = 10
LISTING_PRIORITY = 0


class OutletSpider(Spider):
    """Crawls the sections of an outlet.

    Run for one outlet (``-a outlet=presstv [-a sections=economy,world]``), or without one
    as a distributed worker whose seeds come from the scheduler. Requests name documents on
    the outlet's canonical mirror; the mirror middlewares choose the host.
    """

    name = "outlet"

    def __init__(self, outlet: str | None = None, sections: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.outlet_name = outlet
        self.section_names = [s for s in (sections or "").split(",") if s]

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> OutletSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        # built now, so that the parts listening to the crawl's signals hear all of them
        spider.context = crawl_context(crawler).connect()
        spider.outlets = spider.context.catalog
        return spider

    async def start(self) -> AsyncIterator[Any]:
        if self.outlet_name:
            outlet = self.outlets.get(self.outlet_name)
            for request in self.section_requests(outlet, self.section_names):
                yield request

    # -- requests --------------------------------------------------------------------------------

    def section_requests(self, outlet: Outlet, sections: Iterable[str] = ()) -> list[Request]:
        names = list(sections) or list(outlet.sections)
        unknown = [n for n in names if n not in outlet.sections]
        if unknown:
            raise ValueError(
                f"outlet {outlet.name!r} has no section {unknown[0]!r} "
                f"(sections: {', '.join(outlet.sections)})"
            )
        return [
            self.listing_request(outlet, name, outlet.section_page_url(name, 1), 1)
            for name in names
        ]

    def listing_request(self, outlet: Outlet, section: str, url: str, page: int) -> Request:
        # listings are fetched again on every crawl: dont_filter
        return Request(
            url, callback=self.parse_listing, errback=self.failed, priority=LISTING_PRIORITY,
            dont_filter=True,
            meta={meta.OUTLET: outlet.name, meta.SECTION: section, meta.KIND: "listing",
                  meta.PAGE: page, "download_slot": outlet.name},
        )

    def failed(self, failure: Any) -> None:
        """Every request's errback: the download, or a middleware, ended it."""
        self.context.ledger.failed(failure.value, failure.request)

    # -- callbacks -------------------------------------------------------------------------------

    def parse_listing(self, response: Response) -> Iterator[Any]:
        info = response.meta
        outlet = self.outlets.get(info[meta.OUTLET])
        section, page = info[meta.SECTION], info[meta.PAGE]
        cap = self.crawler.settings.getint("LISTING_MAX_LINKS")
        articles: dict[str, str] = {}  # identity -> URL to fetch: one request per document
        over_cap = 0
        next_pages: list[str] = []
        for url, path, is_next in _outlet_links(outlet, response):
            if outlet.article_pattern.search(path):
                if len(articles) < cap:
                    articles.setdefault(outlet.canonical_url(url), url)
                else:
                    over_cap += 1
            elif is_next:
                next_pages.append(url)

        if not articles:
            # the end of a section, or a mirror serving something else: ask another mirror
            yield from self._no_articles(response.request)
            return

        self.crawler.stats.inc_value("listing/pages")
        if over_cap:
            logger.warning("Listing %s links more than %d articles: %d further links left "
                           "out (LISTING_MAX_LINKS)", response.url, cap, over_cap)
            self.crawler.stats.inc_value("listing/links_capped")
        for url in articles.values():
            yield Request(
                url, callback=self.parse_article, errback=self.failed, priority=ARTICLE_PRIORITY,
                meta={meta.OUTLET: outlet.name, meta.SECTION: section, meta.KIND: "article",
                      "download_slot": outlet.name},
            )
        if page < outlet.max_section_pages:
            if next_pages:
                yield self.listing_request(outlet, section, next_pages[0], page + 1)
            elif outlet.page_path:
                yield self.listing_request(
                    outlet, section, outlet.section_page_url(section, page + 1), page + 1
                )
        yield FinishedRequest(response.request)

    def _no_articles(self, request: Request) -> Iterator[Any]:
        verdict = document_answer(NO_ARTICLES, "listing without article links")
        try:
            yield self.context.failover.document_answered(request, verdict)
        except RequestEnded as ended:
            yield FinishedRequest(request, ended.outcome)
        except RequestWaiting:
            return

    def parse_article(self, response: Response) -> Iterator[ArticleItem]:
        outlet = self.outlets.get(response.meta[meta.OUTLET])
        url = urldefrag(response.url)[0]
        yield ArticleItem(
            canonical_url=outlet.canonical_url(url),
            url=url,
            mirror=response.meta.get(meta.MIRROR) or outlet.mirror_of(url) or "",
            outlet=outlet.name,
            section=response.meta.get(meta.SECTION),
            body=response.body,
            encoding=getattr(response, "encoding", None) or "utf-8",
            request=response.request,
        )


def _outlet_links(outlet: Outlet, response: Response) -> Iterator[tuple[str, str, bool]]:
    """(URL to fetch, path, whether it is rel="next") of each distinct link on the page that
    points into the outlet, on any mirror or alias, in either scheme. Links elsewhere,
    mailto:, javascript: and fragments are left out. Listings carry a hundred links or more:
    each distinct href is resolved once."""
    hrefs: dict[str, bool] = {}
    for node in response.selector.root.xpath("//a[@href] | //link[@rel='next'][@href]"):
        href = node.get("href").strip()
        if href and href[0] != "#":
            rel = node.get("rel")
            hrefs[href] = hrefs.get(href, False) or bool(rel and "next" in rel.split())
    base = response.url
    for href, is_next in hrefs.items():
        url = urljoin(base, href).split("#", 1)[0]
        if not outlet.owns(url):
            continue
        yield outlet.fetch_url(url), urlsplit(url).path, is_next
