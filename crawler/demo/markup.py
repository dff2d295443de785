"""The demo outlet's HTML pages: the home page, section listings, articles, the info pages
and "not found", each inside the site's chrome (header, menus, sidebar, footer).

The chrome is as bulky and as full of links as a real outlet's: extraction and link
discovery must get past the boilerplate they meet in the wild.
"""

from __future__ import annotations

import html
import json
import random
from collections.abc import Mapping
from datetime import datetime

from crawler.demo import text
from crawler.demo.articles import OUTLET_NAME, SITE_NAME, VIDEO, DemoArticle
from crawler.demo.feeds import SITE_FEED

#: sections whose listing pages also link onward with <a rel="next" href="?page=N">
REL_NEXT_SECTIONS = ("politics", "world")
MIRRORS_NOTICE = f"{SITE_NAME}'s website can also be accessed at the following alternate addresses"
#: the outlet file's boilerplate rules for the article pages below: where the text ends, and
#: the app promotion among its paragraphs
CUT_FROM = ("SHARE THIS ARTICLE", MIRRORS_NOTICE)
DROP_LINES = (f"{SITE_NAME} Roku",)


def document(title: str, main: str, most_read: list[DemoArticle], head: str = "") -> str:
    """A whole page: ``main`` in the site's chrome, the most read articles beside it."""
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
        f"{_most_read(most_read)}\n"
        "</div>\n"
        f"{_FOOTER}\n"
        "</body>\n</html>\n"
    )


def home_page(first_pages: Mapping[str, list[DemoArticle]],
              most_read: list[DemoArticle]) -> str:
    """The home page: a block per section, of its first listing page's newest articles."""
    blocks = []
    for section, articles in first_pages.items():
        items = "".join(
            f'<li><a href="{a.path}">{_e(a.title)}</a></li>'
            for a in articles[:5]
        )
        blocks.append(
            f'<section class="home-block"><h2><a href="/section/{section}">'
            f"{section.title()}</a></h2><ul>{items}</ul></section>"
        )
    return document(
        "Latest news, analysis and opinion", f'<main class="home">{"".join(blocks)}</main>',
        most_read,
    )


def info_page(path: str, most_read: list[DemoArticle]) -> str:
    """One of :data:`INFO_PAGES` (about us, contact...)."""
    title, paragraph = INFO_PAGES[path]
    return document(
        title, f'<main class="info"><h1>{_e(title)}</h1><p>{_e(paragraph)}</p></main>',
        most_read,
    )


def listing_page(section: str, page: int, pages: int, articles: list[DemoArticle],
                 other_mirrors: list[str], most_read: list[DemoArticle]) -> str:
    """Listing page ``page`` of ``pages`` of a section: its ``articles``, some thumbnails
    linking them on ``other_mirrors``, and the links a crawler must not follow."""
    base = f"/section/{section}"
    rel_next = section in REL_NEXT_SECTIONS
    teasers = []
    for index, article in enumerate(articles):
        # some thumbnails point at the same article on another mirror
        thumb = article.path
        if other_mirrors and index % 3 == 1:
            thumb = other_mirrors[index % len(other_mirrors)] + article.path
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
    return document(title, main, most_read, head=head)


def article_page(article: DemoArticle, paragraphs: list[str], mirrors: tuple[str, ...],
                 seed: int, most_read: list[DemoArticle]) -> str:
    """An article's page: its ``paragraphs`` amid share tools, the notice naming the
    ``mirrors`` (first canonical), related stories and a bulky ad configuration."""
    rng = random.Random(f"{OUTLET_NAME}:{seed}:{article.id}:chrome")
    blocks = [f"<p>{_e(p)}</p>" for p in paragraphs]
    if len(blocks) > 3:
        # the outlet's app promotion, dropped line by line by the outlet file
        blocks.insert(
            2, f"<p>Watch {SITE_NAME} Roku on your television, wherever you are.</p>"
        )
    if article.kind == VIDEO:
        body = (
            f'<div class="video-player" data-video-id="v{article.id}"><video controls '
            f'preload="none" poster="/media/{article.id}/poster.jpg">'
            f'<source src="/media/{article.id}/clip.mp4" type="video/mp4"></video></div>'
        )
    else:
        body = "\n".join(blocks)
    section = article.sections[0]
    canonical = (mirrors[0] if mirrors else "") + article.path
    mirror_items = "".join(f'<li><a href="{m}">{m}</a></li>' for m in mirrors)
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
        f'<div class="mirror-notice"><p>{MIRRORS_NOTICE}:</p><ul>{mirror_items}</ul></div>'
        "</article>"
        f"{_related(rng, most_read, article)}"
        "</main>"
    )
    return document(article.title, main, most_read, head=head)


def not_found_page(most_read: list[DemoArticle]) -> str:
    """What the site answers, with a 404, for a path it does not serve."""
    return document(
        "Page not found",
        "<main class=\"error\"><h1>Page not found</h1><p>The page you were looking for "
        "has moved or no longer exists.</p><p><a href=\"/\">Return to the homepage</a>"
        "</p></main>",
        most_read,
    )


# -- shared chrome ---------------------------------------------------------------------------


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _display_date(when: datetime) -> str:
    return f"{when.day} {when:%B %Y}, {when:%H:%M} GMT"


def _most_read(articles: list[DemoArticle]) -> str:
    items = "".join(
        f'<li><span class="rank">{rank}</span><a href="{a.path}">{_e(a.title)}</a></li>'
        for rank, a in enumerate(articles, 1)
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
#: the pages about the outlet, by path: their title and text
INFO_PAGES = {
    "/about": (
        "About us",
        f"{SITE_NAME} is an independent newsroom covering politics, the economy, world affairs"
        " and culture.",
    ),
    "/contact": ("Contact", "Write to the newsdesk; we read every message."),
    "/privacy": ("Privacy", "This page explains which cookies we use and why."),
    "/terms": ("Terms of use", "Use of this website is subject to these terms."),
}
