"""A scale model: what one worker costs Redis, PostgreSQL and its machine per article,
measured on a real crawl, and what 10, 100 and 1,000 workers would need at that rate.

    .venv/bin/python benchmarks/scale.py [--workers 1 --workers 4] [--articles 600]
        [--delay 0.05] [--per-worker-rate R]

For each worker count N: the demo outlet in its own process (``python -m crawler.demo.server
--delay D``: each answer waits D seconds), a fresh private redis-server (tests/redis_server.py)
and a fresh database on the tests' PostgreSQL (tests/pg_server.py), N ``crawler worker``
processes (started and ready: "taking work from Redis"), then ``crawler schedule``, until the
database holds every expected article; then SIGTERM, and the servers' counters are read:

- CPU: user+sys of each worker and everything under it (forkserver, extraction), from /proc,
  from the schedule until all is stored; RSS: the most a worker process had (VmRSS), and
  the most its whole tree had by PSS (shared pages counted once), sampled every 0.5 s.
- Redis: ``INFO commandstats`` calls (commands inside Lua scripts and MULTI blocks included)
  and ``total_net_input_bytes`` + ``total_net_output_bytes``, after ``CONFIG RESETSTAT``
  just before the schedule; the server's own CPU (/proc); ``used_memory`` once all is
  stored against before the schedule (what a crawl leaves behind: the dupefilter, validators,
  mirror state), MEMORY USAGE of the dupefilter's keys per URL it holds, and of a queue per
  request queued (at its largest, sampled); client connections at most (CLIENT LIST).
- PostgreSQL: ``pg_stat_database.xact_commit`` of the database (less this script's own polls)
  and ``pg_stat_user_tables`` rows inserted and updated, read after the workers exited (a
  backend reports its counters when it ends); connections at most (``pg_stat_activity``).

The model then takes a worker's rate (articles per second, measured with one worker unless
``--per-worker-rate``) and multiplies: Redis commands/s, Redis CPU, PostgreSQL connections
(the bound, ``STORE_POOL_SIZE`` each) and transactions and rows per second, for 10, 100 and
1,000 workers, and names the first limit each count meets. The limits are PostgreSQL's
default ``max_connections`` (100, of which 3 are reserved for superusers), one Redis core
(Redis runs commands on one thread: the measured Redis CPU per article, scaled) and a round
100,000 commands/s for that core. Redis memory does not grow with workers but with URLs
seen: per day of ``DUPEFILTER_RETENTION_DAYS`` at the fleet's rate, at the 14 bytes a URL
that benchmarks/dupefilter.py measures at a million URLs (a small crawl's dupefilter is
mostly its empty buckets).

Measured on a shared 2-CPU machine (load 3-8 from other jobs and a test run; Redis 7.0,
PostgreSQL 15), defaults (600 articles, 598 expected, delay 0.05 s, workers 1 and 4), with
batched takes and acknowledgements (SCHEDULER_TAKE_BATCH 8):

                                                      1 worker   4 workers
  articles per second per worker                          81.2        27.1
  worker CPU ms/article (with extraction)                 10.0        12.0
  worker RSS MiB (main process, most)                      122         127
  worker PSS MiB (with forkserver, extraction)             205         196
  Redis commands/article                                   4.6         5.4
  Redis network bytes/article                             1752        1942
  Redis server CPU ms/article                             0.07        0.07
  Redis used_memory growth, bytes/article                 1080        1211
    of it dupefilter, bytes/URL (URLs/article)       86 (1.13)   86 (1.13)
  Redis bytes per queued request (largest queue)      761 (14)    769 (14)
  Redis client connections (most)                            1           4
  PostgreSQL commits/article                              0.14        0.15
  PostgreSQL rows written/article                         1.00        1.00
  PostgreSQL connections (most)                              1           4

  model at 81.2 articles/s per worker (one worker here, CPU-bound), costs of the 4-worker run:
   workers   art/s  Redis cmd/s  Redis CPU Redis MB/s Redis MB/day  PG conns PG commit/s PG rows/s
        10     812        4,400        5%        1.6        1,108        20         119       812
       100    8116       43,998       54%       15.8       11,081       200       1,194     8,116
      1000   81155      439,975      543%      157.6      110,805      2000      11,943    81,155
  limits, in the order met: PostgreSQL max_connections (100, without PgBouncer) at 48 workers;
  Redis's one core at 184 workers; 100,000 Redis commands/s at 227 workers

  model at 1 article/s per worker (held back by politeness, --per-worker-rate 1):
        10      10           54        0%        0.0           14        20           1        10
       100     100          542        1%        0.2          137       200          15       100
      1000    1000        5,421        7%        1.9        1,365      2000         147     1,000
  limits: PostgreSQL max_connections at 48 workers; Redis's one core at 14,950 workers;
  100,000 Redis commands/s at 18,445 workers

Before takes and acknowledgements were batched (same machine, same defaults): 11.0 and 13.8
Redis commands an article, 0.20 and 0.27 ms of Redis CPU; Redis's core was the limit at 61
CPU-bound workers (3,700 at 1 article/s).

So the first limit is PostgreSQL's connections, at 48 workers (2 each; the fleet test saw 1
per worker, now and then 2): past it, PgBouncer (deploy/README.md) or a larger
``max_connections``. Then Redis's single thread: a fleet that stores about 15,000 articles a
second keeps one Redis core busy (0.07 ms of Redis CPU an article, measured where other jobs
share the CPU): 184 CPU-bound workers, or thousands held back by politeness. Redis
memory grows with URLs, not workers: about 14 bytes per URL (at a million URLs; the 87
bytes per URL above is a small crawl's empty buckets), 1.1 URLs an article, plus the queues
(about 760 bytes per queued request). Workers add only their connections: PostgreSQL's
commits (0.15 an article: a batch write a second or per 100 articles, a stored check per
listing page) and rows (1 an article) stay modest at these rates.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from distributed import Child, RunFailed, process_cpu, wait_ready
from processes import (
    ROOT,
    _descendants,
    become_subreaper,
    demo_command,
    reap_orphans,
    start_server,
)

sys.path.insert(0, str(ROOT / "tests"))

from pg_server import NoPostgres, postgres_server  # noqa: E402
from redis_server import RedisServer  # noqa: E402

from crawler.distributed.keys import RedisKeys  # noqa: E402
from crawler.settings import STORE_POOL_SIZE  # noqa: E402

KEYS = RedisKeys()
SETTINGS = ["-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=INFO"]
RUN_TIMEOUT = 600.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: the name of this script's own Redis connections, left out of the counts
OWN = "scale-benchmark"
#: PostgreSQL's default max_connections, less superuser_reserved_connections
PG_CONNECTIONS = 100 - 3
#: a round figure for what one Redis thread runs of simple commands per second
REDIS_OPS = 100_000
#: bytes per URL of the dupefilter at a million URLs (benchmarks/dupefilter.py)
DUPEFILTER_BYTES_PER_URL = 14
FLEETS = (10, 100, 1000)


# -- sampling the workers ----------------------------------------------------------------------


def tree_cpu(root: int) -> dict[int, float]:
    """user+sys seconds of ``root`` and each of its descendants, by pid."""
    cpu = {}
    for pid in (root, *_descendants(root, set())):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return cpu


def kib(path: Path, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Sampler:
    """Every ``interval`` s: each worker's RSS and tree PSS, the largest queue and its memory,
    Redis and PostgreSQL client connections."""

    def __init__(self, roots: list[int], redis_client, queue: str, pg_uri: str, dbname: str,
                 interval: float = 0.5) -> None:
        self.roots = roots
        self.redis = redis_client
        self.queue = queue
        #: ZCARDs sent here, left out of the commands counted
        self.zcards = 0
        self.pg = psycopg.connect(pg_uri.rsplit("/", 1)[0] + "/postgres", autocommit=True)
        self.dbname = dbname
        self.interval = interval
        self.rss_kib = 0
        self.pss_kib = 0
        self.queued = 0
        self.queue_bytes = 0
        self.redis_clients = 0
        self.pg_connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.pg.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self.sample()

    def sample(self) -> None:
        for root in self.roots:
            self.rss_kib = max(self.rss_kib, kib(Path(f"/proc/{root}/status"), "VmRSS"))
            pss = sum(kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss")
                      for pid in (root, *_descendants(root, set())))
            self.pss_kib = max(self.pss_kib, pss)
        queued = self.redis.zcard(self.queue)
        self.zcards += 1
        if queued > self.queued:
            self.queued = queued
            self.queue_bytes = self.redis.memory_usage(self.queue, samples=0) or 0
        clients = [c for c in self.redis.client_list() if c.get("name") != OWN]
        self.redis_clients = max(self.redis_clients, len(clients))
        (count,) = self.pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.dbname]
        ).fetchone()
        self.pg_connections = max(self.pg_connections, count - 1)  # less the script's poll


# -- one run -----------------------------------------------------------------------------------


@dataclass
class Run:
    workers: int
    stored: int
    wall: float
    cpu: float
    rss_kib: int
    pss_kib: int
    redis_cpu: float
    commands: int
    net_bytes: int
    retained_bytes: int
    dupefilter_bytes: int
    urls: int
    queued: int
    queue_bytes: int
    redis_clients: int
    pg_connections: int
    commits: int
    rows: int

    def per_article(self, value: float) -> float:
        return value / self.stored

    @property
    def rate_per_worker(self) -> float:
        return self.stored / self.wall / self.workers


def stored_count(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass('articles')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT count(*) FROM articles").fetchone()[0]


def pg_counters(conn: psycopg.Connection, dbname: str) -> tuple[int, int]:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    (commits,) = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                              [dbname]).fetchone()
    rows = conn.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables"
                        ).fetchone()[0]
    return commits, int(rows)


def enqueued(log: str) -> int:
    return sum(int(n) for n in re.findall(r"'scheduler/enqueued/redis': (\d+)", log))


def run(workers: int, server, pg, work: Path) -> Run:
    redis = RedisServer().start()
    client = redis.client(client_name=OWN)
    crew: list[Child] = []
    try:
        with pg.database() as uri:
            dbname = uri.rsplit("/", 1)[1]
            crew = [Child(["worker", "--redis", redis.url, "--store", uri, "--outlets-dir",
                           str(server.outlet_dir), *SETTINGS], work / f"n{workers}-w{i}.log")
                    for i in range(workers)]
            ready = time.perf_counter()
            for worker in crew:
                wait_ready(worker, ready)
            time.sleep(1)  # the workers' first heartbeats and idle polls
            client.config_resetstat()
            memory_before = client.info("memory")["used_memory"]
            with psycopg.connect(uri, autocommit=True) as reader:
                commits_before, rows_before = pg_counters(reader, dbname)
            # this script's own transactions in the database: the 3 statements above, and 2
            # a poll; each is one transaction (autocommit), counted once its backend ends
            own = 3
            conn = psycopg.connect(uri, autocommit=True)
            redis_before = process_cpu(redis.process.pid)
            cpu_before = [tree_cpu(w.process.pid) for w in crew]
            sampler = Sampler([w.process.pid for w in crew], client, KEYS.queue(server.name),
                              uri, dbname)
            with sampler:
                started = time.perf_counter()
                schedule = Child(["schedule", server.name, "--redis", redis.url,
                                  "--outlets-dir", str(server.outlet_dir)],
                                 work / f"n{workers}-schedule.log")
                schedule.wait(60)
                while (count := stored_count(conn)) < server.expected:
                    own += 2
                    if time.perf_counter() - started > RUN_TIMEOUT:
                        raise RunFailed(f"{count} of {server.expected} stored")
                    if any(w.exited() for w in crew):
                        raise RunFailed("a worker exited")
                    time.sleep(0.2)
                own += 2
                conn.close()
                wall = time.perf_counter() - started
                cpu_after = [tree_cpu(w.process.pid) for w in crew]
            redis_cpu = process_cpu(redis.process.pid) - redis_before
            stats = client.info("stats")
            calls = {name.removeprefix("cmdstat_"): s["calls"]
                     for name, s in client.info("commandstats").items()}
            calls["zcard"] = calls.get("zcard", 0) - sampler.zcards
            commands = sum(n for name, n in calls.items() if name not in
                           ("config|resetstat", "info", "memory|usage", "client|list"))
            net = stats["total_net_input_bytes"] + stats["total_net_output_bytes"]
            retained = client.info("memory")["used_memory"] - memory_before
            dupefilter = sum(client.memory_usage(key, samples=0) or 0
                             for key in client.scan_iter(match=f"{KEYS.dupefilter}*"))
            for worker in crew:
                worker.stop()
            time.sleep(1.5)  # the backends that ended report their counters
            with psycopg.connect(uri, autocommit=True) as reader:
                commits_after, rows_after = pg_counters(reader, dbname)
            logs = "".join(w.output() for w in crew)
            cpu = sum(sum(after.get(pid, 0) - before.get(pid, 0) for pid in after)
                      for before, after in zip(cpu_before, cpu_after, strict=True))
            seeds = schedule.output().count("queued ")
            return Run(
                workers, server.expected, wall, cpu, sampler.rss_kib, sampler.pss_kib,
                redis_cpu, commands, net, retained, dupefilter, enqueued(logs) + seeds,
                sampler.queued, sampler.queue_bytes, sampler.redis_clients,
                sampler.pg_connections, commits_after - commits_before - own,
                rows_after - rows_before,
            )
    finally:
        for worker in crew:
            worker.stop()
        client.close()
        reap_orphans(exclude={server.process.pid, redis.process.pid})
        redis.close()


# -- the report --------------------------------------------------------------------------------


def print_runs(runs: list[Run]) -> None:
    print("\nmeasured, per stored article unless said (CPU and memory per worker)")
    rows = [
        ("articles per second per worker", lambda r: f"{r.rate_per_worker:.1f}"),
        ("worker CPU ms/article (with extraction)", lambda r: f"{r.per_article(r.cpu) * 1e3:.1f}"),
        ("worker RSS MiB (main process, most)", lambda r: f"{r.rss_kib / 1024:.0f}"),
        ("worker PSS MiB (with forkserver, extraction)", lambda r: f"{r.pss_kib / 1024:.0f}"),
        ("Redis commands/article", lambda r: f"{r.per_article(r.commands):.1f}"),
        ("Redis network bytes/article", lambda r: f"{r.per_article(r.net_bytes):.0f}"),
        ("Redis server CPU ms/article", lambda r: f"{r.per_article(r.redis_cpu) * 1e3:.2f}"),
        ("Redis used_memory growth, bytes/article",
         lambda r: f"{r.per_article(r.retained_bytes):.0f}"),
        ("  of it dupefilter, bytes/URL (URLs/article)",
         lambda r: f"{r.dupefilter_bytes / r.urls:.0f} ({r.urls / r.stored:.2f})"),
        ("Redis bytes per queued request (largest queue)",
         lambda r: f"{r.queue_bytes / max(r.queued, 1):.0f} ({r.queued})"),
        ("Redis client connections (most)", lambda r: f"{r.redis_clients}"),
        ("PostgreSQL commits/article", lambda r: f"{r.per_article(r.commits):.2f}"),
        ("PostgreSQL rows written/article", lambda r: f"{r.per_article(r.rows):.2f}"),
        ("PostgreSQL connections (most)", lambda r: f"{r.pg_connections}"),
    ]
    print(f"  {'':<48}" + "".join(f"{f'{r.workers} worker' + 's' * (r.workers > 1):>12}"
                                  for r in runs))
    for label, value in rows:
        print(f"  {label:<48}" + "".join(f"{value(r):>12}" for r in runs))


def print_model(runs: list[Run], rate: float, why: str) -> None:
    base = max(runs, key=lambda r: r.workers)  # per-article costs where most workers shared
    commands = base.per_article(base.commands)
    redis_cpu = base.per_article(base.redis_cpu)
    net = base.per_article(base.net_bytes)
    commits = base.per_article(base.commits)
    rows = base.per_article(base.rows)
    urls = base.urls / base.stored
    print(f"\nmodel: {rate:.1f} articles/s per worker ({why}); per article the costs of the "
          f"{base.workers}-worker run")
    print(f"  {'workers':>8} {'art/s':>7} {'Redis cmd/s':>12} {'Redis CPU':>10} "
          f"{'Redis MB/s':>10} {'Redis MB/day':>12} {'PG conns':>9} {'PG commit/s':>11} "
          f"{'PG rows/s':>9}  first limit")
    for n in FLEETS:
        articles = n * rate
        limits = []
        pg_connections = n * STORE_POOL_SIZE
        if pg_connections > PG_CONNECTIONS:
            limits.append(f"PostgreSQL connections past {PG_CONNECTIONS // STORE_POOL_SIZE} "
                          "workers (PgBouncer)")
        if articles * redis_cpu > 1:
            limits.append(f"Redis's one core past {int(1 / (rate * redis_cpu))} workers")
        if articles * commands > REDIS_OPS:
            limits.append(f"{REDIS_OPS:,} Redis commands/s past "
                          f"{int(REDIS_OPS / (rate * commands))} workers")
        print(f"  {n:>8} {articles:>7.0f} {articles * commands:>12,.0f} "
              f"{articles * redis_cpu:>9.0%} {articles * net / 1e6:>10.1f} "
              f"{articles * 86400 * urls * DUPEFILTER_BYTES_PER_URL / 1e6:>12,.0f} "
              f"{pg_connections:>9} {articles * commits:>11,.0f} {articles * rows:>9,.0f}  "
              f"{limits[0] if limits else '-'}")
    thresholds = sorted([
        (PG_CONNECTIONS // STORE_POOL_SIZE, "PostgreSQL max_connections (100, without PgBouncer)"),
        (int(1 / (rate * redis_cpu)), "Redis's one core (measured CPU per article)"),
        (int(REDIS_OPS / (rate * commands)), f"{REDIS_OPS:,} Redis commands/s"),
    ])
    print("  limits, in the order met: " + "; ".join(f"{what} at {n:,} workers"
                                               for n, what in thresholds))
    print(f"  (Redis MB/day: dupefilter growth at {DUPEFILTER_BYTES_PER_URL} B/URL; PG conns: "
          f"the bound, {STORE_POOL_SIZE} per worker, of {PG_CONNECTIONS} by default)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, action="append",
                        help="worker counts to measure (repeatable; default 1 and 4)")
    parser.add_argument("--articles", type=int, default=600)
    parser.add_argument("--delay", type=float, default=0.05,
                        help="seconds the demo server waits before each answer")
    parser.add_argument("--per-worker-rate", type=float, default=1.0,
                        help="articles/s per worker of a second model (default 1: a worker "
                             "held back by its outlets' politeness, not by its CPU)")
    args = parser.parse_args()
    counts = args.workers or [1, 4]
    become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server = start_server(demo_command(args.articles, "healthy", work / "outlet", args.delay))
    runs = []
    try:
        with postgres_server() as pg:
            for n in counts:
                print(f"{n} workers, {server.expected} articles, delay {args.delay} s ...",
                      flush=True)
                runs.append(run(n, server, pg, work))
    except (RunFailed, NoPostgres) as exc:
        print(f"error: {exc} (logs in {work})", file=sys.stderr)
        return 1
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.stop()
    print_runs(runs)
    one = min(runs, key=lambda r: r.workers)
    print_model(runs, one.rate_per_worker, "as fast as one worker went here, CPU-bound")
    print_model(runs, args.per_worker_rate, "--per-worker-rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
