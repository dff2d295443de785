"""A fleet: 20 `crawler worker` processes on one private Redis and one PostgreSQL database,
crawling three outlets at once, each served by its own nginx on loopback as a slow server
(``limit_rate``: a page of median size arrives in about a second, the largest in several).

While they work, a watcher samples the connections each worker holds, as the servers see
them (Redis ``CLIENT LIST``, PostgreSQL ``pg_stat_activity``), and checks them against what
deploy/README.md promises ("Connections per worker"). Run with ``-s`` to see the counts.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import redis
from conftest import run_crawler, wait_for
from nginx_outlet import CORPUS_PAGES, DEMO, has_corpus
from psycopg.conninfo import conninfo_to_dict
from redis_server import free_loopback_port

from crawler.settings import STORE_POOL_SIZE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WORKERS = 20
OUTLETS = 3
#: articles per outlet: the demo site's, or corpus pages (outlet i serves pages 24 i ...)
ARTICLES = 40
#: Redis connections a worker holds at most: its one pool is used by the crawl (the Twisted
#: thread) and by the metrics server's thread while /metrics is scraped (deploy/README.md)
REDIS_PER_WORKER = 2
#: the slow servers' largest pages take up to ten seconds: the crawler's own download timeout
#: (20 s), not the tests' short one (conftest.FAST)
SETTINGS = ("-s", "DOWNLOAD_TIMEOUT=20")


# -- which worker holds which connection -------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:  # a process may end while it is read (an extraction worker replaced, say)
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                todo += [int(p) for p in (task / "children").read_text().split()]
    return pids


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for process in _descendants(pid):
        try:
            fds = list(Path(f"/proc/{process}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _local_ports() -> dict[int, int]:
    """Socket inode -> local port of every TCP socket in this network namespace."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            ports[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return ports


def held_ports(pids: dict[str, int]) -> dict[int, str]:
    """Local port -> worker, for every TCP socket a worker's processes hold right now."""
    by_inode = _local_ports()
    held = {}
    for name, pid in pids.items():
        for inode in _socket_inodes(pid):
            if inode in by_inode:
                held[by_inode[inode]] = name
    return held


class ConnectionWatch(threading.Thread):
    """Samples, every ``interval`` s, the Redis and PostgreSQL connections of each worker.

    A connection counts for a worker when the server lists it and the worker's processes
    hold its socket both before and after the server was asked: a backend still winding
    down after its client closed does not count, a connection open throughout does.
    """

    def __init__(self, redis_url: str, pg_uri: str, crew: dict[str, int],
                 metrics: dict[str, int], interval: float = 0.25) -> None:
        super().__init__(daemon=True, name="connection-watch")
        self.redis = redis.Redis.from_url(redis_url)
        self.pg = psycopg.connect(pg_uri, autocommit=True)
        self.dbname = conninfo_to_dict(pg_uri)["dbname"]
        self.crew = crew
        self.metrics = metrics
        self.interval = interval
        self.stopping = threading.Event()
        self.samples = 0
        #: the most connections each worker held at once, per server
        self.redis_max: Counter[str] = Counter()
        self.pg_max: Counter[str] = Counter()
        #: the most connections the server listed at once (the watcher's own included)
        self.redis_total_max = 0
        self.pg_total_max = 0
        #: the most connections the workers together held at once
        self.redis_fleet_max = 0
        self.pg_fleet_max = 0
        self.errors: list[str] = []

    def run(self) -> None:
        scraped_at = 0.0
        while not self.stopping.wait(self.interval):
            try:
                if time.monotonic() - scraped_at > 5:  # as Prometheus scrapes the workers
                    self.scrape()
                    scraped_at = time.monotonic()
                self.sample()
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def scrape(self) -> None:
        import urllib.request

        for port in self.metrics.values():
            # a scrape that fails (a worker still starting) is no matter here
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()

    def sample(self) -> None:
        before = held_ports(self.crew)
        clients = self.redis.client_list()
        backends = self.pg.execute(
            "SELECT client_port FROM pg_stat_activity WHERE datname = %s", [self.dbname]
        ).fetchall()
        after = held_ports(self.crew)

        def owners(ports):
            return Counter(before[p] for p in ports if p in before and after.get(p) == before[p])

        redis_ports = [int(c["addr"].rsplit(":", 1)[1]) for c in clients]
        pg_ports = [port for (port,) in backends if port is not None]
        redis_held, pg_held = owners(redis_ports), owners(pg_ports)
        for counts, maxima in ((redis_held, self.redis_max), (pg_held, self.pg_max)):
            for worker, count in counts.items():
                maxima[worker] = max(maxima[worker], count)
        self.redis_fleet_max = max(self.redis_fleet_max, sum(redis_held.values()))
        self.pg_fleet_max = max(self.pg_fleet_max, sum(pg_held.values()))
        self.redis_total_max = max(self.redis_total_max, len(clients))
        self.pg_total_max = max(self.pg_total_max, len(backends))
        self.samples += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)
        self.redis.close()
        self.pg.close()


# -- the test ---------------------------------------------------------------------------------


def stored(pg_uri: str) -> tuple[int, set[str]]:
    with psycopg.connect(pg_uri) as conn:
        urls = [url for (url,) in conn.execute("SELECT canonical_url FROM articles")]
    return len(urls), set(urls)


