"""An outlet of real article pages on loopback: the AEB corpus behind generated listings.

    .venv/bin/python benchmarks/corpus_outlet.py [--copies 6] [--behaviours dead,healthy]
                                                 [--dir DIR]

Each of the corpus's 88 pages (read at start from ``../shared/corpus/aeb-dev``, never copied
into the project) is served, byte for byte, under ``--copies`` article paths
``/news/2024/01/01/<n>/a``: page ``(n - 1) % 88``, copy ``(n - 1) // 88 + 1``. Four sections
list them, ``PER_PAGE`` to a listing page, each page linking the next with ``rel="next"``.
``robots.txt`` allows everything. The mirrors are :class:`crawler.demo.server.MirrorServer`
instances, one per behaviour, in the outlet file's order (canonical first).

The crawler takes a 2xx page without a link into the outlet for a parked domain. Corpus pages
link only to their original sites when they have no root-relative ``href="/...``: those pages
get ``<nav><a href="/">Home</a></nav>`` right after ``<body>``, which leaves the article as
it was; the server says how many on start.

Prints the outlet file, one line per mirror (``URL behaviour``), ``note:`` lines, then
``N articles expected from a full crawl``; serves until terminated.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import re
import sys
import tempfile
import threading
from pathlib import Path

import yaml
from aeb import CORPUS, load_pages

from crawler.demo.server import BEHAVIOURS, DEAD, HEALTHY, MirrorServer
from crawler.demo.site import BLOCKED_MARKERS, Page
from crawler.outlets import Outlet

OUTLET_NAME = "corpusnews"
SECTIONS = ("world", "business", "science", "culture")
PER_PAGE = 15
ARTICLE_URL = r"^/news/\d{4}/\d{2}/\d{2}/\d+/"
ROBOTS_TXT = b"User-agent: *\nDisallow:\n"
HTML = "text/html; charset=utf-8"
NAV = b'<nav><a href="/">Home</a></nav>'

_ARTICLE_PATH = re.compile(r"^/news/2024/01/01/(\d+)(?:/[^/]*)?$")
_SECTION_PATH = re.compile(r"^/section/([a-z]+)(?:/page/(\d+))?/?$")
# what the crawler's failover middleware accepts as a link into the outlet
_ROOT_RELATIVE_LINK = re.compile(rb"""href\s*=\s*["']?/(?!/)""", re.IGNORECASE)
_BODY_TAG = re.compile(rb"<body\b[^>]*>", re.IGNORECASE)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class CorpusSite:
    """The pages of the outlet; ``page(target, mirror)`` as :class:`MirrorServer` asks it."""

    def __init__(self, corpus: Path, copies: int) -> None:
        pages = load_pages(corpus)
        self.bodies: list[bytes] = []
        self.titles: list[str] = []
        self.nav_added = 0
        for page in pages:
            body = page.html
            if not _ROOT_RELATIVE_LINK.search(body):
                body_tag = _BODY_TAG.search(body)
                if body_tag is None:
                    raise ValueError(f"corpus page {page.id} has no <body> to put a link in")
                body = body[: body_tag.end()] + NAV + body[body_tag.end() :]
                self.nav_added += 1
            self.bodies.append(body)
            title = _TITLE.search(page.html)
            text = title.group(1).decode("utf-8", "replace") if title else ""
            self.titles.append(" ".join(html.unescape(text).split()) or f"Story {page.id[:8]}")
        self.copies = copies
        self.articles = len(self.bodies) * copies
        self.average_size = sum(map(len, self.bodies)) / len(self.bodies)
        self._listings: dict[tuple[str, int], bytes] = {}

    # -- layout ----------------------------------------------------------------------------------

    def article_path(self, n: int) -> str:
        return f"/news/2024/01/01/{n}/a"

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
        path = target.split("?", 1)[0].split("#", 1)[0]
        if path == "/robots.txt":
            return Page(200, "text/plain; charset=utf-8", ROBOTS_TXT)
        if path == "/":
            return Page(200, HTML, self._home())
        if match := _ARTICLE_PATH.match(path):
            n = int(match.group(1))
            if 1 <= n <= self.articles:
                return Page(200, HTML, self.bodies[(n - 1) % len(self.bodies)])
        elif match := _SECTION_PATH.match(path):
            section, number = match.group(1), int(match.group(2) or 1)
            if section in SECTIONS and 1 <= number <= self.section_pages(section):
                key = (section, number)
                if key not in self._listings:
                    self._listings[key] = self._listing(section, number)
                return Page(200, HTML, self._listings[key])
        return Page(404, HTML, _document("Not found", "<h1>Page not found</h1>"))

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


def _document(title: str, main: str) -> bytes:
    nav = " ".join(f'<a href="/section/{s}">{s.title()}</a>' for s in SECTIONS)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'</head><body><nav><a href="/">Home</a> {nav}</nav><main>{main}</main></body></html>'
    ).encode()


def outlet_document(site: CorpusSite, mirrors: list[str]) -> dict:
    document = {
        "name": OUTLET_NAME,
        "description": "Real article pages (the AEB corpus) behind generated section listings.",
        "mirrors": mirrors,
        "sections": {section: f"/section/{section}" for section in SECTIONS},
        "article_url": ARTICLE_URL,
        # one page more than there is: the crawl ends on the missing rel=next, not the limit
        "max_section_pages": site.max_section_pages + 1,
        "blocked_markers": list(BLOCKED_MARKERS),
    }
    Outlet.model_validate(document)  # fail here, not in the crawler
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=6, help="article paths per corpus page")
    parser.add_argument("--behaviours", default=f"{DEAD},{HEALTHY}",
                        help=f"one mirror each, in preference order ({', '.join(BEHAVIOURS)})")
    parser.add_argument("--dir", type=Path, default=None, help=f"where to write {OUTLET_NAME}.yaml")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    if not (args.corpus / "ground-truth.json").is_file():
        print(f"the AEB corpus is not at {args.corpus} (expected ground-truth.json and html/)",
              file=sys.stderr)
        return 2
    if args.copies < 1:
        parser.error("--copies must be at least 1")

    site = CorpusSite(args.corpus, args.copies)
    behaviours = [b.strip() for b in args.behaviours.split(",") if b.strip()]
    servers = [MirrorServer(site, behaviour) for behaviour in behaviours]  # type: ignore[arg-type]
    directory = args.dir or Path(tempfile.mkdtemp(prefix=f"{OUTLET_NAME}-"))
    directory.mkdir(parents=True, exist_ok=True)
    outlet_file = directory / f"{OUTLET_NAME}.yaml"
    document = outlet_document(site, [server.base_url for server in servers])
    outlet_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    for server in servers:
        server.start()
    try:
        print(outlet_file, flush=True)
        for server in servers:
            print(f"  {server.base_url}  {server.behaviour}", flush=True)
        print(f"note: {len(site.bodies)} corpus pages x {site.copies} copies, "
              f"{site.average_size / 1000:.0f} KB on average; {site.nav_added} without a "
              f"root-relative link got {NAV.decode()} after <body>", flush=True)
        print(f"  {site.articles} articles expected from a full crawl; Ctrl-C to stop",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
