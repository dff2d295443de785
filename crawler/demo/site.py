"""The simulated outlet "Demo News": its articles, section listings and their HTML.

A :class:`DemoSite` is pure data and markup: it knows every article's ground truth (title,
author, date, body text) and answers ``page(target, mirror)`` for the healthy site. How a
mirror misbehaves is the mirror server's business (see :mod:`crawler.demo.mirror`). The
articles are made in :mod:`~crawler.demo.articles`, the HTML pages in
:mod:`~crawler.demo.markup`, the feeds and sitemaps in :mod:`~crawler.demo.feeds`; this
module routes a request to them.

Layout, chosen so that a crawl exercises everything an outlet file can say:

- articles live at ``/news/YYYY/MM/DD/<id>/<slug>``; the slug is not checked, the date is;
- sections ``politics``, ``economy``, ``world`` and ``culture`` list articles newest first,
  ``PER_PAGE`` to a page; every section answers ``/section/<name>/page/<N>``;
  :data:`REL_NEXT_SECTIONS` also link the next page with ``<a rel="next">`` to
  ``/section/<name>?page=N`` (served too, same content); the others have no rel=next;
- a page past the last one answers 404, in both styles;
- ``/robots.txt`` disallows ``/news/2020/``; one article on a first listing page is dated
  2020 and must never be fetched; another first-page article is video only (no text);
- feeds (RSS 2.0): ``/section/<name>/feed.rss`` (the section's first page) and ``/feed.rss``
  (the :data:`FEED_SIZE` newest articles); a news sitemap index ``/sitemap_news.xml`` (named
  in robots.txt) of one gzipped sitemap per day, ``/sitemaps/news-YYYY-MM-DD.xml.gz``, with
  ``<lastmod>`` and ``<news:publication_date>``;
- listing pages also carry links a crawler must not follow or must map back onto the outlet:
  the same article on other mirrors (absolute), external hosts under ``.invalid`` (one of
  them with an article-shaped path), ``mailto:``, ``javascript:``, ``#top``, ``/about``.
"""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from crawler.demo.articles import (
    ARCHIVED,
    NEWEST,
    NEWS,
    OUTLET_NAME,
    SECTIONS,
    SITE_NAME,
    VIDEO,
    DemoArticle,
    Truth,
    body_paragraphs,
    make_articles,
)
from crawler.demo.feeds import (
    FEED_SIZE,
    NEWS_SITEMAP,
    SITE_FEED,
    day_sitemap,
    rss_feed,
    sitemap_index,
)
from crawler.demo.markup import (
    CUT_FROM,
    DROP_LINES,
    INFO_PAGES,
    MIRRORS_NOTICE,
    REL_NEXT_SECTIONS,
    article_page,
    home_page,
    info_page,
    listing_page,
    not_found_page,
)

# the outlet's names in one place, those of its articles, markup and feeds among them
__all__ = [
    "ARCHIVED",
    "ARTICLE_URL",
    "BLOCKED_MARKERS",
    "CUT_FROM",
    "DISALLOWED_PREFIX",
    "DROP_LINES",
    "FEED_SIZE",
    "GZIP",
    "MIRRORS_NOTICE",
    "NEWS",
    "NEWS_SITEMAP",
    "OUTLET_NAME",
    "PAGE_PATH",
    "PER_PAGE",
    "REL_NEXT_SECTIONS",
    "ROBOTS_TXT",
    "RSS",
    "SECTIONS",
    "SITE_FEED",
    "SITE_NAME",
    "VIDEO",
    "XML",
    "DemoArticle",
    "DemoSite",
    "Page",
    "Truth",
]

PER_PAGE = 10
ARTICLE_URL = r"^/news/\d{4}/\d{2}/\d{2}/\d+/"
PAGE_PATH = "{path}/page/{page}"
DISALLOWED_PREFIX = "/news/2020/"
ROBOTS_TXT = f"User-agent: *\nDisallow: {DISALLOWED_PREFIX}\nDisallow: /search\n"
RSS = "application/rss+xml; charset=utf-8"
XML = "application/xml; charset=utf-8"
GZIP = "application/gzip"
BLOCKED_MARKERS = ("This domain has been seized",)

_ARTICLE_PATH = re.compile(r"^/news/(\d{4})/(\d{2})/(\d{2})/(\d+)(?:/[^/]*)?$")
_SECTION_PATH = re.compile(r"^/section/([a-z]+)(?:/page/(\d+))?/?$")
_SECTION_FEED = re.compile(r"^/section/([a-z]+)/feed\.rss$")
_DAY_SITEMAP = re.compile(r"^/sitemaps/news-(\d{4}-\d{2}-\d{2})\.xml\.gz$")


