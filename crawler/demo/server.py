"""The demo outlet on loopback: :class:`DemoOutlet` starts one
:class:`~crawler.demo.mirror.MirrorServer` per mirror, each with a failure behaviour
(:mod:`~crawler.demo.behaviours`), and writes the outlet file that points a crawler at them.
``python -m crawler.demo.server`` runs one by hand until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from crawler.core.outlets import Outlet, load_outlet_file
from crawler.demo.behaviours import (
    BEHAVIOURS,
    DEAD,
    FLAKY,
    FORBIDDEN,
    FORBIDDEN_PAGE,
    GARBAGE,
    HANGING,
    HEALTHY,
    HTML,
    PARKED_PAGE,
    REDIRECT_OFF,
    REDIRECT_PAGE,
    REDIRECT_TARGET,
    SEIZED,
    SEIZED_PAGE,
    UNAVAILABLE_PAGE,
    check_behaviour,
)
from crawler.demo.httpd import GZIP_LEVEL, GZIP_MIN_LENGTH, GZIP_STATUSES, GZIP_TYPES
from crawler.demo.mirror import LoggedRequest, MirrorServer
from crawler.demo.site import (
    ARTICLE_URL,
    BLOCKED_MARKERS,
    CUT_FROM,
    DROP_LINES,
    NEWS_SITEMAP,
    OUTLET_NAME,
    PAGE_PATH,
    SECTIONS,
    SITE_NAME,
    DemoSite,
    Truth,
)

# the mirrors' names too, defined beside the mirror, its behaviours and its HTTP: tests,
# fault schedules and benchmarks import them from here
__all__ = [
    "BEHAVIOURS",
    "DEAD",
    "FLAKY",
    "FORBIDDEN",
    "FORBIDDEN_PAGE",
    "GARBAGE",
    "GZIP_LEVEL",
    "GZIP_MIN_LENGTH",
    "GZIP_STATUSES",
    "GZIP_TYPES",
    "HANGING",
    "HEALTHY",
    "HTML",
    "PARKED_PAGE",
    "REDIRECT_OFF",
    "REDIRECT_PAGE",
    "REDIRECT_TARGET",
    "SEIZED",
    "SEIZED_PAGE",
    "UNAVAILABLE_PAGE",
    "DemoOutlet",
    "LoggedRequest",
    "MirrorServer",
    "main",
    "outlet_document",
]


def outlet_document(
    mirrors: Iterable[str],
    max_section_pages: int = 5,
    politeness: Mapping[str, Any] | None = None,
    discovery: Iterable[str] = ("listings",),
) -> dict[str, Any]:
    """The outlet file for the demo site served at ``mirrors`` (first canonical), reading
    the ``discovery`` sources it names: "listings", "feeds" (the sections' feeds),
    "sitemaps" (the news sitemap index), "robots_sitemaps" (the sitemaps robots.txt names)."""
    sources = set(discovery)
    sections: dict[str, Any] = {}
    for section in SECTIONS:
        entry: dict[str, Any] = {}
        if "listings" in sources:
            entry["path"] = f"/section/{section}"
        if "feeds" in sources:
            entry["feeds"] = [f"/section/{section}/feed.rss"]
        if entry:
            sections[section] = entry["path"] if list(entry) == ["path"] else entry
    document: dict[str, Any] = {
        "name": OUTLET_NAME,
        "description": f"{SITE_NAME}: the simulated outlet served on loopback for the demo.",
        "mirrors": list(mirrors),
        "sections": sections,
        "article_url": ARTICLE_URL,
        "page_path": PAGE_PATH,
        "max_section_pages": max_section_pages,
        "blocked_markers": list(BLOCKED_MARKERS),
        "boilerplate": {"cut_from": list(CUT_FROM), "drop_lines": list(DROP_LINES)},
    }
    if "sitemaps" in sources:
        document["sitemaps"] = [NEWS_SITEMAP]
    if "robots_sitemaps" in sources:
        document["robots_sitemaps"] = True
    if politeness:
        document["politeness"] = dict(politeness)
    Outlet.model_validate(document)  # fail here, not in the crawler
    return document


class DemoOutlet:
    """The demo outlet on loopback: one :class:`MirrorServer` per behaviour, in mirror order,
    and ``<directory>/demonews.yaml`` describing them.

    ::

        with DemoOutlet(tmp_path, behaviours=("dead", "seized", "healthy")) as fx:
            crawl(outlets_dir=fx.outlet_dir, outlet=fx.name)
            assert stored == fx.expected_articles()

    Canonical URLs are on the first mirror even when that one is dead.
    """

    def __init__(
        self,
        directory: str | Path,
        behaviours: Iterable[str] | str = (DEAD, SEIZED, HEALTHY),
        articles: int = 60,
        max_section_pages: int = 5,
        politeness: Mapping[str, Any] | None = None,
        seed: int = 7,
        host: str = "127.0.0.1",
        delay: float = 0.0,
        discovery: Iterable[str] = ("listings",),
        newest: datetime | None = None,
    ) -> None:
        if isinstance(behaviours, str):
            behaviours = behaviours.split(",")
        self.behaviours = tuple(b.strip() for b in behaviours)
        if not self.behaviours:
            raise ValueError("a demo outlet needs at least one mirror")
        for behaviour in self.behaviours:
            check_behaviour(behaviour)
        self.outlet_dir = Path(directory)
        self.outlet_file = self.outlet_dir / f"{OUTLET_NAME}.yaml"
        self.name = OUTLET_NAME
        self.max_section_pages = max_section_pages
        self.politeness = dict(politeness) if politeness else None
        self.site = DemoSite(articles=articles, seed=seed, newest=newest)
        self.discovery = tuple(discovery)
        self.host = host
        self.delay = delay
        self.servers: list[MirrorServer] = []

    def start(self) -> DemoOutlet:
        self.servers = [
            MirrorServer(self.site, b, host=self.host, delay=self.delay) for b in self.behaviours
        ]
        self.site.mirrors = [server.base_url for server in self.servers]
        document = outlet_document(self.site.mirrors, self.max_section_pages, self.politeness,
                                   self.discovery)
        self.outlet_dir.mkdir(parents=True, exist_ok=True)
        self.outlet_file.write_text(
            yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> DemoOutlet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def mirrors(self) -> tuple[str, ...]:
        return self.site.mirrors

    @property
    def canonical(self) -> str:
        return self.site.canonical

    def outlet(self) -> Outlet:
        return load_outlet_file(self.outlet_file)

    def server(self, behaviour: str) -> MirrorServer:
        """The first mirror started with ``behaviour``."""
        return self.servers[self.behaviours.index(behaviour)]

    def expected_articles(self, max_section_pages: int | None = None) -> set[str]:
        pages = self.max_section_pages if max_section_pages is None else max_section_pages
        return self.site.expected_articles(pages)

    def truth(self, url: str) -> Truth:
        return self.site.truth(url)

    def hits(self, path: str | None = None) -> int:
        """Requests for ``path`` (or all requests) across every mirror."""
        return sum(server.hits(path) for server in self.servers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.demo.server",
        description=f"Serve the {SITE_NAME} demo outlet on loopback until Ctrl-C.",
    )
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--behaviours",
        default="dead,seized,healthy",
        help=f"comma-separated, one mirror each, in preference order ({', '.join(BEHAVIOURS)})",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to write demonews.yaml")
    parser.add_argument("--max-section-pages", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    # Ctrl-C (or a TERM) only asks to stop: a KeyboardInterrupt raised wherever the main
    # thread happens to be (printing, starting a mirror) could leave the mirrors half closed
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    directory = args.dir or Path(tempfile.mkdtemp(prefix="demonews-"))
    outlet = DemoOutlet(
        directory,
        behaviours=args.behaviours,
        articles=args.articles,
        max_section_pages=args.max_section_pages,
        seed=args.seed,
        delay=args.delay,
    )
    with outlet:
        print(outlet.outlet_file, flush=True)
        for server in outlet.servers:
            print(f"  {server.base_url}  {server.behaviour}", flush=True)
        expected = len(outlet.expected_articles())
        print(f"  {expected} articles expected from a full crawl; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
