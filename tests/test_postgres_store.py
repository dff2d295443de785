"""The PostgreSQL store against a real server (see pg_server.py for which one)."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import socket
import threading
import time
from contextlib import ExitStack, contextmanager

import psycopg
import pytest
from conftest import skip_without_postgres
from pg_server import private_server

from crawler.items import ARTICLE_FIELDS
from crawler.storage import StoreError, StoreUnavailable, open_store
from crawler.storage.postgres import SCHEMA_VERSION, PostgresStore, migrate


@pytest.fixture(scope="module")
def private():
    """A server of our own, which the test may stop and start."""
    with ExitStack() as stack:
        yield skip_without_postgres(stack, private_server())


@pytest.fixture
def uri(pg_uri):
    return pg_uri


@pytest.fixture
def store(uri):
    with PostgresStore.from_uri(uri) as opened:
        yield opened


def article(n: int, *, outlet: str = "presstv", section: str = "economy", text: str | None = None,
            fetched_at: str | None = None) -> dict:  # fmt: skip
    text = text if text is not None else f"Body of article {n}. " * 20
    return {
        "canonical_url": f"https://www.{outlet}.example/Detail/2024/05/01/{n}/",
        "url": f"https://mirror.{outlet}.example/Detail/2024/05/01/{n}/",
        "mirror": f"https://mirror.{outlet}.example",
        "outlet": outlet,
        "section": section,
        "title": f"Title {n}",
        "author": None,
        "published": "2024-05-01T08:30:00+00:00",
        "language": "en",
        "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest(),
        "fetched_at": fetched_at or f"2024-05-02T10:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
    }


def as_written(records) -> list[dict]:
    """The fields article() gives, of each record read back."""
    return [{name: record[name] for name in article(0)} for record in records]


def query(uri: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(uri, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


# -- schema -----------------------------------------------------------------------------------


def test_schema_is_created_in_an_empty_database(uri):
    with open_store(uri) as store:
        assert store.count() == 0
        assert list(store.read()) == []
        # an empty batch (every page of it failed extraction) writes nothing, and says so
        assert store.write([]) == 0 and store.write([]).revised == ()
    versions = query(uri, "SELECT version FROM schema_version ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))
    indexes = {name for (name,) in query(uri, "SELECT indexname FROM pg_indexes")}
    assert {
        "articles_pkey",
        "articles_fetched_at",
        "articles_outlet_fetched_at",
        "articles_outlet_published",
        "articles_content_hash",
        "article_revisions_canonical_url",
    } <= indexes


def test_previous_schema_version_is_migrated_keeping_rows(uri):
    fields = ARTICLE_FIELDS[: ARTICLE_FIELDS.index("fetched_at") + 1]  # as of version 3
    with psycopg.connect(uri, autocommit=True) as conn:
        assert migrate(conn, target=SCHEMA_VERSION - 1) == SCHEMA_VERSION - 1
        for n in range(3):
            record = article(n)
            conn.execute(
                f"INSERT INTO articles ({', '.join(fields)})"
                f" VALUES ({', '.join(['%s'] * len(fields))})",
                [record[name] for name in fields],
            )

    with PostgresStore.from_uri(uri) as store:
        assert [r["canonical_url"] for r in store.read()] == [
            article(n)["canonical_url"] for n in range(3)
        ]
        stored = list(store.read())[1]
        assert stored.items() >= article(1).items()
        assert (stored["revision"], stored["first_seen"], stored["removed_at"]) == (
            1, article(1)["fetched_at"], None)
        # what the new version adds works on the old rows
        assert store.write([article(1, text="Corrected body.")]) == 1
        assert [r["text"] for r in store.revisions(article(1)["canonical_url"])] == [
            article(1)["text"]
        ]
    assert query(uri, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]


def test_schema_newer_than_the_code_is_refused(uri):
    with psycopg.connect(uri, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO schema_version VALUES (%s, 'from the future')", [99])
    with pytest.raises(StoreError, match="version 99") as failure:
        PostgresStore.from_uri(uri)
    assert "\n" not in str(failure.value)


# -- writing ----------------------------------------------------------------------------------


def test_writing_the_same_batch_twice_stores_each_article_once(store, uri):
    batch = [article(n) for n in range(10)]
    assert store.write(batch + [article(3)]) == 10
    assert store.write(batch) == 0
    assert store.count() == 10
    assert {r["revision"] for r in store.read()} == {1}
    assert query(uri, "SELECT count(*) FROM article_revisions") == [(0,)]


def test_changed_article_keeps_its_earlier_version(store, uri):
    first = article(1, section="economy", fetched_at="2024-05-02T10:00:00+00:00")
    changed = article(1, section="politics", text="New body.", fetched_at="2024-05-03T10:00:00Z")
    again = dict(changed, fetched_at="2024-05-04T10:00:00+00:00")

    assert store.write([first]) == 1
    assert store.write([changed]) == 1
    [stored] = store.read()
    assert stored["text"] == "New body."
    assert stored["section"] == "economy"  # where it was first found
    assert stored["fetched_at"] == "2024-05-03T10:00:00+00:00"
    assert stored["revision"] == 2
    assert stored["first_seen"] == "2024-05-02T10:00:00+00:00"
    assert as_written(store.revisions(first["canonical_url"])) == [first]

    assert store.write([again]) == 0  # seen again, as it was
    [stored] = store.read()
    assert stored["fetched_at"] == "2024-05-03T10:00:00+00:00"  # this version's first fetch
    assert stored["last_seen"] == "2024-05-04T10:00:00+00:00"
    assert stored["revision"] == 2
    assert len(store.revisions(first["canonical_url"])) == 1


def test_write_normalises_what_postgres_cannot_hold(store):
    record = article(1, text="before\x00after")
    record["published"] = "yesterday"  # a date the page got wrong
    del record["fetched_at"]
    assert store.write([record]) == 1
    [stored] = store.read()
    assert stored["text"] == "beforeafter"
    assert stored["published"] is None
    assert stored["fetched_at"].endswith("+00:00")


def test_record_without_outlet_is_a_one_line_store_error(store):
    record = article(1)
    record["outlet"] = None
    with pytest.raises(StoreError, match="has no outlet") as failure:
        store.write([article(2), record])
    assert "\n" not in str(failure.value)
    assert store.count() == 0


def test_a_read_only_database_is_named_before_a_crawl_writes(uri):
    with PostgresStore.from_uri(uri) as opened:
        opened.check_writable()  # a writable one says nothing
    with psycopg.connect(uri, autocommit=True) as conn:  # as on a hot standby
        name = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    with PostgresStore.from_uri(uri) as opened, pytest.raises(StoreError) as failure:
        opened.check_writable()
    assert str(failure.value).endswith(" is read-only")
    assert "\n" not in str(failure.value)


def _write_in_process(uri: str, start: threading.Barrier, numbers: list[int], seed: int,
                      results) -> None:  # fmt: skip
    start.wait()  # open together: the migrations race too
    shuffled = random.Random(seed)
    numbers = numbers[:]
    shuffled.shuffle(numbers)
    stored = 0
    with PostgresStore.from_uri(uri) as store:
        for i in range(0, len(numbers), 50):
            stored += store.write([article(n) for n in numbers[i : i + 50]])
    results.put(stored)


def test_concurrent_writers_store_each_article_once(uri):
    context = multiprocessing.get_context("spawn")
    workers = 4
    start = context.Barrier(workers)
    results = context.Queue()
    # worker i writes 200*i .. 200*i+599: every article is written by up to three workers
    batches = [list(range(200 * i, 200 * i + 600)) for i in range(workers)]
    processes = [
        context.Process(target=_write_in_process, args=(uri, start, batch, seed, results))
        for seed, batch in enumerate(batches)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * workers
    stored = [results.get(timeout=5) for _ in processes]

    distinct = len(set().union(*batches))
    assert sum(stored) == distinct  # each one counted new exactly once
    with open_store(uri) as store:
        assert store.count() == distinct
    assert query(uri, "SELECT count(*) FROM article_revisions") == [(0,)]
    assert query(uri, "SELECT count(*), max(version) FROM schema_version") == [
        (SCHEMA_VERSION, SCHEMA_VERSION)
    ]


# -- reading ----------------------------------------------------------------------------------


def test_read_existing_and_count(store):
    records = [article(n, outlet="presstv") for n in range(6)]
    records += [article(n, outlet="almanar") for n in range(6, 10)]
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    store.write(shuffled[:5])
    store.write(shuffled[5:])

    assert as_written(store.read()) == records  # fetched_at order
    assert as_written(store.read(outlet="almanar")) == records[6:]
    assert list(store.read(outlet="nobody")) == []
    assert store.count() == 10
    assert store.count("presstv") == 6
    assert store.count("nobody") == 0
    asked = [records[0]["canonical_url"], records[7]["canonical_url"], "https://elsewhere/x"]
    assert store.existing(iter(asked)) == set(asked[:2])
    assert store.existing([]) == set()


def test_read_streams_through_a_server_side_cursor(store, uri):
    total = 1200
    for i in range(0, total, 300):
        store.write([article(n) for n in range(i, i + 300)])

    reading = store.read()
    first = next(reading)
    fetching = query(
        uri,
        "SELECT query FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'FETCH FORWARD%%'",
    )
    assert fetching, "expected the rows to be fetched from a cursor, a batch at a time"
    assert 1 + sum(1 for _ in reading) == total
    assert as_written([first]) == [article(0)]


# -- an absent or failing server ------------------------------------------------------------


@contextmanager
def refused_port():
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_unreachable_server_is_a_one_line_store_error():
    with refused_port() as port, pytest.raises(StoreError) as failure:
        open_store(f"postgresql://postgres@127.0.0.1:{port}/crawler")
    message = str(failure.value)
    assert message == f"cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused"


def test_connection_dropped_mid_write_loses_nothing(store, uri):
    store.write([article(1)])
    changed = [article(n, text=f"Second version {n}.") for n in range(1, 4)]
    outcome: dict = {}

    def write():
        try:
            outcome["stored"] = store.write(changed)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    with psycopg.connect(uri) as locker:
        # hold the row so the write waits inside the server, then kill its connection
        locker.execute("SELECT 1 FROM articles FOR UPDATE")
        writer = threading.Thread(target=write)
        writer.start()
        waiting = _wait_for(
            uri, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'",
        )  # fmt: skip
        query(uri, "SELECT pg_terminate_backend(%s)", [waiting[0][0]])
        locker.rollback()
    writer.join(60)

    # retried on a fresh connection: safe, since writing is idempotent
    assert outcome == {"stored": 3}
    assert [r["text"] for r in store.read()] == [r["text"] for r in changed]
    assert len(store.revisions(article(1)["canonical_url"])) == 1


def test_unavailable_while_the_server_is_down_then_recovers(private):
    with private.database() as uri:
        store = PostgresStore.from_uri(uri, timeout=1.0)
        try:
            held = [article(n) for n in range(100, 150)]
            assert store.write([article(n) for n in range(50)]) == 50

            private.stop()
            with pytest.raises(StoreUnavailable) as failure:
                store.write(held)
            assert "\n" not in str(failure.value)
            assert f"127.0.0.1:{private.port}" in str(failure.value)
            with pytest.raises(StoreUnavailable):
                store.count()
            with pytest.raises(StoreUnavailable, match="cannot reach PostgreSQL"):
                PostgresStore.from_uri(uri)

            private.start()
            stored = _retry_until_stored(store, held)
            assert stored == 50
            assert store.count() == 100
            assert store.existing(r["canonical_url"] for r in held) == {
                r["canonical_url"] for r in held
            }
        finally:
            store.close()


def _retry_until_stored(store: PostgresStore, batch: list[dict]) -> int:
    """What the store pipeline does: hold the batch and retry while the store is away."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return store.write(batch)
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_for(uri: str, sql: str) -> list[tuple]:
    deadline = time.monotonic() + 30
    while not (rows := query(uri, sql)):
        assert time.monotonic() < deadline, f"nothing matched: {sql}"
        time.sleep(0.05)
    return rows
