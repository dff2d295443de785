"""Crawls in this process, with no Redis: `crawler crawl` and `crawler demo`."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from crawler import settings as defaults
from crawler.cli.common import (
    MetricsPortOpt,
    OutletsDirOpt,
    SectionOpt,
    SettingOpt,
    StoreOpt,
    WarcOpt,
    build_settings,
    check_store,
    check_warc_dir,
    console,
    fail,
    in_mode,
    load_outlet,
)
from crawler.storage import open_store


def crawl(
    outlet: Annotated[str, typer.Argument(help="Outlet name (its file's name).")],
    section: SectionOpt = None,
    store: StoreOpt = defaults.STORE_URI,
    outlets_dir: OutletsDirOpt = None,
    metrics_port: MetricsPortOpt = None,
    max_wait: Annotated[
        str, typer.Option("--max-wait", help="While every mirror is out, wait this long for "
                          "one to come back (30s, 15m, 1h) before giving documents up.")
    ] = "15m",
    full: Annotated[
        bool, typer.Option("--full", help="Walk every section to max_section_pages and fetch "
                           "every listing, feed and sitemap in full, changed or not.")
    ] = False,
    revisit: Annotated[
        bool, typer.Option("--revisit", help="Also fetch again the stored articles due for a "
                           "revisit (outlet file: revisit), storing edits as revisions and "
                           "marking removals.")
    ] = False,
    warc: WarcOpt = None,
    setting: SettingOpt = None,
) -> None:
    """Crawl one outlet's sections, feeds and sitemaps in this process (no Redis) and store
    the articles."""
    from crawler.core.durations import parse_interval
    from crawler.mode import STANDALONE
    from crawler.runner import run_crawl

    sections = section or []
    load_outlet(outlets_dir, outlet, sections)
    try:
        give_up_after = parse_interval(max_wait)
    except ValueError as exc:
        raise fail(f"--max-wait: {exc}") from None
    settings = build_settings(
        setting, STORE_URI=store, OUTLETS_DIR=outlets_dir, METRICS_PORT=metrics_port,
        DOCUMENT_GIVE_UP_AFTER=give_up_after, DISCOVERY_FULL=True if full else None,
        REVISIT=True if revisit else None, WARC_DIR=warc,
    )
    in_mode(settings, STANDALONE)  # workers: `crawler worker`
    check_store(settings["STORE_URI"])  # -s STORE_URI=... wins over --store
    check_warc_dir(settings.get("WARC_DIR"))
    summary = run_crawl(settings, outlet, sections, console)
    console.print(summary.table(f"{outlet}: crawl finished ({summary.finish_reason})"))
    problem = summary.problem()
    if summary.finish_reason != "finished":
        raise fail(f"crawl ended early: {summary.finish_reason}"
                   + (f"; {problem}" if problem else ""), code=1)
    if problem is not None:
        raise fail(problem, code=1)


def demo(
    articles: Annotated[int, typer.Option(help="Articles in the simulated outlet.")] = 60,
    store: Annotated[str, typer.Option("--store", help="Store URI.")] = "sqlite:///demo.db",
    setting: SettingOpt = None,
) -> None:
    """Serve a simulated outlet on loopback (a dead and a seized mirror ahead of a healthy
    one), crawl it into SQLite, print a summary. Offline; needs no server."""
    from crawler.demo import DemoOutlet
    from crawler.runner import run_crawl

    check_store(store)
    # the site's news is of today, so that its news sitemap has something in its window
    newest = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    with tempfile.TemporaryDirectory(prefix="crawler-demo-") as tmp, DemoOutlet(
        Path(tmp), behaviours=("dead", "seized", "healthy"), articles=articles,
        discovery=("listings", "feeds", "sitemaps"), newest=newest,
    ) as fx:
        for server in fx.servers:
            console.print(f"mirror {server.base_url} is {server.behaviour}", highlight=False)
        settings = build_settings(
            # the summary is the demo's output; Scrapy's log only for what needs attention
            ["DOWNLOAD_TIMEOUT=5", "AUTOTHROTTLE_ENABLED=False", "LOG_LEVEL=WARNING",
             *(setting or [])],
            STORE_URI=store, OUTLETS_DIR=str(fx.outlet_dir),
        )
        summary = run_crawl(settings, fx.name, [], console)
        expected = fx.expected_articles()
        console.print(summary.table(f"demo: crawl finished ({summary.finish_reason})"))
        db = open_store(store)
        try:
            stored = {r["canonical_url"]: r for r in db.read(fx.name)}
        finally:
            db.close()
        by_mirror: dict[str, int] = {}
        for record in stored.values():
            by_mirror[record["mirror"]] = by_mirror.get(record["mirror"], 0) + 1
        found = len(set(expected) & set(stored))
        console.print(
            f"stored {found} of the {len(expected)} articles the outlet lists, "
            f"served by: {by_mirror}", highlight=False,
        )
        found_by = ", ".join(f"{source} {n}" for source, n in summary.found_by.items())
        listed_by = ", ".join(f"{source} {n}" for source, n in summary.listed_by.items())
        console.print(f"stored articles, by how they were found first: {found_by or 'none'}"
                      f" (article links read: {listed_by or 'none'})", highlight=False)
        console.print(f"see them with: crawler export --store {store}", highlight=False)
        if summary.finish_reason != "finished" or found != len(expected):
            raise fail("the demo crawl did not store every article", code=1)
