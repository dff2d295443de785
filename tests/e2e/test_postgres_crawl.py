"""Crawls into PostgreSQL end to end: `crawler crawl` and `crawler worker` processes storing
the demo outlet (on loopback) into a real server, with workers killed and the database
restarted under them. See pg_server.py for which server is used."""

from __future__ import annotations

import re
import signal
import time
from contextlib import ExitStack

import psycopg
import pytest
from conftest import (
    FAST,
    export_records,
    run_crawler,
    skip_without_postgres,
    stored_records,
    wait_for,
)
from pg_server import private_server

from crawler.distributed.keys import RedisKeys

KEYS = RedisKeys()


@pytest.fixture
def private_pg():
    """A server of this test's own, which it may stop and start, and a database on it:
    ``(server, uri)``. The whole cluster is removed afterwards, stopped or not."""
    with ExitStack() as stack:
        server = skip_without_postgres(stack, private_server())
        yield server, server.uri(server.create_database())


# -- helpers ----------------------------------------------------------------------------------


def query(uri: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(uri, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def article_count(uri: str) -> int:
    # the workers create the schema: until then there is nothing stored
    if query(uri, "SELECT to_regclass('articles')")[0][0] is None:
        return 0
    return query(uri, "SELECT count(*) FROM articles")[0][0]


def revision_count(uri: str) -> int:
    return query(uri, "SELECT count(*) FROM article_revisions")[0][0]


def row_versions(uri: str) -> dict[str, tuple[str, object]]:
    """(xmin, fetched_at) per article: xmin changes whenever a row is rewritten."""
    rows = query(uri, "SELECT canonical_url, xmin::text, fetched_at FROM articles")
    return {url: (xmin, fetched_at) for url, xmin, fetched_at in rows}


def crawl(fx, store: str, *extra: str):
    return run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir),
                       "--store", store, *FAST, *extra)


def schedule(fx, redis_url: str) -> None:
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", redis_url)
    assert result.returncode == 0, result.stderr


def assert_each_listed_article_once(fx, uri: str, bad_mirrors=()) -> None:
    records = stored_records(uri)
    urls = [r["canonical_url"] for r in records]
    assert len(urls) == len(set(urls))
    assert set(urls) == fx.expected_articles()
    bad = {fx.server(b).base_url for b in bad_mirrors}
    for record in records:
        truth = fx.truth(record["canonical_url"])
        assert record["text"] == truth.text
        assert record["title"] == truth.title
        assert record["published"][:10] == truth.published[:10]
        assert record["mirror"] not in bad, f"{record['url']} came from a failing mirror"
    # every copy stored again had the same text: no revision was kept
    assert revision_count(uri) == 0


def wait_all_stored(fx, uri: str, crew, client, timeout: float = 180) -> None:
    """Wait until every article is stored, or the crawl is over without them: nothing
    queued, nothing leased and nothing stored for 10 s, so no request is left to store one."""
    expected = fx.expected_articles()
    last, since = -1, time.monotonic()

    def done():
        nonlocal last, since
        count = article_count(uri)
        if count >= len(expected):
            return True
        if count != last or not drained(client):
            last, since = count, time.monotonic()
        return time.monotonic() - since >= 10

    wait_for(done, timeout, "every article stored")
    missing = sorted(expected - {r["canonical_url"] for r in stored_records(uri)})
    if missing:
        pytest.fail(f"the crawl is over and {len(missing)} articles were never stored, e.g. "
                    f"{missing[:2]}; {worker_errors(crew)}")


def worker_errors(crew) -> str:
    errors = [line for worker in crew for line in worker.output().splitlines()
              if " ERROR: " in line or line.startswith("crawler.storage.")]
    return "the workers' errors:\n" + "\n".join(errors[-20:])


def paused_by_the_store(worker) -> bool:
    return "): pausing the crawl" in worker.output()


def wait_for_pause(crew) -> None:
    """Wait until every worker in ``crew`` has paused its crawl on the unavailable store."""
    try:
        wait_for(lambda: all(paused_by_the_store(w) for w in crew), 60,
                 "the workers to pause on the unavailable store")
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc}; {worker_errors(crew)}")


def drained(client) -> bool:
    queued = sum(client.zcard(key) for key in client.scan_iter(match=f"{KEYS.prefix}:queue:*"))
    return queued == 0 and inflight(client) == 0


def inflight(client) -> int:
    return sum(client.hlen(key) for key in client.scan_iter(match=f"{KEYS.prefix}:inflight:*"))


