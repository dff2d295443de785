"""The demo outlet's feeds and news sitemaps: RSS 2.0 feeds of the site and of each section,
and a sitemap index of one news sitemap per day."""

from __future__ import annotations

from email.utils import format_datetime
from html import escape

from crawler.demo.articles import SITE_NAME, DemoArticle

FEED_SIZE = 20
SITE_FEED = "/feed.rss"
NEWS_SITEMAP = "/sitemap_news.xml"


def rss_feed(base: str, section: str | None, articles: list[DemoArticle]) -> bytes:
    """The feed of ``section`` (or of the site) at ``base``, listing ``articles``."""
    title = f"{SITE_NAME} - {section.title()}" if section else SITE_NAME
    link = f"{base}/section/{section}" if section else f"{base}/"
    items = "".join(
        f"<item><title>{escape(a.title)}</title><link>{base}{a.path}</link>"
        f"<guid isPermaLink=\"true\">{base}{a.path}</guid>"
        f"<description>{escape(a.summary)}</description>"
        f"<pubDate>{format_datetime(a.published, usegmt=True)}</pubDate></item>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{link}</link>"
        f"<description>{escape(title)}</description>{items}</channel></rss>\n"
    ).encode()


def sitemap_index(base: str, days: dict[str, list[DemoArticle]]) -> bytes:
    """The index of the day sitemaps at ``base``: day (YYYY-MM-DD) -> its articles."""
    entries = "".join(
        f"<sitemap><loc>{base}/sitemaps/news-{day}.xml.gz</loc>"
        f"<lastmod>{articles[0].published_iso}</lastmod></sitemap>"
        for day, articles in days.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex '
        f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>\n'
    ).encode()


def day_sitemap(base: str, articles: list[DemoArticle]) -> bytes:
    """The news sitemap of one day's ``articles`` at ``base`` (not yet gzipped)."""
    entries = "".join(
        f"<url><loc>{base}{a.path}</loc><news:news><news:publication>"
        f"<news:name>{SITE_NAME}</news:name><news:language>en</news:language>"
        "</news:publication>"
        f"<news:publication_date>{a.published_iso}</news:publication_date>"
        f"<news:title>{escape(a.title)}</news:title></news:news></url>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<urlset '
        'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        f"{entries}</urlset>\n"
    ).encode()
