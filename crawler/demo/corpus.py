"""An outlet of real article pages: a corpus of saved pages behind generated section listings.

A corpus (``html/<id>.html.gz`` and ``ground-truth.json``: the Article Extraction
Benchmark's pages, or another set of saved pages in that form, see :data:`CORPORA`) is not
part of the project; whoever serves this site says where it is. Two layouts:

- ``copies`` (the default): each page is served byte for byte, unchanged, under ``copies``
  article paths ``/news/2024/01/01/<n>/a``: page ``(n - 1) % len(pages)``;
- ``variants``: each page under 1 to 3 article paths chosen by a hash of its id
  (:func:`variant_kinds`): its own id with a slug (``/news/2024/01/01/<n>/<slug>``), the same
  id without the slug (``/news/2024/01/01/<n>``), and copies under other ids whose page
  carries ``<!-- copy 2 -->`` (``3``...) just before ``</body>``, its bytes otherwise
  unchanged. Every path is an article of its own: real sites serve one story under several
  URLs, and pages that differ only in numbers.

Four sections list the articles, ``PER_PAGE`` to a listing page, each page linking the next
with ``rel="next"``. ``robots.txt`` allows everything.

:class:`CorpusSite` answers ``page(target, mirror)`` as :class:`~crawler.demo.site.DemoSite`
does, so a :class:`~crawler.demo.mirror.MirrorServer` can serve it, and lists every file
(:meth:`CorpusSite.files`) so a static web server can.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.core.outlets import Outlet
from crawler.demo.site import BLOCKED_MARKERS, Page

OUTLET_NAME = "corpusnews"
SECTIONS = ("world", "business", "science", "culture")
PER_PAGE = 15
ARTICLE_URL = r"^/news/\d{4}/\d{2}/\d{2}/\d+/"
#: the ``variants`` layout's article paths: with a slug or without
VARIANT_ARTICLE_URL = r"^/news/\d{4}/\d{2}/\d{2}/\d+(/|$)"
COPIES, VARIANTS = "copies", "variants"
#: the saved-page corpora this site can serve, by folder name, in a folder of corpora
CORPORA = ("aeb-dev", "wcxb-dev", "fundus-news", "htmldate-dev")
#: a variant of a page: its own id with a slug, without it, or a copy under another id
SLUG, BARE, COPY = "slug", "bare", "copy"
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
    #: the article's text as the corpus's annotators gave it ("" where they gave none)
    truth: str
    #: whether the annotators gave the text (a corpus of dates gives only url and published)
    annotated: bool = True


def load_pages(corpus: Path) -> list[CorpusPage]:
    """Every page of the corpus, sorted by id; the HTML stays raw bytes."""
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth):
        with gzip.open(corpus / "html" / f"{page_id}.html.gz") as fh:
            body = fh.read()
        entry = truth[page_id]
        pages.append(CorpusPage(page_id, entry["url"], body, entry.get("articleBody") or "",
                                annotated="articleBody" in entry))
    return pages


def article_pages(corpus: Path) -> tuple[CorpusPage, ...]:
    """The corpus's article pages: every page where the annotators gave the text; where they
    gave none (a corpus of publication dates) the pages where trafilatura alone (its defaults)
    finds text, the rest being no article at all. Read and judged once per process."""
    return _article_pages(str(corpus.resolve()))


@functools.cache
def _article_pages(corpus: str) -> tuple[CorpusPage, ...]:
    return tuple(page for page in load_pages(Path(corpus))
                 if page.annotated or trafilatura_finds_text(page))


def trafilatura_finds_text(page: CorpusPage) -> bool:
    import trafilatura  # only for corpora without annotated text

    document = trafilatura.bare_extraction(page.html.decode("utf-8", "replace"), url=page.url)
    return bool(document is not None and document.text)


def has_corpus(corpus: Path) -> bool:
    return (corpus / "ground-truth.json").is_file() and (corpus / "html").is_dir()


def variant_kinds(page_id: str) -> tuple[str, ...]:
    """The article paths a page gets in the ``variants`` layout, chosen by a hash of its id:
    1 to 3 of its own id with a slug, without the slug, and copies under other ids."""
    choice = int.from_bytes(hashlib.sha256(page_id.encode()).digest()[:4], "big") % 7
    return (
        (SLUG,), (BARE,), (SLUG, BARE), (SLUG, COPY), (BARE, COPY), (SLUG, BARE, COPY),
        (SLUG, COPY, COPY),
    )[choice]


def with_copy_marker(body: bytes, number: int) -> bytes:
    """The page with ``<!-- copy N -->`` just before its last ``</body>`` (at the end where it
    has none): copies of one page differ only in that number."""
    marker = f"<!-- copy {number} -->".encode()
    at = body.lower().rfind(b"</body>")
    return body + marker if at < 0 else body[:at] + marker + body[at:]


def slug(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())[:8]
    return "-".join(words) or "story"


@dataclass(frozen=True)
class CorpusArticle:
    """One article path of the site and what it serves."""

    path: str
    #: the corpus page's position in ``CorpusSite.pages``
    page: int
    #: SLUG, BARE or COPY
    kind: str = SLUG
    #: a copy's number (its marker): 2, 3...
    copy: int = 0


class CorpusSite:
    """The pages of the corpus outlet; ``page(target, mirror)`` as a mirror server asks it.
    ``layout``: :data:`COPIES` (``copies`` paths per page) or :data:`VARIANTS`."""

    name = OUTLET_NAME

    def __init__(self, corpus: Path | list[CorpusPage], copies: int = 6,
                 layout: str = COPIES) -> None:
        if copies < 1:
            raise ValueError("copies must be at least 1")
        if layout not in (COPIES, VARIANTS):
            raise ValueError(f"layout must be {COPIES!r} or {VARIANTS!r}, not {layout!r}")
        self.pages = load_pages(corpus) if isinstance(corpus, Path) else list(corpus)
        if not self.pages:
            raise ValueError("the corpus has no pages")
        self.titles = [_title(page) for page in self.pages]
        self.copies = copies
        self.layout = layout
        self.article_url = ARTICLE_URL if layout == COPIES else VARIANT_ARTICLE_URL
        self.entries = self._layout()
        self._by_path = {entry.path: entry for entry in self.entries}
        self.articles = len(self.entries)
        self.average_size = sum(len(page.html) for page in self.pages) / len(self.pages)
        self._listings: dict[tuple[str, int], bytes] = {}

    # -- layout ----------------------------------------------------------------------------------

    def _layout(self) -> list[CorpusArticle]:
        if self.layout == COPIES:
            return [CorpusArticle(f"/news/2024/01/01/{n}/a", (n - 1) % len(self.pages))
                    for n in range(1, len(self.pages) * self.copies + 1)]
        entries = []
        # ids: a page's own first, in page order; its copies' ids after all of them
        copies_from = len(self.pages) + 1
        for index, page in enumerate(self.pages):
            own, name, copy = index + 1, slug(self.titles[index]), 1
            for kind in variant_kinds(page.id):
                if kind == SLUG:
                    entries.append(CorpusArticle(f"/news/2024/01/01/{own}/{name}", index, kind))
                elif kind == BARE:
                    entries.append(CorpusArticle(f"/news/2024/01/01/{own}", index, kind))
                else:
                    copy += 1
                    entries.append(CorpusArticle(f"/news/2024/01/01/{copies_from}/{name}",
                                                 index, kind, copy))
                    copies_from += 1
        return entries

    def article_path(self, n: int) -> str:
        return self.entries[n - 1].path

    def article_paths(self) -> list[str]:
        return [entry.path for entry in self.entries]

    def article(self, url_or_path: str) -> CorpusArticle | None:
        """The article at an article URL (any mirror) or path."""
        path = urlsplit(url_or_path).path
        entry = self._by_path.get(path)
        if entry is None and self.layout == COPIES:
            # any slug: the page is the id's
            match = _ARTICLE_PATH.match(path)
            if match is not None and 1 <= int(match.group(1)) <= self.articles:
                entry = self.entries[int(match.group(1)) - 1]
        return entry

    def corpus_page(self, url_or_path: str) -> CorpusPage | None:
        """The corpus page served at an article URL (any mirror) or path."""
        entry = self.article(url_or_path)
        return None if entry is None else self.pages[entry.page]

    def article_body(self, url_or_path: str) -> bytes | None:
        """The bytes served at an article URL or path: the corpus page, a copy's with its
        marker."""
        entry = self.article(url_or_path)
        if entry is None:
            return None
        body = self.pages[entry.page].html
        return with_copy_marker(body, entry.copy) if entry.kind == COPY else body

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
            body = self.article_body(path)
            if body is not None:
                return Page(200, HTML, body)
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
            f"{html.escape(self.titles[self.entries[n - 1].page])}</a></h3></li>"
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
        "article_url": site.article_url,
        # one page more than there is: the crawl ends on the missing rel=next, not the limit
        "max_section_pages": site.max_section_pages + 1,
        "blocked_markers": list(BLOCKED_MARKERS),
        # the saved pages name the real sites they came from (canonical links, feeds): they
        # are no mirrors of this outlet, and a crawl on loopback must not look them up
        "mirror_discovery": "off",
    }
    Outlet.model_validate(document)  # fail here, not in the crawler
    return document