def assert_redis_drained(client) -> None:
    """Nothing queued and nothing leased: every request reached its final outcome."""
    for key in client.scan_iter(match=f"{KEYS.prefix}:queue:*"):
        assert client.zcard(key) == 0, key
    for key in client.scan_iter(match=f"{KEYS.prefix}:inflight:*"):
        assert client.hlen(key) == 0, key


def worker_name(worker) -> str:
    """The id a worker leases under, from its log."""
    found = wait_for(lambda: re.search(r"Worker (\S+) taking work from Redis", worker.output()),
                     60, "the worker to start")
    return found.group(1)


def article_fetches(fx) -> int:
    return sum(1 for server in fx.servers for path in server.paths() if path.startswith("/news/"))


def wait_until_quiet(fx, seconds: float, timeout: float) -> int:
    """Wait until the outlet has had no request for ``seconds``; the number of requests."""
    last, since = fx.hits(), time.monotonic()

    def quiet():
        nonlocal last, since
        now = fx.hits()
        if now != last:
            last, since = now, time.monotonic()
        return time.monotonic() - since >= seconds

    wait_for(quiet, timeout, f"the outlet to get no request for {seconds:g} s")
    return last


# -- standalone -------------------------------------------------------------------------------


def test_crawl_into_a_fresh_database_then_again_rewrites_nothing(demo_outlet, pg_uri):
    fx = demo_outlet("dead", "seized", "healthy", articles=60)
    result = crawl(fx, pg_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_each_listed_article_once(fx, pg_uri, bad_mirrors=("dead", "seized"))
    stored = stored_records(pg_uri)
    exported = export_records(pg_uri)
    assert exported == stored
    assert {r["canonical_url"] for r in exported} == fx.expected_articles()

    versions = row_versions(pg_uri)
    result = crawl(fx, pg_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert row_versions(pg_uri) == versions  # not a row rewritten: same xmin, same fetched_at
    assert stored_records(pg_uri) == stored
    assert revision_count(pg_uri) == 0


# -- distributed ------------------------------------------------------------------------------


def test_three_workers_one_killed_mid_crawl_store_each_article_once(
    demo_outlet, redis_server, workers, pg_uri
):
    # slow enough (politeness) that a worker is killed mid-crawl: feeds list every article
    # at once
    fx = demo_outlet("dead", "seized", "flaky", "healthy", articles=150, delay=0.03,
                     politeness={"requests_per_second": 15})
    url = redis_server.url
    crew = [workers(url, pg_uri, fx.outlet_dir) for _ in range(3)]
    schedule(fx, url)
    expected = len(fx.expected_articles())
    wait_for(lambda: article_count(pg_uri) >= expected // 3, 120, "a third of the articles")
    assert article_count(pg_uri) < expected  # killed mid-crawl, not after
    crew[0].stop(signal.SIGKILL)
    crew.append(workers(url, pg_uri, fx.outlet_dir))
    client = redis_server.client()
    wait_all_stored(fx, pg_uri, crew, client)
    # the killed worker's leases went back to the queue and were finished by the others
    wait_for(lambda: inflight(client) == 0, 60, "no request left in flight")
    for worker in crew[1:]:
        assert worker.stop(signal.SIGTERM) < 30
        assert worker.process.returncode == 0, worker.output()[-2000:]
    assert_each_listed_article_once(fx, pg_uri, bad_mirrors=("dead", "seized"))
    assert_redis_drained(client)


# -- the database restarted under the workers ----------------------------------------------


def test_postgres_restart_mid_crawl_pauses_the_workers_and_loses_nothing(
    demo_outlet, redis_server, workers, private_pg
):
    server, uri = private_pg
    # politeness keeps the crawl going long enough to take the database from under it
    fx = demo_outlet("dead", "healthy", articles=150, politeness={"requests_per_second": 10})
    crew = [workers(redis_server.url, uri, fx.outlet_dir) for _ in range(2)]
    schedule(fx, redis_server.url)
    wait_for(lambda: article_count(uri) >= 20, 120, "some articles stored")

    server.stop()
    wait_for_pause(crew)
    for worker in crew:
        assert f"Store unavailable (PostgreSQL at 127.0.0.1:{server.port}" in worker.output()
    # paused: the outlet hears nothing more while articles are still to be fetched
    wait_until_quiet(fx, seconds=3, timeout=60)
    assert article_fetches(fx) < len(fx.expected_articles())
    for worker in crew:
        assert worker.process.poll() is None, worker.output()[-3000:]

    server.start()
    client = redis_server.client()
    wait_all_stored(fx, uri, crew, client)
    wait_for(lambda: inflight(client) == 0, 60, "no request left in flight")
    for worker in crew:
        assert "Store is back: resuming the crawl" in worker.output()
        # a paused worker is alive: it kept its heartbeat and its leases all along
        assert "went silent" not in worker.output()
        assert worker.stop(signal.SIGTERM) < 30
        assert worker.process.returncode == 0, worker.output()[-2000:]
    assert_each_listed_article_once(fx, uri, bad_mirrors=("dead",))
    assert_redis_drained(client)


def test_worker_killed_while_postgres_is_down_loses_nothing(
    demo_outlet, redis_server, workers, private_pg
):
    server, uri = private_pg
    fx = demo_outlet("healthy", articles=150, politeness={"requests_per_second": 10})
    # a short heartbeat timeout so the killed worker's leases return soon
    quick = ("-s", "WORKER_HEARTBEAT=1", "-s", "WORKER_TIMEOUT=5")
    victim, survivor = (workers(redis_server.url, uri, fx.outlet_dir, *quick) for _ in range(2))
    client = redis_server.client()
    victim_id = worker_name(victim)
    schedule(fx, redis_server.url)
    wait_for(lambda: article_count(uri) >= 20, 120, "some articles stored")

    server.stop()
    wait_for_pause([victim])
    silent = f"Worker {victim_id} went silent: returned its"
    assert silent not in survivor.output(), "a live, paused worker lost its leases"
    # what it fetched but could not store is still leased to it, never acknowledged
    assert client.hlen(KEYS.inflight(victim_id)) > 0
    victim.stop(signal.SIGKILL)
    # the survivor, paused itself, returns the dead worker's leases to the queue
    wait_for(lambda: silent in survivor.output(), 60,
             "the survivor to return the victim's leases")
    assert client.hlen(KEYS.inflight(victim_id)) == 0
    assert survivor.process.poll() is None, survivor.output()[-3000:]

    server.start()
    wait_all_stored(fx, uri, [victim, survivor], client)
    wait_for(lambda: inflight(client) == 0, 60, "no request left in flight")
    assert survivor.stop(signal.SIGTERM) < 30
    assert survivor.process.returncode == 0, survivor.output()[-2000:]
    assert_each_listed_article_once(fx, uri)
    assert_redis_drained(client)


def test_sigterm_while_postgres_is_down_stops_in_time_and_loses_nothing(
    demo_outlet, redis_server, workers, private_pg
):
    server, uri = private_pg
    fx = demo_outlet("healthy", articles=100, politeness={"requests_per_second": 10})
    worker = workers(redis_server.url, uri, fx.outlet_dir, "-s", "STORE_CLOSE_TIMEOUT=5")
    client = redis_server.client()
    schedule(fx, redis_server.url)
    wait_for(lambda: article_count(uri) >= 10, 120, "some articles stored")
    server.stop()
    wait_for_pause([worker])
    # the last batch cannot be stored: the worker gives it up in time, unacknowledged; the
    # listings it drains meanwhile do not each wait for the store (5 s) to say what it holds
    took = worker.stop(signal.SIGTERM)
    assert took < 20, worker.output()[-3000:]
    assert worker.process.returncode == 0, worker.output()[-2000:]
    assert "articles not stored" in worker.output()
    assert inflight(client) == 0  # returned to the queue, not dropped
    server.start()
    successor = workers(redis_server.url, uri, fx.outlet_dir)
    wait_all_stored(fx, uri, [successor], client)
    assert successor.stop(signal.SIGTERM) < 30
    assert_each_listed_article_once(fx, uri)


# -- an unreachable database ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["crawl", "worker"])
def test_unreachable_database_is_one_line_naming_it(demo_outlet, redis_server, command):
    fx = demo_outlet("healthy", articles=10)
    store = "postgresql://127.0.0.1:1/x"
    args = {"crawl": ["crawl", fx.name], "worker": ["worker", "--redis", redis_server.url]}
    result = run_crawler(*args[command], "--outlets-dir", str(fx.outlet_dir), "--store", store,
                         timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "PostgreSQL at 127.0.0.1:1" in lines[0]
    assert fx.hits() == 0  # nothing crawled that could not be stored