class Page(NamedTuple):
    status: int
    content_type: str
    body: bytes


class DemoSite:
    """A deterministic simulated outlet; the same ``seed`` always gives the same site.

    ``mirrors`` (base URLs, first canonical) may be set after construction, once the servers
    know their ports; setting it drops cached pages, which name the mirrors.
    """

    name = OUTLET_NAME

    def __init__(
        self,
        articles: int = 60,
        seed: int = 7,
        mirrors: tuple[str, ...] | list[str] = (),
        per_page: int = PER_PAGE,
        newest: datetime | None = None,
    ) -> None:
        if articles < 8:
            raise ValueError("a demo site needs at least 8 articles")
        self.seed = seed
        #: when the newest article was published (a fixed day unless given)
        self.newest = (newest or NEWEST).astimezone(UTC)
        self.per_page = per_page
        self._cache: dict[tuple, Page] = {}
        self._bodies: dict[int, list[str]] = {}
        self._mirrors: tuple[str, ...] = tuple(mirrors)
        self.articles = make_articles(articles, self.seed, self.newest)
        self._by_id = {article.id: article for article in self.articles}
        self.listings = {
            section: [a for a in self.articles if section in a.sections] for section in SECTIONS
        }

    # -- mirrors -----------------------------------------------------------------------------

    @property
    def mirrors(self) -> tuple[str, ...]:
        return self._mirrors

    @mirrors.setter
    def mirrors(self, mirrors: tuple[str, ...] | list[str]) -> None:
        self._mirrors = tuple(m.rstrip("/") for m in mirrors)
        self._cache.clear()

    @property
    def canonical(self) -> str:
        if not self._mirrors:
            raise RuntimeError("the demo site has no mirrors yet")
        return self._mirrors[0]

    # -- ground truth ------------------------------------------------------------------------

    def article(self, url_or_path: str) -> DemoArticle | None:
        match = _ARTICLE_PATH.match(urlsplit(url_or_path).path)
        if not match:
            return None
        article = self._by_id.get(int(match.group(4)))
        if article is None or f"{article.published:%Y%m%d}" != "".join(match.group(1, 2, 3)):
            return None
        return article

    def paragraphs(self, article: DemoArticle) -> list[str]:
        if article.id not in self._bodies:
            self._bodies[article.id] = body_paragraphs(article, self.seed)
        return self._bodies[article.id]

    def truth(self, url_or_path: str) -> Truth:
        """Ground truth for an article given by URL (any mirror) or path."""
        article = self.article(url_or_path)
        if article is None:
            raise KeyError(url_or_path)
        return Truth(
            title=article.title,
            author=article.author,
            published=article.published_iso,
            text="\n".join(self.paragraphs(article)),
            sections=article.sections,
        )

    def section_pages(self, section: str) -> int:
        return -(-len(self.listings[section]) // self.per_page)

    def listing(self, section: str, page: int) -> list[DemoArticle]:
        start = (page - 1) * self.per_page
        return self.listings[section][start : start + self.per_page]

    def expected_paths(self, max_section_pages: int) -> set[str]:
        """Paths of the articles a correct crawl stores when it reads ``max_section_pages``
        listing pages per section: listed there, not robots-disallowed, not empty."""
        paths = set()
        for section in SECTIONS:
            for page in range(1, min(max_section_pages, self.section_pages(section)) + 1):
                paths.update(a.path for a in self.listing(section, page) if a.kind == NEWS)
        return paths

    def feed_articles(self, section: str | None = None) -> list[DemoArticle]:
        """What a section's feed lists (its first listing page), or the site's feed."""
        if section is not None:
            return self.listing(section, 1)
        return self.articles[:FEED_SIZE]

    def sitemap_days(self) -> dict[str, list[DemoArticle]]:
        """Day (YYYY-MM-DD) -> the articles published that day, newest day first."""
        days: dict[str, list[DemoArticle]] = {}
        for article in self.articles:
            days.setdefault(f"{article.published:%Y-%m-%d}", []).append(article)
        return days

    def expected_articles(self, max_section_pages: int) -> set[str]:
        """Canonical URLs (on the first mirror) of the articles a correct crawl stores."""
        return {self.canonical + path for path in self.expected_paths(max_section_pages)}

    @property
    def disallowed_article(self) -> DemoArticle:
        return next(a for a in self.articles if a.kind == ARCHIVED)

    @property
    def video_article(self) -> DemoArticle:
        return next(a for a in self.articles if a.kind == VIDEO)

    # -- routing -----------------------------------------------------------------------------

    def page(self, target: str, mirror: str | None = None) -> Page:
        """The healthy answer to a GET of ``target`` (path and query) on ``mirror``."""
        parts = urlsplit(target)
        path = parts.path or "/"
        if path == "/robots.txt":
            sitemap = f"Sitemap: {mirror or ''}{NEWS_SITEMAP}\n"
            return Page(200, "text/plain; charset=utf-8", (ROBOTS_TXT + sitemap).encode())
        if path == SITE_FEED:
            return self._xml(("feed", None, mirror), RSS, lambda: self._feed(None, mirror))
        feed = _SECTION_FEED.match(path)
        if feed and feed.group(1) in self.listings:
            section = feed.group(1)
            return self._xml(("feed", section, mirror), RSS, lambda: self._feed(section, mirror))
        if path == NEWS_SITEMAP:
            return self._xml(("sitemaps", mirror), XML, lambda: self._sitemap_index(mirror))
        day = _DAY_SITEMAP.match(path)
        if day and day.group(1) in self.sitemap_days():
            return self._xml(("sitemap", day.group(1), mirror), GZIP,
                             lambda: self._day_sitemap(day.group(1), mirror))
        if path == "/":
            return self._cached(("home", mirror), self._home)
        if path in INFO_PAGES:
            return self._cached(("info", path), lambda: self._info(path))
        match = _SECTION_PATH.match(path)
        if match and match.group(1) in self.listings:
            section = match.group(1)
            number = match.group(2)
            if number is None:
                number = parse_qs(parts.query).get("page", ["1"])[0]
            if not number.isdigit() or not 1 <= int(number) <= self.section_pages(section):
                return self._not_found()
            page = int(number)
            return self._cached(
                ("section", section, page, mirror), lambda: self._listing(section, page, mirror)
            )
        article = self.article(path)
        if article is not None:
            return self._cached(("article", article.id), lambda: self._article(article))
        return self._not_found()

    def _cached(self, key: tuple, render: Callable[[], str]) -> Page:
        page = self._cache.get(key)
        if page is None:
            page = self._cache[key] = Page(
                200, "text/html; charset=utf-8", render().encode("utf-8")
            )
        return page

    def _xml(self, key: tuple, content_type: str, render: Callable[[], bytes]) -> Page:
        page = self._cache.get(key)
        if page is None:
            body = render()
            if content_type == GZIP:
                body = gzip.compress(body, mtime=0)
            page = self._cache[key] = Page(200, content_type, body)
        return page

    # -- what each page shows ----------------------------------------------------------------

    def _feed(self, section: str | None, mirror: str | None) -> bytes:
        return rss_feed(mirror or self.canonical, section, self.feed_articles(section))

    def _sitemap_index(self, mirror: str | None) -> bytes:
        return sitemap_index(mirror or self.canonical, self.sitemap_days())

    def _day_sitemap(self, day: str, mirror: str | None) -> bytes:
        return day_sitemap(mirror or self.canonical, self.sitemap_days()[day])

    def _not_found(self) -> Page:
        body = not_found_page(self._most_read_articles)
        return Page(404, "text/html; charset=utf-8", body.encode("utf-8"))

    def _home(self) -> str:
        first_pages = {section: self.listing(section, 1) for section in SECTIONS}
        return home_page(first_pages, self._most_read_articles)

    def _info(self, path: str) -> str:
        return info_page(path, self._most_read_articles)

    def _listing(self, section: str, page: int, mirror: str | None) -> str:
        others = [m for m in self._mirrors if m != mirror]
        return listing_page(section, page, self.section_pages(section),
                            self.listing(section, page), others, self._most_read_articles)

    def _article(self, article: DemoArticle) -> str:
        return article_page(article, self.paragraphs(article), self._mirrors, self.seed,
                            self._most_read_articles)

    @cached_property
    def _most_read_articles(self) -> list[DemoArticle]:
        # only first-page articles, so a crawl of any depth expects every one of them
        first_pages = [a for s in SECTIONS for a in self.listing(s, 1) if a.kind == NEWS]
        rng = random.Random(f"{OUTLET_NAME}:{self.seed}:most-read")
        return rng.sample(first_pages, min(8, len(first_pages)))
