"""Finding articles without paging through listings: feeds, news sitemaps, and asking only
for what changed (conditional requests). Pure functions; the spider acts on them.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap

#: request kinds of the documents that lead to articles (meta[meta.KIND])
LISTING, FEED, SITEMAP = "listing", "feed", "sitemap"
DISCOVERY_KINDS = (LISTING, FEED, SITEMAP)


class MalformedDocument(ValueError):
    """A feed or sitemap that cannot be read: the mirror's answer about the document."""


class TooLarge(Exception):
    """A gzipped sitemap that decompresses past the size limit."""


# -- feeds ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedEntry:
    link: str
    title: str | None = None
    #: ISO-8601, UTC
    published: str | None = None


def feed_entries(body: bytes) -> list[FeedEntry]:
    """The entries of an RSS or Atom feed, in feed order. A body that is no feed at all
    raises :class:`MalformedDocument`; a well-formed feed may have no entries."""
    # bytes, never a str: feedparser would take a str for a URL or a file name to open
    parsed = feedparser.parse(bytes(body))
    if parsed.bozo and not parsed.entries:
        raise MalformedDocument(f"not a feed: {parsed.get('bozo_exception')}")
    if not parsed.entries and not parsed.get("version"):
        raise MalformedDocument("not a feed: no RSS or Atom root element")
    entries = []
    for entry in parsed.entries:
        link = (entry.get("link") or "").strip()
        if not link:
            continue
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        published = (
            datetime.fromtimestamp(calendar.timegm(when), UTC).isoformat() if when else None
        )
        entries.append(FeedEntry(link, (entry.get("title") or "").strip() or None, published))
    return entries


# -- sitemaps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SitemapEntry:
    loc: str
    #: <news:publication_date>, else <lastmod>: as written
    date: str | None = None


class _NewsSitemap(Sitemap):
    """Scrapy's sitemap reader, keeping the nested ``<news:publication_date>`` that it
    clears with the ``<news:news>`` element."""

    def _process_sitemap_element(self, elem: Any) -> dict[str, Any] | None:
        published = next((el.text for el in elem.iter("{*}publication_date")), None)
        entry = super()._process_sitemap_element(elem)
        if entry is not None and published and published.strip():
            entry["publication_date"] = published.strip()
        return entry


def sitemap_entries(body: bytes, max_size: int = 0) -> tuple[str, list[SitemapEntry]]:
    """(``"urlset"`` or ``"sitemapindex"``, entries) of a sitemap, gzipped or not.
    A gzipped body decompressing past ``max_size`` raises Scrapy's size error."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = gunzip(body, max_size=max_size)
        except (OSError, EOFError) as exc:
            raise MalformedDocument(f"broken gzip: {exc}") from None
        except ValueError as exc:  # Scrapy's: past max_size
            raise TooLarge(str(exc)) from None
    try:
        sitemap = _NewsSitemap(body)
        entries = [
            SitemapEntry(d["loc"], d.get("publication_date") or d.get("lastmod") or None)
            for d in sitemap
        ]
    except (StopIteration, SyntaxError, ValueError) as exc:  # lxml's errors are SyntaxErrors
        raise MalformedDocument(f"not a sitemap: {exc or 'empty'}") from None
    if sitemap.type not in ("urlset", "sitemapindex"):
        raise MalformedDocument(f"not a sitemap: <{sitemap.type}> root")
    return sitemap.type, entries


def parse_date(value: str | None) -> datetime | None:
    """A W3C datetime (``2024-06-28``, ``2024-06-28T17:45:00+00:00``, ``...Z``) as UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def within_window(date: str | None, now: datetime, days: float) -> bool:
    """Whether an entry dated ``date`` is recent enough to read; undated entries are."""
    when = parse_date(date)
    return when is None or (now - when).total_seconds() <= days * 86400


# -- conditional requests ------------------------------------------------------------------------


def validators_of(headers: Any) -> dict[str, str]:
    """The validators (ETag, Last-Modified) of an answer's headers, for the next request."""
    found = {}
    for name in ("ETag", "Last-Modified"):
        value = headers.get(name)
        if value:
            found[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return found


def conditional_headers(validators: dict[str, str] | None) -> dict[str, str]:
    """Request headers that ask for the document only when it changed since ``validators``."""
    if not validators:
        return {}
    headers = {}
    if validators.get("ETag"):
        headers["If-None-Match"] = validators["ETag"]
    if validators.get("Last-Modified"):
        headers["If-Modified-Since"] = validators["Last-Modified"]
    return headers
