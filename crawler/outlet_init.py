"""A starter outlet file from what an outlet's mirrors serve (``crawler outlets init``).

Read from the first mirror that answers: its home page (feeds named by ``<link
rel="alternate">``, navigation links), its robots.txt (``Sitemap:`` lines), the navigation
pages (a section is one that lists articles) and one article (mirrors it names, such as "can
also be accessed at the following alternate addresses"). Mirrors named on a page are only
proposed, in a comment: a page can name any host, and a mirror is trusted with the outlet's
identity. What could not be inferred is said, never guessed silently.
"""

from __future__ import annotations

import gzip
import re
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml
from scrapy.utils.sitemap import sitemap_urls_from_robots

from crawler.core.links import page_links, page_tree
from crawler.core.mirror_notices import named_mirrors
from crawler.core.outlets import Outlet

FEED_TYPES = ("application/rss+xml", "application/atom+xml")
#: hosts proposed from the article read, at most
MAX_PROPOSED = 20
#: navigation pages looked at for sections, at most
MAX_CANDIDATES = 40
#: article links a page needs to count as a section listing
MIN_ARTICLES = 3

Fetch = Callable[[str], tuple[int, str, bytes]]


def fetch(url: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET; the status is 0 when nothing answered."""
    request = urllib.request.Request(url, headers={
        "User-Agent": "news-crawler/0.1 (outlet file starter)", "Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(5 * 1024 * 1024)
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return response.status, response.headers.get("Content-Type", ""), body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), b""
    except (OSError, ValueError):
        return 0, "", b""


# -- pure inference ------------------------------------------------------------------------------


def _segment_pattern(segment: str) -> str:
    if segment.isdigit():
        return rf"\d{{{len(segment)}}}" if len(segment) in (2, 4) else r"\d+"
    return re.escape(segment) if re.fullmatch(r"[A-Za-z][A-Za-z_-]*", segment) else "[^/]+"


def path_shape(path: str) -> str | None:
    """A pattern for an article-like path: up to and including its last number segment,
    numbers generalised (``/news/2024/06/28/1060/a-title`` -> ``^/news/\\d{4}/\\d{2}/\\d{2}/
    \\d+(/|$)``); None for a path with no number segment (a section, a page)."""
    segments = [s for s in path.split("/") if s]
    numbered = [i for i, s in enumerate(segments) if s.isdigit()]
    if not numbered:
        return None
    head = segments[: numbered[-1] + 1]
    # the last number is an id: any length; the ones before, dates: as long as they are
    parts = [_segment_pattern(s) for s in head[:-1]] + [r"\d+"]
    return "^/" + "/".join(parts) + "(/|$)"


def article_pattern(paths: Iterable[str], minimum: int = MIN_ARTICLES) -> str | None:
    """The commonest article-like shape among ``paths``, when it is common enough."""
    shapes = Counter(shape for shape in map(path_shape, paths) if shape)
    if not shapes:
        return None
    shape, count = shapes.most_common(1)[0]
    return shape if count >= minimum else None


def section_name(text: str, path: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")
    return name or re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "section"


@dataclass
class Page:
    url: str
    tree: Any

    @classmethod
    def parse(cls, url: str, body: bytes) -> Page | None:
        tree = page_tree(body)
        return cls(url, tree) if tree is not None else None

    def links(self) -> list[tuple[str, str]]:
        """(absolute URL, text) of the page's links, in page order."""
        return [(link.url, link.text) for link in page_links(self.tree, self.url)]

    def feeds(self) -> list[str]:
        return [link.url for link in page_links(
            self.tree, self.url, "//link[@rel='alternate'][@href]"
            f"[@type='{FEED_TYPES[0]}' or @type='{FEED_TYPES[1]}']")]


@dataclass
class Draft:
    name: str
    mirrors: list[str]
    feeds: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)
    article_url: str | None = None
    proposed_mirrors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "mirrors": self.mirrors}
        if self.sections:
            document["sections"] = self.sections
        document["article_url"] = self.article_url or "^/CHANGE-ME/"
        if self.feeds:
            document["feeds"] = self.feeds
        if self.sitemaps:
            document["sitemaps"] = self.sitemaps
        return document

    def yaml(self) -> str:
        lines = ["# written by `crawler outlets init`: review every field before crawling"]
        if self.proposed_mirrors:
            lines.append("# mirrors the site names on its pages, NOT added (check each, then add")
            lines.append("# it under `mirrors` if it serves the same site):")
            lines += [f"#   - {m}" for m in self.proposed_mirrors]
        for item in self.missing:
            lines.append(f"# not inferred: {item}")
        body = yaml.safe_dump(self.document(), sort_keys=False, allow_unicode=True)
        return "\n".join(lines) + "\n" + body

    def validate(self) -> Outlet:
        return Outlet.model_validate(self.document())


