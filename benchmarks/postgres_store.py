"""Articles per second into the PostgreSQL store: batched writes against one per write.

    .venv/bin/python benchmarks/postgres_store.py [-n 5000] [--batch 100]

Each variant writes the same N realistic records (2-5 KB of text) into a fresh database on
the server the tests use (tests/pg_server.py: 127.0.0.1:5432 when it answers, else a private
one), dropped at the end. Besides the store itself, two other ways of sending a batch in one
go are timed on the same records, to show why the store upserts from unnest() arrays.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import NoPostgres, PostgresServer, postgres_server  # noqa: E402

from crawler.items import ARTICLE_FIELDS  # noqa: E402
from crawler.storage.postgres import PostgresStore, migrate  # noqa: E402

NEWS_PROSE = """
the government minister said on Tuesday that talks with regional partners over trade sanctions
oil exports would continue despite pressure from western capitals analysts expect prices to
rise further as the central bank announced new measures parliament approved budget security
forces reported protests in the capital according to officials economy inflation currency
market election court president spokesman agency report
"""
WORDS = NEWS_PROSE.split()

COLUMNS = ", ".join(ARTICLE_FIELDS)
UPDATES = ", ".join(
    f"{name} = excluded.{name}"
    for name in ARTICLE_FIELDS
    if name not in ("canonical_url", "outlet", "section")
)
ROW_UPSERT = (
    f"INSERT INTO articles AS a ({COLUMNS}) VALUES ({', '.join(['%s'] * len(ARTICLE_FIELDS))})"
    f" ON CONFLICT (canonical_url) DO UPDATE SET {UPDATES}"
    " WHERE a.content_hash IS DISTINCT FROM excluded.content_hash"
)


def make_records(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    records = []
    for n in range(count):
        size = rng.randint(2048, 5120)
        words: list[str] = []
        length = 0
        while length < size:
            word = rng.choice(WORDS)
            words.append(word)
            length += len(word) + 1
        text = " ".join(words)[:size]
        path = f"/Detail/2024/05/{n % 28 + 1:02d}/{700000 + n}/"
        records.append(
            {
                "canonical_url": "https://www.presstv.ir" + path,
                "url": "https://www.presstv.co.uk" + path,
                "mirror": "https://www.presstv.co.uk",
                "outlet": "presstv",
                "section": rng.choice(["economy", "politics", "world", "iran"]),
                "title": " ".join(rng.choices(WORDS, k=8)).capitalize(),
                "author": None,
                "published": (start + timedelta(minutes=n)).isoformat(),
                "language": "en",
                "text": text,
                "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                "fetched_at": (start + timedelta(days=1, seconds=n)).isoformat(),
            }
        )
    return records


def batches(records: list[dict], size: int) -> list[list[dict]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def timed(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def through_store(uri: str, groups: list[list[dict]]) -> float:
    with PostgresStore.from_uri(uri) as store:
        return timed(lambda: [store.write(group) for group in groups])


def executemany_pipeline(uri: str, groups: list[list[dict]]) -> float:
    """One row-by-row upsert per record, a batch sent in pipeline mode in one transaction."""
    with psycopg.connect(uri) as conn:
        migrate(conn)
        conn.commit()

        def run() -> None:
            for group in groups:
                with conn.transaction(), conn.cursor() as cursor:
                    rows = [[r[name] for name in ARTICLE_FIELDS] for r in sorted_by_url(group)]
                    cursor.executemany(ROW_UPSERT, rows)

        return timed(run)


def copy_and_merge(uri: str, groups: list[list[dict]]) -> float:
    """COPY a batch into a temporary table, then upsert from it."""
    with psycopg.connect(uri) as conn:
        migrate(conn)
        conn.commit()

        def run() -> None:
            for group in groups:
                with conn.transaction():
                    conn.execute("CREATE TEMP TABLE incoming (LIKE articles) ON COMMIT DROP")
                    with conn.cursor().copy(f"COPY incoming ({COLUMNS}) FROM STDIN") as copy:
                        for r in sorted_by_url(group):
                            copy.write_row([r[name] for name in ARTICLE_FIELDS])
                    conn.execute(
                        f"INSERT INTO articles AS a ({COLUMNS}) SELECT {COLUMNS} FROM incoming"
                        f" ON CONFLICT (canonical_url) DO UPDATE SET {UPDATES}"
                        " WHERE a.content_hash IS DISTINCT FROM excluded.content_hash"
                    )

        return timed(run)


def sorted_by_url(group: list[dict]) -> list[dict]:
    return sorted(group, key=lambda r: r["canonical_url"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--articles", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every variant; the best one counts"
    )
    args = parser.parse_args()

    records = make_records(args.articles)
    size_kb = sum(len(r["text"]) for r in records) / len(records) / 1024
    try:
        with postgres_server() as server:
            return run_all(server, records, args.batch, args.rounds, size_kb)
    except NoPostgres as exc:
        print(f"no PostgreSQL to benchmark against: {exc}", file=sys.stderr)
        return 1


def run_all(
    server: PostgresServer, records: list[dict], batch: int, rounds: int, size_kb: float
) -> int:
    n = len(records)
    print(
        f"PostgreSQL store at {server.host}:{server.port}: {n} articles,"
        f" {size_kb:.1f} KB of text each on average; best of {rounds} rounds"
    )
    grouped, single = batches(records, batch), batches(records, 1)

    def batched_then_unchanged(uri: str) -> tuple[float, float]:
        # the second pass writes the same records: nothing changed, nothing rewritten
        return through_store(uri, grouped), through_store(uri, grouped)

    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = max(best.get(name, 0.0), n / seconds)

    with server.database() as uri:  # warm up server and client; not counted
        through_store(uri, batches(records[:1000], batch))
    # rounds interleave the variants, so a busy moment on the server hits them all alike
    for _ in range(rounds):
        with server.database() as uri:
            first, again = batched_then_unchanged(uri)
            keep("batched", first)
            keep("unchanged", again)
        with server.database() as uri:
            keep("single", through_store(uri, single))
        with server.database() as uri:
            keep("executemany", executemany_pipeline(uri, grouped))
        with server.database() as uri:
            keep("copy", copy_and_merge(uri, grouped))

    rows = [
        (f"store.write, {batch} per write (unnest upsert)", best["batched"]),
        ("store.write, 1 per write", best["single"]),
        (f"store.write, {batch} per write, all unchanged", best["unchanged"]),
        (f"alternative: executemany in pipeline mode, {batch} per txn", best["executemany"]),
        (f"alternative: COPY to temp table + merge, {batch} per txn", best["copy"]),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value:9.0f} articles/s")
    ratio = best["batched"] / best["single"]
    print(f"  {'batched / one per write':<{width}}  {ratio:9.1f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
