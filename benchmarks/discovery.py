"""What a second crawl of an unchanged outlet costs against the first: requests and bytes.

The demo outlet (listings, per-section feeds and a news sitemap index) is served by nginx on
loopback (tests/nginx_outlet.py: gzip, ETag, Last-Modified, 304s), crawled twice into one
SQLite store; the figures come from nginx's access log (body bytes as sent, compressed when
they were). The second run asks every listing, feed and sitemap with the validators of the
first (If-None-Match, If-Modified-Since): target, under 5 % of the first run's bytes.

    .venv/bin/python benchmarks/discovery.py [--articles 120] [--pages 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from nginx_outlet import AccessEntry, NginxOutlet  # noqa: E402

TARGET = 0.05


def crawl(fx: NginxOutlet, store: Path) -> tuple[int, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "crawl", fx.name, "--outlets-dir",
         str(fx.outlet_dir), "--store", f"sqlite:///{store}", "-s", "AUTOTHROTTLE_ENABLED=False",
         "-s", "LOG_LEVEL=WARNING"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"crawl failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.returncode, time.perf_counter() - started


def settled(fx: NginxOutlet, count: int) -> list[AccessEntry]:
    """The log once nginx has written every line of the run (it writes just after answering)."""
    time.sleep(0.3)
    return fx.requests()[count:]


def kind(entry: AccessEntry) -> str:
    if entry.path.startswith("/news/"):
        return "article"
    if entry.path.endswith(".rss"):
        return "feed"
    if "sitemap" in entry.path:
        return "sitemap"
    if entry.path == "/robots.txt":
        return "robots.txt"
    return "listing"


def report(name: str, entries: list[AccessEntry]) -> None:
    kinds = Counter(kind(e) for e in entries)
    statuses = Counter(e.status for e in entries)
    print(f"{name}: {len(entries)} requests, {sum(e.bytes for e in entries):,} bytes; "
          f"by kind {dict(sorted(kinds.items()))}; by status {dict(sorted(statuses.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=120)
    parser.add_argument("--pages", type=int, default=5, help="max_section_pages")
    args = parser.parse_args()
    newest = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    with tempfile.TemporaryDirectory(prefix="discovery-bench-") as tmp, NginxOutlet(
        Path(tmp), ("healthy",), pages="demo", articles=args.articles,
        max_section_pages=args.pages, discovery=("listings", "feeds", "sitemaps"),
        newest=newest,
    ) as fx:
        store = Path(tmp) / "crawl.db"
        _, first_wall = crawl(fx, store)
        first = settled(fx, 0)
        _, second_wall = crawl(fx, store)
        second = settled(fx, len(first))
        report(f"first run  ({first_wall:.1f} s)", first)
        report(f"second run ({second_wall:.1f} s)", second)
        first_bytes = sum(e.bytes for e in first)
        share = sum(e.bytes for e in second) / first_bytes
        print(f"second/first: requests {len(second) / len(first):.1%}, bytes {share:.2%} "
              f"(target < {TARGET:.0%}): {'ok' if share < TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
