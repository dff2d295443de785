"""An outlet of real article pages: a corpus of saved pages behind generated section listings.

The corpus (the Article Extraction Benchmark's pages: ``html/<id>.html.gz`` and
``ground-truth.json``) is not part of the project; whoever serves this site says where it is.
Each page is served byte for byte, unchanged, under ``copies`` article paths
``/news/2024/01/01/<n>/a``: page ``(n - 1) % len(pages)``. Four sections list them,
``PER_PAGE`` to a listing page, each page linking the next with ``rel="next"``.
``robots.txt`` allows everything.

:class:`CorpusSite` answers ``page(target, mirror)`` as :class:`~crawler.demo.site.DemoSite`
does, so a :class:`~crawler.demo.server.MirrorServer` can serve it, and lists every file
(:meth:`CorpusSite.files`) so a static web server can.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.demo.site import BLOCKED_MARKERS, Page
from crawler.outlets import Outlet

OUTLET_NAME = "corpusnews"
SECTIONS = ("world", "business", "science", "culture")
PER_PAGE = 15
ARTICLE_URL = r"^/news/\d{4}/\d{2}/\d{2}/\d+/"
ROBOTS_TXT = b"User-agent: *\nDisallow:\n"
HTML = "text/html; charset=utf-8"

_ARTICLE_PATH = re.compile(r"^/news/2024/01/01/(\d+)(?:/[^/]*)?$")
_SECTION_PATH = re.compile(r"^/section/([a-z]+)(?:/page/(\d+))?/?$")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class CorpusPage:
    id: str
    #: where the page was saved from
    url: str
    html: bytes
    #: the article's text as the corpus's annotators gave it
    truth: str


def load_pages(corpus: Path) -> list[CorpusPage]:
    """Every page of the corpus, sorted by id; the HTML stays raw bytes (UTF-8)."""
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth):
        with gzip.open(corpus / "html" / f"{page_id}.html.gz") as fh:
            body = fh.read()
        entry = truth[page_id]
        pages.append(CorpusPage(page_id, entry["url"], body, entry["articleBody"] or ""))
    return pages


def has_corpus(corpus: Path) -> bool:
    return (corpus / "ground-truth.json").is_file() and (corpus / "html").is_dir()


class CorpusSite:
    """The pages of the corpus outlet; ``page(target, mirror)`` as a mirror server asks it."""

    name = OUTLET_NAME

    def __init__(self, corpus: Path | list[CorpusPage], copies: int = 6) -> None:
        if copies < 1:
            raise ValueError("copies must be at least 1")
        self.pages = load_pages(corpus) if isinstance(corpus, Path) else list(corpus)
        if not self.pages:
            raise ValueError("the corpus has no pages")
        self.titles = [_title(page) for page in self.pages]
        self.copies = copies
        self.articles = len(self.pages) * copies
        self.average_size = sum(len(page.html) for page in self.pages) / len(self.pages)
        self._listings: dict[tuple[str, int], bytes] = {}

    # -- layout ----------------------------------------------------------------------------------

    def article_path(self, n: int) -> str:
        return f"/news/2024/01/01/{n}/a"

    def article_paths(self) -> list[str]:
        return [self.article_path(n) for n in range(1, self.articles + 1)]

    def corpus_page(self, url_or_path: str) -> CorpusPage | None:
        """The corpus page served at an article URL (any mirror) or path."""
        match = _ARTICLE_PATH.match(urlsplit(url_or_path).path)
        if match is None or not 1 <= int(match.group(1)) <= self.articles:
            return None
        return self.pages[(int(match.group(1)) - 1) % len(self.pages)]

    def section_articles(self, section: str) -> list[int]:
        first = SECTIONS.index(section) + 1
        return list(range(first, self.articles + 1, len(SECTIONS)))

    def section_pages(self, section: str) -> int:
        return -(-len(self.section_articles(section)) // PER_PAGE)

    @property
    def max_section_pages(self) -> int:
        return max(self.section_pages(s) for s in SECTIONS)

    # -- answers ---------------------------------------------------------------------------------

    def page(self, target: str, mirror: str | None = None) -> Page:
        """The answer to a GET of ``target``; the same on every mirror."""
        path = target.split("?", 1)[0].split("#", 1)[0]
        if path == "/robots.txt":
            return Page(200, "text/plain; charset=utf-8", ROBOTS_TXT)
        if path == "/":
            return Page(200, HTML, self._home())
        if _ARTICLE_PATH.match(path):
            page = self.corpus_page(path)
            if page is not None:
                return Page(200, HTML, page.html)
        elif match := _SECTION_PATH.match(path):
            section, number = match.group(1), int(match.group(2) or 1)
            if section in SECTIONS and 1 <= number <= self.section_pages(section):
                return Page(200, HTML, self.listing(section, number))
        return Page(404, HTML, _document("Not found", "<h1>Page not found</h1>"))

    def files(self) -> Iterator[tuple[str, Page]]:
        """Every path the site serves (a section's first page also as ``/section/<name>``),
        with its page."""
        for path in ("/robots.txt", "/", *self.article_paths()):
            yield path, self.page(path)
        for section in SECTIONS:
            yield f"/section/{section}", self.page(f"/section/{section}")
            for number in range(1, self.section_pages(section) + 1):
                path = f"/section/{section}/page/{number}"
                yield path, self.page(path)

    def listing(self, section: str, number: int) -> bytes:
        key = (section, number)
        if key not in self._listings:
            self._listings[key] = self._listing(section, number)
        return self._listings[key]

    def _home(self) -> bytes:
        links = "".join(f'<li><a href="/section/{s}">{s.title()}</a></li>' for s in SECTIONS)
        return _document("Corpus News", f"<h1>Corpus News</h1><ul>{links}</ul>")

    def _listing(self, section: str, number: int) -> bytes:
        numbers = self.section_articles(section)[(number - 1) * PER_PAGE : number * PER_PAGE]
        items = "".join(
            f'<li><h3><a href="{self.article_path(n)}">'
            f"{html.escape(self.titles[(n - 1) % len(self.titles)])}</a></h3></li>"
            for n in numbers
        )
        pager = ""
        if number < self.section_pages(section):
            pager = (f'<p class="pager"><a rel="next" href="/section/{section}/page/'
                     f'{number + 1}">Next page</a></p>')
        return _document(
            f"{section.title()}: page {number}",
            f"<h1>{section.title()}</h1><ul class=\"stories\">{items}</ul>{pager}",
        )


def _title(page: CorpusPage) -> str:
    title = _TITLE.search(page.html)
    text = title.group(1).decode("utf-8", "replace") if title else ""
    return " ".join(html.unescape(text).split()) or f"Story {page.id[:8]}"


def _document(title: str, main: str) -> bytes:
    nav = " ".join(f'<a href="/section/{s}">{s.title()}</a>' for s in SECTIONS)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'</head><body><nav><a href="/">Home</a> {nav}</nav><main>{main}</main></body></html>'
    ).encode()


def outlet_document(site: CorpusSite, mirrors: list[str]) -> dict[str, Any]:
    """The outlet file for the corpus site served at ``mirrors`` (first canonical)."""
    document: dict[str, Any] = {
        "name": OUTLET_NAME,
        "description": "Real article pages (the AEB corpus) behind generated section listings.",
        "mirrors": list(mirrors),
        "sections": {section: f"/section/{section}" for section in SECTIONS},
        "article_url": ARTICLE_URL,
        # one page more than there is: the crawl ends on the missing rel=next, not the limit
        "max_section_pages": site.max_section_pages + 1,
        "blocked_markers": list(BLOCKED_MARKERS),
    }
    Outlet.model_validate(document)  # fail here, not in the crawler
    return document