def status(redis_url: str) -> dict:
    import json

    result = run_crawler("status", "--json", "--redis", redis_url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_twenty_workers_share_one_redis_and_one_database_within_their_connection_bounds(
    nginx_outlet, redis_server, workers, pg_uri, tmp_path
):
    started = time.monotonic()
    pages = CORPUS_PAGES if has_corpus() else DEMO
    outlets = []
    for i in range(OUTLETS):
        options = (
            {"copies": 1, "corpus_pages": slice(24 * i, 24 * i + ARTICLES), "limit_rate": "16k"}
            if pages == CORPUS_PAGES else {"articles": ARTICLES, "seed": i, "limit_rate": "8k"}
        )
        outlets.append(nginx_outlet("healthy", "healthy", pages=pages, name=f"fleet{i}",
                                    politeness={"concurrency": 8, "requests_per_second": 20},
                                    **options))
    outlet_dir = tmp_path / "outlets"  # one directory naming every outlet, as deployed
    outlet_dir.mkdir()
    for fx in outlets:
        (outlet_dir / fx.outlet_file.name).symlink_to(fx.outlet_file)
    expected = set().union(*(fx.expected_articles() for fx in outlets))

    url = redis_server.url
    metrics = {f"w{n:02d}": free_loopback_port() for n in range(WORKERS)}
    crew = {name: workers(url, pg_uri, outlet_dir, *SETTINGS, metrics_port=port)
            for name, port in metrics.items()}
    watch = ConnectionWatch(url, pg_uri, {n: w.process.pid for n, w in crew.items()}, metrics)
    watch.start()
    try:
        # 20 Python processes importing Scrapy and trafilatura at once, on a small machine
        wait_for(lambda: all("taking work from Redis" in w.output() or w.process.poll() is not None
                             for w in crew.values()), 300, "every worker to start", interval=1)
        assert not [n for n, w in crew.items() if w.process.poll() is not None]
        ready = time.monotonic()
        for fx in outlets:
            result = run_crawler("schedule", fx.name, "--outlets-dir", str(outlet_dir),
                                 "--redis", url)
            assert result.returncode == 0, result.stderr
        wait_for(lambda: stored(pg_uri)[1] >= expected, 300, "every article stored", interval=1)
        crawled = time.monotonic()

        def settled() -> dict | None:
            state = status(url)
            busy = any(o["queued"] or o["in_flight"] or o["waiting"]
                       for o in state["outlets"].values())
            return None if busy else state

        state = wait_for(settled, 60, "nothing queued, in flight or waiting", interval=1)
        live = [w for w in state["workers"] if w["alive"]]
        assert len(live) == WORKERS, state["workers"]
        table = run_crawler("status", "--redis", url)  # as an operator reads it
        assert table.returncode == 0, table.stderr
        assert len(re.findall(r"\blive\b", table.stdout)) == WORKERS, table.stdout
    finally:
        watch.stop()

    print(f"\nfleet: {WORKERS} workers, {OUTLETS} outlets ({pages} pages), {len(expected)} "
          f"articles; {ready - started:.0f} s to start, {crawled - ready:.0f} s to crawl; "
          f"{watch.samples} connection samples")
    print(f"  Redis: per worker at most {max(watch.redis_max.values(), default=0)} connections "
          f"(workers at 1: {sum(1 for v in watch.redis_max.values() if v == 1)}, "
          f"at 2: {sum(1 for v in watch.redis_max.values() if v == 2)}); "
          f"all workers at once at most {watch.redis_fleet_max}; CLIENT LIST at most "
          f"{watch.redis_total_max}")
    print(f"  PostgreSQL: per worker at most {max(watch.pg_max.values(), default=0)} connections "
          f"(STORE_POOL_SIZE {STORE_POOL_SIZE}); all workers at once at most "
          f"{watch.pg_fleet_max}; pg_stat_activity for the database at most "
          f"{watch.pg_total_max} (the watcher's own and closing backends included)")

    # every article once: as many rows as distinct URLs, and the outlets' articles exactly
    total, urls = stored(pg_uri)
    assert total == len(urls) == len(expected)
    assert urls == expected

    signalled = time.monotonic()
    for worker in crew.values():
        worker.process.send_signal(signal.SIGTERM)
    exits: dict[str, float] = {}
    while len(exits) < WORKERS and time.monotonic() < signalled + 60:
        for name, worker in crew.items():
            if name not in exits and worker.process.poll() is not None:
                exits[name] = time.monotonic() - signalled
        time.sleep(0.05)
    assert len(exits) == WORKERS, f"still running: {sorted(set(crew) - set(exits))}"
    drained = max(exits.values())
    failed = {n: w.process.returncode for n, w in crew.items() if w.process.returncode != 0}
    assert not failed, {n: crew[n].output()[-1500:] for n in failed}
    print(f"  SIGTERM to all: every worker exited within {drained:.1f} s (the first after "
          f"{min(exits.values()):.1f} s)")
    assert drained < 30

    assert not watch.errors, watch.errors[:3]
    assert watch.samples > 20
    assert set(watch.redis_max) == set(watch.pg_max) == set(crew)  # every worker was seen
    assert max(watch.pg_max.values()) <= STORE_POOL_SIZE, watch.pg_max
    assert max(watch.redis_max.values()) <= REDIS_PER_WORKER, watch.redis_max
    assert watch.pg_fleet_max <= WORKERS * STORE_POOL_SIZE
