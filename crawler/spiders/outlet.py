"""The one spider: an outlet's sections and their pagination, its feeds and news sitemaps,
and the articles they lead to."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from scrapy import Request, Spider
from scrapy.http import Response

from crawler.context import crawl_context
from crawler.core import meta, signals
from crawler.core.discovery import (
    FEED,
    LISTING,
    SITEMAP,
    MalformedDocument,
    TooLarge,
    feed_entries,
    sitemap_entries,
    validators_of,
    within_window,
)
from crawler.core.judging import NO_ARTICLES, document_answer
from crawler.core.links import ANCHORS, page_links
from crawler.core.outlets import Outlet
from crawler.core.steps import Ended
from crawler.items import ArticleItem, FinishedRequest
from crawler.revisits import REVISIT_PRIORITY, due_revisits, revisit_headers
from crawler.storage import StoreError

logger = logging.getLogger(__name__)

#: articles before listings, so a crawl stores as it goes instead of listing everything first
ARTICLE_PRIORITY = 10
LISTING_PRIORITY = 0
#: feeds and sitemaps before listings: one small document names the newest articles, with
#: their titles and dates
FEED_PRIORITY = 1
#: the answer of a mirror whose feed or sitemap cannot be read (document evidence)
MALFORMED = "malformed"
#: a listing's links: to articles, and to its next page (``<link rel="next">`` in the head)
_LISTING_LINKS = f"{ANCHORS} | descendant::link[@rel='next'][@href]"


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
            for request in self.seed_requests(outlet, self.section_names):
                yield request
            if outlet.robots_sitemaps and not self.section_names:
                for request in await self.robots_sitemap_requests(outlet):
                    yield request
            if self.settings.getbool("REVISIT"):
                for request in self.revisit_requests(outlet):
                    yield request

    def revisit_requests(self, outlet: Outlet) -> list[Request]:
        """The outlet's stored articles due for a revisit (``crawler crawl --revisit``)."""
        try:
            due = due_revisits(self.context.store, outlet,
                               self.settings.getint("REVISIT_BATCH"))
        except StoreError as exc:
            logger.error("Cannot read the articles due for a revisit: %s", exc)
            self.crawler.stats.set_value("revisits/error", str(exc))
            return []
        self.crawler.stats.inc_value("revisits/queued", len(due))
        return [self.revisit_request(outlet, article) for article in due]

    # -- requests --------------------------------------------------------------------------------

    def seed_requests(self, outlet: Outlet, sections: Iterable[str] = ()) -> list[Request]:
        """The first listing page and the feeds of each section (all when none is named);
        with no section named, the outlet's own feeds and sitemaps too."""
        names = list(sections)
        requests = self.section_requests(outlet, names)
        for name in names or outlet.sections:
            requests += [self.feed_request(outlet, path, name)
                         for path in outlet.sections[name].feeds]
        if not names:
            requests += [self.feed_request(outlet, path, None) for path in outlet.feeds]
            requests += [self.sitemap_request(outlet, outlet.canonical + path)
                         for path in outlet.sitemaps]
        return requests

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
            for name in names if outlet.sections[name].path is not None
        ]

    async def robots_sitemap_requests(self, outlet: Outlet) -> list[Request]:
        robots = self.context.robots
        if robots is None:
            logger.warning("robots_sitemaps of %s: robots.txt is not read (ROBOTSTXT_OBEY)",
                           outlet.name)
            return []
        urls = [url for url in await robots.sitemaps_of(outlet)
                if url not in {outlet.canonical + path for path in outlet.sitemaps}]
        return [self.sitemap_request(outlet, url) for url in urls]

    def _discovery_request(self, outlet: Outlet, url: str, kind: str, callback: Any,
                           priority: int = FEED_PRIORITY, **info: Any) -> Request:
        # fetched again on every crawl (dont_filter), in full only when they changed
        # (ConditionalRequestMiddleware); a 304 goes to the callback, not to HttpError
        return Request(
            url, callback=callback, errback=self.failed, priority=priority, dont_filter=True,
            meta={meta.OUTLET: outlet.name, meta.KIND: kind, "download_slot": outlet.name,
                  "handle_httpstatus_list": [304], **info},
        )

    def listing_request(self, outlet: Outlet, section: str, url: str, page: int) -> Request:
        return self._discovery_request(outlet, url, LISTING, self.parse_listing,
                                       LISTING_PRIORITY, **{meta.SECTION: section,
                                                            meta.PAGE: page})

    def feed_request(self, outlet: Outlet, path: str, section: str | None) -> Request:
        return self._discovery_request(outlet, outlet.canonical + path, FEED, self.parse_feed,
                                       **{meta.SECTION: section})

    def sitemap_request(self, outlet: Outlet, url: str) -> Request:
        return self._discovery_request(outlet, url, SITEMAP, self.parse_sitemap)

    def check_request(self, outlet: Outlet, mirror: str, url: str, section: str) -> Request:
        """A mirror check (:mod:`crawler.extensions.mirror_checks`): the listing at ``url`` asked of
        ``mirror`` alone, to see whether it lists articles there."""
        request = self._discovery_request(
            outlet, outlet.on_mirror(url, mirror), LISTING, self.parse_check, LISTING_PRIORITY,
            **{meta.SECTION: section, meta.PAGE: 1, meta.MIRROR: mirror, meta.PROBE: True,
               meta.ROUTED: True, meta.CHECK: True})
        request.meta.pop("handle_httpstatus_list")  # a 304 would tell nothing
        return request

    def article_request(self, outlet: Outlet, url: str, section: str | None, found_by: str,
                        hints: dict[str, str] | None = None) -> Request:
        # every source's links are counted, also those another source led to first
        self.crawler.stats.inc_value(f"articles/listed_by/{found_by}")
        info = {meta.OUTLET: outlet.name, meta.SECTION: section, meta.KIND: "article",
                meta.FOUND_BY: found_by, "download_slot": outlet.name}
        if hints:
            info[meta.HINTS] = hints
        return Request(url, callback=self.parse_article, errback=self.failed,
                       priority=ARTICLE_PRIORITY, meta=info)

    def revisit_request(self, outlet: Outlet, due: dict[str, Any]) -> Request:
        """A stored article fetched again (:mod:`crawler.revisits`): past the dupefilter and
        the stored-article filter, asked conditionally, after everything new."""
        info = {meta.OUTLET: outlet.name, meta.SECTION: due.get("section"),
                meta.KIND: "article", meta.FOUND_BY: "revisit", meta.REVISIT: True,
                "download_slot": outlet.name, "handle_httpstatus_list": [304]}
        if due.get("revision_hash"):
            info[meta.STORED_VERSION] = due["revision_hash"]
        return Request(outlet.fetch_url(due["canonical_url"]), callback=self.parse_article,
                       errback=self.failed, priority=REVISIT_PRIORITY, dont_filter=True,
                       headers=revisit_headers(due), meta=info)

    def failed(self, failure: Any) -> None:
        """Every request's errback: the download, or a middleware, ended it."""
        self.context.ledger.failed(failure.value, failure.request)

    # -- callbacks -------------------------------------------------------------------------------

    def _unchanged(self, response: Response) -> bool:
        if response.status != 304:
            return False
        self.crawler.stats.inc_value(f"discovery/not_modified/{response.meta[meta.KIND]}")
        return True

    def _handled(self, outlet: Outlet, response: Response, outcome: str) -> FinishedRequest:
        """The document was read: its validators are kept for the next crawl."""
        self.context.validators.keep(response.request, outlet.name, response.url,
                                     validators_of(response.headers))
        return FinishedRequest(response.request, outcome)

    def parse_listing(self, response: Response) -> Iterator[Any]:
        if self._unchanged(response):  # nothing new on it, nor further on
            yield FinishedRequest(response.request, "not_modified")
            return
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

        self.context.failover.listing_answered(response.request, len(articles))
        if not articles:
            # the end of a section, or a mirror serving something else: ask another mirror
            yield from self._no_articles(response.request, body=response.body)
            return

        self.crawler.stats.inc_value("listing/pages")
        if over_cap:
            logger.warning("Listing %s links more than %d articles: %d further links left "
                           "out (LISTING_MAX_LINKS)", response.url, cap, over_cap)
            self.crawler.stats.inc_value("listing/links_capped")
        for url in articles.values():
            yield self.article_request(outlet, url, section, LISTING)
        if page < outlet.max_section_pages:
            following = None
            if next_pages:
                following = self.listing_request(outlet, section, next_pages[0], page + 1)
            elif outlet.page_path:
                following = self.listing_request(
                    outlet, section, outlet.section_page_url(section, page + 1), page + 1
                )
            if following is not None:
                if not self.settings.getbool("DISCOVERY_FULL"):
                    # StoredArticleFilter drops it when this page held nothing new
                    following.meta[meta.IF_NEW] = True
                yield following
        yield self._handled(outlet, response, "listing_handled")

    def parse_check(self, response: Response) -> Iterator[Any]:
        outlet = self.outlets.get(response.meta[meta.OUTLET])
        articles = {path for _, path, _ in _outlet_links(outlet, response)
                    if outlet.article_pattern.search(path)}
        self.context.failover.check_answered(response.request, len(articles))
        yield FinishedRequest(response.request, meta.CHECK)

    def parse_feed(self, response: Response) -> Iterator[Any]:
        if self._unchanged(response):
            yield FinishedRequest(response.request, "not_modified")
            return
        outlet = self.outlets.get(response.meta[meta.OUTLET])
        try:
            entries = feed_entries(response.body)
        except MalformedDocument as exc:
            yield from self._malformed(response, "feed", exc)
            return
        mirror = outlet.mirror_asked(response)
        if mirror and self.context.health.is_up(outlet, mirror):
            self.crawler.signals.send_catch_log(
                signals.feed_links_read, outlet=outlet.name, mirror=mirror, url=response.url,
                links=[e.link for e in entries if e.link])
        articles: dict[str, dict[str, str]] = {}
        for entry in entries:
            url = _article_url(outlet, response.url, entry.link)
            if url is not None and url not in articles:
                articles[url] = {k: v for k, v in (("title", entry.title),
                                                   ("published", entry.published)) if v}
        if not articles:
            yield from self._no_articles(response.request, "feed without article links",
                                         response.body)
            return
        self.crawler.stats.inc_value("discovery/feeds")
        section = response.meta.get(meta.SECTION)
        for url, hints in articles.items():
            yield self.article_request(outlet, url, section, FEED, hints)
        yield self._handled(outlet, response, "feed_handled")

    def parse_sitemap(self, response: Response) -> Iterator[Any]:
        if self._unchanged(response):
            yield FinishedRequest(response.request, "not_modified")
            return
        outlet = self.outlets.get(response.meta[meta.OUTLET])
        try:
            kind, entries = sitemap_entries(response.body,
                                            self.settings.getint("DOWNLOAD_MAXSIZE"))
        except TooLarge:
            logger.warning("Sitemap %s decompresses past DOWNLOAD_MAXSIZE", response.url)
            yield FinishedRequest(response.request, "too_large")
            return
        except MalformedDocument as exc:
            yield from self._malformed(response, "sitemap", exc)
            return
        now = datetime.now(UTC)
        days = outlet.sitemap_window_days
        recent = [e for e in entries if within_window(e.date, now, days)]
        self.crawler.stats.inc_value("discovery/sitemaps")
        if len(recent) < len(entries):
            what = "sitemaps" if kind == "sitemapindex" else "articles"
            self.crawler.stats.inc_value(f"discovery/sitemap_older/{what}",
                                         len(entries) - len(recent))
        if kind == "sitemapindex":
            for entry in recent:
                url = urljoin(response.url, entry.loc)
                if outlet.owns(url):
                    yield self.sitemap_request(outlet, outlet.canonical_url(url))
        else:
            urls = dict.fromkeys(
                u for u in (_article_url(outlet, response.url, e.loc) for e in recent) if u)
            for url in urls:
                yield self.article_request(outlet, url, None, SITEMAP)
        # an index or a news sitemap with nothing recent is an answer: a quiet day
        yield self._handled(outlet, response, "sitemap_handled")

    def _malformed(self, response: Response, what: str, error: Exception) -> Iterator[Any]:
        """A feed or sitemap that cannot be read: that mirror's answer; another is asked."""
        logger.warning("Malformed %s at %s: %s", what, response.url, error)
        self.crawler.stats.inc_value(f"discovery/malformed/{what}")
        verdict = document_answer(MALFORMED, f"malformed {what}: {error}")
        yield from self._answered(response.request, verdict, response.body)

    def _no_articles(self, request: Request, reason: str = "listing without article links",
                     body: bytes = b"") -> Iterator[Any]:
        yield from self._answered(request, document_answer(NO_ARTICLES, reason), body)

    def _answered(self, request: Request, verdict: Any, body: bytes = b"") -> Iterator[Any]:
        decision = self.context.failover.document_answered(request, verdict, body=body)
        if isinstance(decision, Ended):
            yield FinishedRequest(request, decision.outcome)
        elif isinstance(decision, Request):
            yield decision
        # else parked: the waiting room has it

    def parse_article(self, response: Response) -> Iterator[ArticleItem | FinishedRequest]:
        if response.status == 304:  # a revisit: as stored
            yield FinishedRequest(response.request, "not_modified")
            return
        outlet = self.outlets.get(response.meta[meta.OUTLET])
        url = urldefrag(response.url)[0]
        validators = validators_of(response.headers)
        mirror = outlet.mirror_asked(response)
        yield ArticleItem(
            canonical_url=outlet.canonical_url(url),
            url=url,
            mirror=mirror or "",
            outlet=outlet.name,
            section=response.meta.get(meta.SECTION),
            hints=response.meta.get(meta.HINTS) or {},
            body=response.body,
            encoding=getattr(response, "encoding", None) or "utf-8",
            etag=validators.get("ETag"),
            last_modified=validators.get("Last-Modified"),
            onion_location=(response.headers.get(b"Onion-Location") or b"").decode(
                "latin-1") or None,
            in_rotation=bool(mirror) and self.context.health.is_up(outlet, mirror),
            request=response.request,
        )


def _article_url(outlet: Outlet, base: str, link: str) -> str | None:
    """The canonical URL of an article a feed or sitemap names, if it is one of the outlet's
    (any mirror or alias) and its path matches ``article_url``."""
    url = urljoin(base, link.strip()).split("#", 1)[0]
    if not outlet.owns(url) or not outlet.article_pattern.search(urlsplit(url).path):
        return None
    return outlet.canonical_url(url)


def _outlet_links(outlet: Outlet, response: Response) -> Iterator[tuple[str, str, bool]]:
    """(URL to fetch, path, whether it is rel="next") of each distinct link on the page that
    points into the outlet, on any mirror or alias, in either scheme. Links elsewhere,
    mailto:, javascript: and fragments are left out (:func:`~crawler.core.links.page_links`)."""
    links: dict[str, tuple[str, bool]] = {}  # href -> (URL, rel="next" on any of its links)
    for link in page_links(response, response.url, _LISTING_LINKS):
        url, is_next = links.get(link.href, (link.url, False))
        links[link.href] = (url, is_next or "next" in link.rel)
    for url, is_next in links.values():
        if outlet.owns(url):
            yield outlet.fetch_url(url), urlsplit(url).path, is_next
