"""The simulated outlet "Demo News": its articles, section listings and their HTML.

A :class:`DemoSite` is pure data and markup: it knows every article's ground truth (title,
author, date, body text) and answers ``page(target, mirror)`` for the healthy site. How a
mirror misbehaves is the server's business (see :mod:`crawler.demo.server`). The articles
are made in :mod:`~crawler.demo.articles`, the feeds and sitemaps in
:mod:`~crawler.demo.feeds`.

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
import html
import json
import random
import re
from datetime import UTC, datetime
from functools import cached_property
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from crawler.demo import text
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

# the outlet's names in one place, those of its articles and feeds among them
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

#: sections whose listing pages also link onward with <a rel="next" href="?page=N">
REL_NEXT_SECTIONS = ("politics", "world")
PER_PAGE = 10
ARTICLE_URL = r"^/news/\d{4}/\d{2}/\d{2}/\d+/"
PAGE_PATH = "{path}/page/{page}"
DISALLOWED_PREFIX = "/news/2020/"
ROBOTS_TXT = f"User-agent: *\nDisallow: {DISALLOWED_PREFIX}\nDisallow: /search\n"
RSS = "application/rss+xml; charset=utf-8"
XML = "application/xml; charset=utf-8"
GZIP = "application/gzip"
BLOCKED_MARKERS = ("This domain has been seized",)
MIRRORS_NOTICE = f"{SITE_NAME}'s website can also be accessed at the following alternate addresses"
CUT_FROM = ("SHARE THIS ARTICLE", MIRRORS_NOTICE)
DROP_LINES = (f"{SITE_NAME} Roku",)

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
            return self._cached(("home", mirror), lambda: self._home())
        if path in _INFO_PAGES:
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

    def _cached(self, key: tuple, render) -> Page:
        page = self._cache.get(key)
        if page is None:
            page = self._cache[key] = Page(
                200, "text/html; charset=utf-8", render().encode("utf-8")
            )
        return page

    def _xml(self, key: tuple, content_type: str, render) -> Page:
        page = self._cache.get(key)
        if page is None:
            body = render()
            if content_type == GZIP:
                body = gzip.compress(body, mtime=0)
            page = self._cache[key] = Page(200, content_type, body)
        return page

    def _feed(self, section: str | None, mirror: str | None) -> bytes:
        return rss_feed(mirror or self.canonical, section, self.feed_articles(section))

    def _sitemap_index(self, mirror: str | None) -> bytes:
        return sitemap_index(mirror or self.canonical, self.sitemap_days())

    def _day_sitemap(self, day: str, mirror: str | None) -> bytes:
        return day_sitemap(mirror or self.canonical, self.sitemap_days()[day])

    def _not_found(self) -> Page:
        body = self._document(
            "Page not found",
            "<main class=\"error\"><h1>Page not found</h1><p>The page you were looking for "
            "has moved or no longer exists.</p><p><a href=\"/\">Return to the homepage</a>"
            "</p></main>",
        )
        return Page(404, "text/html; charset=utf-8", body.encode("utf-8"))

    # -- markup ------------------------------------------------------------------------------

    def _document(self, title: str, main: str, head: str = "", aside: bool = True) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_e(title)} | {SITE_NAME}</title>\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta property="og:site_name" content="{SITE_NAME}">\n'
            f'<link rel="alternate" type="application/rss+xml" title="{SITE_NAME}" '
            f'href="{SITE_FEED}">\n'
            f"{head}{_STYLE}\n</head>\n"
            '<body id="top">\n'
            f"{_HEADER}\n"
            '<div class="layout">\n'
            f"{main}\n"
            f"{self._most_read() if aside else ''}\n"
            "</div>\n"
            f"{_FOOTER}\n"
            "</body>\n</html>\n"
        )

    @cached_property
    def _most_read_articles(self) -> list[DemoArticle]:
        # only first-page articles, so a crawl of any depth expects every one of them
        first_pages = [a for s in SECTIONS for a in self.listing(s, 1) if a.kind == NEWS]
        rng = random.Random(f"{OUTLET_NAME}:{self.seed}:most-read")
        return rng.sample(first_pages, min(8, len(first_pages)))

    def _most_read(self) -> str:
        items = "".join(
            f'<li><span class="rank">{rank}</span><a href="{a.path}">{_e(a.title)}</a></li>'
            for rank, a in enumerate(self._most_read_articles, 1)
        )
        return (
            '<aside class="sidebar" role="complementary">'
            f'<section class="most-read"><h2>Most read</h2><ol>{items}</ol></section>'
            '<section class="newsletter"><h2>Newsletters</h2><form action="/newsletters" '
            'method="post"><label for="nl-email">Email address</label><input id="nl-email" '
            'type="email" name="email"><button type="submit">Sign up</button></form></section>'
            '<section class="ad" data-slot="sidebar-mpu"><div class="ad-label">Advertisement'
            "</div></section></aside>"
        )

    def _home(self) -> str:
        blocks = []
        for section in SECTIONS:
            items = "".join(
                f'<li><a href="{a.path}">{_e(a.title)}</a></li>'
                for a in self.listing(section, 1)[:5]
            )
            blocks.append(
                f'<section class="home-block"><h2><a href="/section/{section}">'
                f"{section.title()}</a></h2><ul>{items}</ul></section>"
            )
        return self._document(
            "Latest news, analysis and opinion", f'<main class="home">{"".join(blocks)}</main>'
        )

    def _info(self, path: str) -> str:
        title, paragraph = _INFO_PAGES[path]
        return self._document(
            title, f'<main class="info"><h1>{_e(title)}</h1><p>{_e(paragraph)}</p></main>'
        )

    def _listing(self, section: str, page: int, mirror: str | None) -> str:
        others = [m for m in self._mirrors if m != mirror]
        base = f"/section/{section}"
        pages = self.section_pages(section)
        rel_next = section in REL_NEXT_SECTIONS
        teasers = []
        for index, article in enumerate(self.listing(section, page)):
            # some thumbnails point at the same article on another mirror
            thumb = article.path
            if others and index % 3 == 1:
                thumb = others[index % len(others)] + article.path
            teasers.append(
                '<li class="teaser">'
                f'<a class="thumb" href="{thumb}"><img src="/media/{article.id}/thumb.jpg" '
                f'alt="" width="240" height="135" loading="lazy"></a>'
                f'<h3><a href="{article.path}">{_e(article.title)}</a></h3>'
                f'<p class="summary">{_e(article.summary)}</p>'
                f'<p class="meta"><time datetime="{article.published_iso}">'
                f"{_display_date(article.published)}</time> "
                f'<a class="comments" href="{article.path}#comments">Comments</a></p></li>'
            )
        # a sponsored teaser: an article-shaped path on a host that is not the outlet
        teasers.insert(
            min(4, len(teasers)),
            '<li class="teaser sponsored"><span class="label">Sponsored</span><h3>'
            f'<a href="http://partner.example.invalid/news/2024/01/02/{page}77/offer" '
            'rel="sponsored">Five habits of highly effective savers</a></h3></li>',
        )
        if rel_next:
            numbers = [(n, f"{base}?page={n}") for n in range(1, pages + 1)]
        else:
            numbers = [(n, base if n == 1 else f"{base}/page/{n}") for n in range(1, pages + 1)]
        pager = "".join(
            f'<span class="current">{n}</span>' if n == page else f'<a href="{href}">{n}</a>'
            for n, href in numbers
        )
        if page < pages:
            if rel_next:
                pager += f'<a rel="next" href="{base}?page={page + 1}">Next page</a>'
            else:
                pager += f'<a class="next" href="{base}/page/{page + 1}">Older stories</a>'
        title = section.title() + (f" - page {page}" if page > 1 else "")
        main = (
            f'<main class="listing" id="main"><nav class="breadcrumbs"><a href="/">Home</a> '
            f"&rsaquo; <span>{section.title()}</span></nav>"
            f'<h1 class="section-title">{section.title()}</h1>'
            f'<ul class="teasers">{"".join(teasers)}</ul>'
            f'<nav class="pager" aria-label="pages">{pager}</nav>'
            '<p class="tools"><a href="#top">Back to top</a> '
            '<a href="javascript:window.print()">Print this page</a> '
            f'<a href="mailto:{section}@demonews.invalid">Send us a tip</a> '
            '<a href="/about">About us</a></p></main>'
        )
        description = f"The latest {section} news and analysis from {SITE_NAME}."
        head = f'<meta name="description" content="{_e(description)}">\n'
        return self._document(title, main, head=head)

    def _article(self, article: DemoArticle) -> str:
        rng = random.Random(f"{OUTLET_NAME}:{self.seed}:{article.id}:chrome")
        paragraphs = [f"<p>{_e(p)}</p>" for p in self.paragraphs(article)]
        if len(paragraphs) > 3:
            # the outlet's app promotion, dropped line by line by the outlet file
            paragraphs.insert(
                2, f"<p>Watch {SITE_NAME} Roku on your television, wherever you are.</p>"
            )
        if article.kind == VIDEO:
            body = (
                f'<div class="video-player" data-video-id="v{article.id}"><video controls '
                f'preload="none" poster="/media/{article.id}/poster.jpg">'
                f'<source src="/media/{article.id}/clip.mp4" type="video/mp4"></video></div>'
            )
        else:
            body = "\n".join(paragraphs)
        section = article.sections[0]
        canonical = (self._mirrors[0] if self._mirrors else "") + article.path
        mirrors = "".join(f'<li><a href="{m}">{m}</a></li>' for m in self._mirrors)
        byline = (
            f'<div class="byline">By <a rel="author" href="/author/{text.slugify(article.author)}">'
            f'{_e(article.author)}</a> <time datetime="{article.published_iso}">'
            f"{_display_date(article.published)}</time></div>"
        )
        if article.kind == VIDEO:
            # clip pages carry no visible byline: with one, trafilatura's fallback would
            # return the headline and byline as if they were the article
            byline = ""
        head = (
            f'<meta name="description" content="{_e(article.summary)}">\n'
            f'<meta name="author" content="{_e(article.author)}">\n'
            f'<link rel="canonical" href="{canonical}">\n'
            f'<meta property="og:type" content="article">\n'
            f'<meta property="og:title" content="{_e(article.title)}">\n'
            f'<meta property="og:description" content="{_e(article.summary)}">\n'
            f'<meta property="og:url" content="{canonical}">\n'
            f'<meta property="og:image" content="/media/{article.id}/lead.jpg">\n'
            f'<meta property="article:published_time" content="{article.published_iso}">\n'
            f'<meta property="article:section" content="{section.title()}">\n'
            f"{_ad_config(rng, article)}\n"
        )
        main = (
            '<main class="article-page" id="main">'
            f'<nav class="breadcrumbs"><a href="/">Home</a> &rsaquo; '
            f'<a href="/section/{section}">{section.title()}</a></nav>'
            f'<header class="article-header"><h1 class="headline">{_e(article.title)}</h1>'
            f"{byline}</header>"
            f'<article class="article" data-id="{article.id}">'
            f'<figure class="lead-image"><img src="/media/{article.id}/lead.jpg" alt="" '
            'width="960" height="540"></figure>'
            f'<div class="body">\n{body}\n</div>'
            '<div class="article-tools"><p>SHARE THIS ARTICLE</p><ul>'
            f'<li><a href="https://social.example.invalid/share?u={article.id}">Social</a></li>'
            f'<li><a href="mailto:?subject={article.id}">Email</a></li>'
            '<li><a href="javascript:void(0)" class="copy-link">Copy link</a></li></ul></div>'
            f'<div class="mirror-notice"><p>{MIRRORS_NOTICE}:</p><ul>{mirrors}</ul></div>'
            "</article>"
            f"{_related(rng, self._most_read_articles, article)}"
            "</main>"
        )
        return self._document(article.title, main, head=head)


# -- shared chrome ---------------------------------------------------------------------------


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _display_date(when: datetime) -> str:
    return f"{when.day} {when:%B %Y}, {when:%H:%M} GMT"


def _related(rng: random.Random, candidates: list[DemoArticle], article: DemoArticle) -> str:
    picks = [a for a in candidates if a.id != article.id][: rng.randrange(3, 6)]
    items = "".join(f'<li><a href="{a.path}">{_e(a.title)}</a></li>' for a in picks)
    return f'<section class="related"><h2>Related stories</h2><ul>{items}</ul></section>'


def _ad_config(rng: random.Random, article: DemoArticle) -> str:
    """The kind of inline configuration script real pages carry: bulky, varied, not text."""
    slots = [
        {
            "id": f"slot-{n}",
            "sizes": [[300, 250], [728, 90]] if n % 2 else [[320, 50]],
            "targeting": {
                "section": article.sections[0],
                "article": str(article.id),
                "pos": n,
                "kw": [f"k{rng.randrange(10**6):06d}" for _ in range(6)],
            },
            "lazy": n > 2,
        }
        for n in range(rng.randrange(90, 280))
    ]
    config = {"site": OUTLET_NAME, "consent": "tcf-v2", "slots": slots}
    return f"<script>window.__ADS__ = {json.dumps(config, separators=(',', ':'))};</script>"


_TOPICS = {
    "politics": ("Elections", "Parliament", "Government", "Courts", "Opinion polls", "Regions"),
    "economy": ("Markets", "Energy", "Trade", "Jobs", "Housing", "Technology", "Banking"),
    "world": ("Africa", "Americas", "Asia", "Europe", "Middle East", "Oceania"),
    "culture": ("Film", "Books", "Music", "Art", "Theatre", "Heritage", "Food"),
}


def _build_header() -> str:
    menus = []
    for section, topics in _TOPICS.items():
        links = "".join(
            f'<li><a href="/topic/{text.slugify(t)}">{t}</a></li>' for t in topics
        )
        menus.append(
            f'<li class="menu-item has-children"><a href="/section/{section}">'
            f'{section.title()}</a><ul class="submenu">{links}</ul></li>'
        )
    extra = "".join(
        f'<li class="menu-item"><a href="{href}">{label}</a></li>'
        for href, label in (
            ("/video", "Video"), ("/podcasts", "Podcasts"), ("/live", "Live TV"),
            ("/opinion", "Opinion"), ("/newsletters", "Newsletters"), ("/about", "About"),
        )
    )
    return (
        '<div class="cookie-banner" role="dialog"><p>We use cookies to improve your '
        'experience.</p><button type="button">Accept</button></div>'
        '<header class="site-header"><div class="topbar"><a class="skip" href="#main">Skip to '
        'content</a><a class="live" href="/live">Watch live</a></div>'
        f'<a class="logo" href="/"><img src="/static/logo.svg" alt="{SITE_NAME}"></a>'
        '<form class="search" action="/search" role="search"><input type="search" name="q" '
        'placeholder="Search"><button type="submit">Search</button></form>'
        f'<nav class="main-nav" aria-label="main"><ul class="menu">{"".join(menus)}{extra}'
        "</ul></nav></header>"
    )


def _build_footer() -> str:
    columns = []
    for section, topics in _TOPICS.items():
        links = "".join(
            f'<li><a href="/topic/{text.slugify(t)}">{t}</a></li>' for t in topics
        )
        columns.append(f"<div class=\"col\"><h4>{section.title()}</h4><ul>{links}</ul></div>")
    return (
        '<footer class="site-footer">'
        f'<div class="columns">{"".join(columns)}</div>'
        '<ul class="social"><li><a href="https://social.example.invalid/demonews">Social</a>'
        '</li><li><a href="https://video.example.invalid/c/demonews">Video channel</a></li>'
        '<li><a href="http://example.invalid/">Partner network</a></li></ul>'
        '<ul class="legal"><li><a href="/about">About us</a></li><li><a href="/contact">'
        'Contact</a></li><li><a href="/privacy">Privacy</a></li><li><a href="/terms">Terms'
        '</a></li><li><a href="mailto:newsdesk@demonews.invalid">Newsdesk</a></li>'
        '<li><a href="javascript:void(0)" class="consent">Cookie settings</a></li></ul>'
        f"<p class=\"copyright\">&copy; 2024 {SITE_NAME}. All rights reserved.</p>"
        '<p><a href="#top">Back to top</a></p></footer>'
    )


def _build_style() -> str:
    rules = []
    for n, (prop, values) in enumerate(
        [("margin", "0 4px 8px 12px 16px 24px"), ("padding", "0 2px 6px 10px 14px 20px"),
         ("font-size", "12px 14px 16px 18px 22px 28px"), ("color", "#111 #333 #555 #777 #b00 #046")]
    ):
        for m, value in enumerate(values.split()):
            for variant in ("", "-sm", "-md", "-lg"):
                rules.append(f".u{n}{m}{variant}{{{prop}:{value}}}")
    media = "@media (max-width:720px){.main-nav .submenu{display:none}.layout{display:block}}"
    return (
        "<style>body{font-family:Georgia,serif;margin:0}.layout{display:flex;gap:24px}"
        ".sidebar{width:300px}.teaser{border-bottom:1px solid #ddd}"
        f"{''.join(rules)}{media}</style>"
    )


_HEADER = _build_header()
_FOOTER = _build_footer()
_STYLE = _build_style()
_INFO_PAGES = {
    "/about": (
        "About us",
        f"{SITE_NAME} is an independent newsroom covering politics, the economy, world affairs"
        " and culture.",
    ),
    "/contact": ("Contact", "Write to the newsdesk; we read every message."),
    "/privacy": ("Privacy", "This page explains which cookies we use and why."),
    "/terms": ("Terms of use", "Use of this website is subject to these terms."),
}
