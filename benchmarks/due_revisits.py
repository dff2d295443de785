"""How long finding an outlet's due revisits takes as its store grows, in both stores.

    .venv/bin/python benchmarks/due_revisits.py [--articles 300000] [--rounds 5]

The beat asks every ``REVISIT_CHECK_SECONDS`` (60) for each scheduled outlet's due articles,
and ``crawler crawl --revisit`` once a crawl, so the query runs for as long as the crawler
does, while the store only grows. One outlet's ``--articles`` (12 an hour, so 300,000 is about
three years), each checked ten minutes after publication, a few of them removed, go into a
fresh SQLite file and a fresh PostgreSQL database (the server the tests use,
tests/pg_server.py: 127.0.0.1:5432 when it answers, else a private one; dropped at the end).
Then ``Store.due_for_revisit`` with the default revisit settings (3 d window, 6 h interval,
backoff 1), the median of ``--rounds``.

Measured on a shared 2-vCPU VM, 300,000 articles, 821 due: SQLite 8.0 ms (backoff 0) and
5.6 ms (backoff 1) per query; PostgreSQL 9.8 and 11.5 ms. The same script on the stores as
they were before they selected recent and removed articles apart, each through its own index
(one query over the index on checked_at), right after: SQLite 494 and 381 ms, PostgreSQL 351
and 411 ms, a scan of every article checked more than 6 h ago that grows with the store.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import NoPostgres, postgres_server  # noqa: E402

from crawler.storage import Store, open_store  # noqa: E402

NOW = datetime(2026, 11, 29, tzinfo=UTC)
BATCH = 5000


def records(count: int):
    for n in range(count):
        published = NOW - timedelta(minutes=5 * n)
        text = f"article {n}: " + "the minister said on Tuesday that talks would go on " * 20
        yield {
            "canonical_url": f"https://outlet.test/news/{n}", "url": f"https://outlet.test/news/{n}",
            "mirror": "https://outlet.test", "outlet": "outlet", "section": "world",
            "title": f"Article {n}", "author": None, "published": published.isoformat(),
            "language": "en", "text": text,
            "content_hash": hashlib.sha256(text.encode()).hexdigest(),
            "fetched_at": (published + timedelta(minutes=10)).isoformat(),
            "etag": None, "last_modified": None,
        }


def fill(store: Store, count: int) -> None:
    batch = []
    for record in records(count):
        batch.append(record)
        if len(batch) == BATCH:
            store.write(batch)
            batch = []
    if batch:
        store.write(batch)
    # a few removed long ago, still checked until enough revisits agree
    store.mark_removed([f"https://outlet.test/news/{n}" for n in range(1000, count, 10000)],
                       (NOW - timedelta(days=1)).isoformat())


def time_due(store: Store, backoff: float, rounds: int) -> tuple[float, int]:
    times, due = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        due = store.due_for_revisit(
            "outlet", published_after=(NOW - timedelta(days=3)).isoformat(),
            checked_before=(NOW - timedelta(hours=6)).isoformat(), removal_checks=3,
            limit=1000, now=NOW.isoformat(), backoff=backoff)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, len(due)


def measure(name: str, uri: str, count: int, rounds: int) -> None:
    store = open_store(uri)
    try:
        started = time.perf_counter()
        fill(store, count)
        print(f"{name}: {count} articles written in {time.perf_counter() - started:.0f} s")
        for backoff in (0.0, 1.0):
            ms, due = time_due(store, backoff, rounds)
            print(f"  backoff {backoff:g}: {due} due, {ms:.1f} ms per query (median)")
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        measure("SQLite", f"sqlite:///{work}/store.db", args.articles, args.rounds)
    try:
        with postgres_server() as server, server.database() as uri:
            measure("PostgreSQL", uri, args.articles, args.rounds)
    except NoPostgres as exc:
        print(f"no PostgreSQL to measure: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