def _on_outlet(url: str, netlocs: set[str]) -> str | None:
    """The path and query of ``url`` when it is on one of ``netlocs``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.netloc.lower() not in netlocs:
        return None
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def draft_outlet(name: str, mirrors: list[str], get: Fetch = fetch) -> Draft:
    """Read the mirrors and infer what a starter outlet file can say."""
    mirrors = [m.rstrip("/") for m in mirrors]
    draft = Draft(name, mirrors)
    netlocs = {urlsplit(m).netloc.lower() for m in mirrors}
    home = base = None
    for mirror in mirrors:
        status, _, body = get(mirror + "/")
        if status == 200 and (home := Page.parse(mirror + "/", body)) is not None:
            base = mirror
            break
    if home is None or base is None:
        draft.missing = ["everything: no mirror served a home page"]
        return draft

    draft.feeds = list(dict.fromkeys(p for p in map(lambda u: _on_outlet(u, netlocs),
                                                    home.feeds()) if p))
    status, _, robots = get(base + "/robots.txt")
    if status == 200:
        draft.sitemaps = list(dict.fromkeys(
            p for p in (_on_outlet(u, netlocs)
                        for u in sitemap_urls_from_robots(robots, base_url=base)) if p))

    links = [(p, text) for p, text in ((_on_outlet(u, netlocs), t) for u, t in home.links())
             if p]
    draft.article_url = article_pattern(p for p, _ in links)
    pattern = re.compile(draft.article_url) if draft.article_url else None

    # sections: navigation links whose page lists articles of its own (not only the ones
    # every page carries: "most read", "related")
    navigation = [(p, t) for p, t in links if path_shape(p) is None and p not in ("/", "")]
    listed: dict[tuple[str, str], set[str]] = {}
    for path, text in list(dict.fromkeys(navigation))[:MAX_CANDIDATES]:
        if pattern is None:
            break
        status, _, body = get(base + path)
        page = Page.parse(base + path, body) if status == 200 else None
        if page is not None:
            paths = (_on_outlet(u, netlocs) for u, _ in page.links())
            listed[(path, text)] = {p for p in paths if p and pattern.search(p)}
    chrome = set.intersection(*listed.values()) if len(listed) > 1 else set()
    article_links: list[str] = []
    for (path, text), articles in listed.items():
        if len(articles - chrome) >= MIN_ARTICLES and path not in draft.sections.values():
            draft.sections.setdefault(section_name(text, path), path)
            article_links += sorted(articles - chrome)

    # mirrors an article names
    article = next((p for p, _ in links if pattern and pattern.search(p)), None) or next(
        iter(article_links), None)
    if article is not None:
        status, _, body = get(base + article)
        if status == 200:
            draft.proposed_mirrors = [named.base for named in named_mirrors(
                body, base + article, known=netlocs, limit=MAX_PROPOSED)]

    if draft.article_url is None:
        draft.missing.append("article_url (no links that look like articles)")
    if not draft.sections:
        draft.missing.append("sections (no navigation page lists articles)")
    if not draft.feeds:
        draft.missing.append('feeds (no <link rel="alternate"> to RSS or Atom)')
    if not draft.sitemaps:
        draft.missing.append("sitemaps (robots.txt names none)")
    draft.missing += ["page_path and max_section_pages (pagination)",
                      "blocked_markers, boilerplate, aliases, politeness"]
    return draft
