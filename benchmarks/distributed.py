"""The distributed mode against a standalone crawl: throughput, Redis commands and CPU per
stored article.

    .venv/bin/python benchmarks/distributed.py [--articles 600] [--rounds 3] [--delay 0.02]
        [--scenario N]... [--worker-set NAME=VALUE]... [--keep DIR]

The demo outlet is served by its own process (``python -m crawler.demo.server --delay D``),
so the server's CPU is not counted, and each answer waits D seconds, as a real outlet's
would. Three scenarios: 1 mirror "healthy" with the delay, 2 the same without it, 3 mirrors
"dead,seized,healthy" with the delay. Each runs three variants, as a user would, interleaved
round by round (the machine may be shared):

    a  python -m crawler.cli crawl demonews --outlets-dir DIR --store sqlite:///FRESH.db
    b  python -m crawler.cli worker --redis URL --store sqlite:///FRESH.db --outlets-dir DIR
       (started, and ready: it logged "taking work from Redis"), then
       python -m crawler.cli schedule demonews --redis URL --outlets-dir DIR
    c  as b with two workers sharing the store

all with ``-s AUTOTHROTTLE_ENABLED=False -s LOG_LEVEL=INFO`` (and millisecond timestamps in
the logs); ``--worker-set`` adds settings to the workers only, to try a change. Every run
gets a fresh SQLite store and, for b and c, a fresh private redis-server
(tests/redis_server.py; never the shared one on 6379).

Columns: "wall s" runs from starting the crawl (a) or the schedule command (b, c) until the
store holds every expected article (its count is polled every 50 ms); "art/s" is stored
articles over it. "sched" is the schedule command's own run, "take" the time from its start
until a worker took a first request (the queue's ZCARD, polled every 10 ms, fell below the
seeds queued; these polls are left out of the Redis figures), "1st art" until the first
article was stored. "CPU ms/art" is user+sys of the crawler or worker processes and
everything under them (forkserver and extraction workers: this process is made a child
subreaper, so orphans are reaped here into RUSAGE_CHILDREN), from their start until they exit
(workers get SIGTERM once all is stored, and drain), per stored article; "main" is the
crawler or worker processes alone, "extract" their descendants, "redis" the Redis server's
own CPU (from /proc) from the schedule until all is stored. Redis commands are
``INFO commandstats`` calls after ``CONFIG RESETSTAT`` just before the schedule command, read
when every article is stored. They count each command run inside a Lua script or a MULTI
block, so one more run per scenario counts client round trips with MONITOR (a MULTI..EXEC
block is one, as is each command sent outside one; commands from scripts are none).
Figures are medians over the rounds; the ratios are of throughput, b/a and c/b.

Measured on a shared 2-CPU machine (load 5-8 from other jobs: the wall time of one variant
varies by up to x1.6 between rounds, so the wall ratios move by +-0.2 from one full run to
the next; CPU figures hold within about 10 %), Redis 7.0.15, defaults (600 articles, 598
expected, 3 rounds, delay 0.02 s), one full run:

    scenario                  b/a      c/b      take s (b)
    healthy, 0.02 s           x1.12    x0.88    0.58
    healthy, no delay         x0.97    x1.15    0.60
    dead,seized,healthy       x0.85    x1.22    0.58

    CPU per stored article, all scenarios: a 10.6-11.1, b 10.7-11.1, c 13.7-14.4 ms;
    of it the main processes: a 4.5-4.6, b 4.7-4.8 ms; Redis server 0.05-0.07 ms/art; a worker
    that starts and stops with no work: 0.86-0.91 s CPU (1.4-1.5 ms/art of this crawl)
    Redis per stored article, one worker: 4.7-4.9 commands, 0.44-0.53 round trips
    (EVALSHA take, acknowledge and push 0.26-0.32, HGET validators 0.13-0.14, SMEMBERS 0.04-0.06)

Before workers took several requests per script, acknowledged with the next take and checked
and queued new requests in one script (one take and one MULTI..EXEC acknowledgement per
request, the dupefilter's HSETNX pipelined per batch), the same machine and day gave, one
scenario at a time: 10.3-11.4 commands and 4.2-4.6 round trips per article (EVALSHA take
1.35-1.76, HSETNX 1.41-1.47, MULTI..EXEC push and acknowledge 1.20-1.22; MONITOR cannot see
a pipeline, so each pipelined HSETNX counted as one: about 3 network round trips), Redis
server 0.13-0.18 ms/art; the workers' own CPU moved within the noise (b main 5.3-5.6 ms
before, 4.7-5.5 after, side by side).

"take" is how soon an idle worker notices the seeds: it looks for queued work every
``SCHEDULER_IDLE_POLL`` (0.2 s), and the schedule command's own run comes first. At 0.02 s
per answer the crawl is CPU-bound here (parsing and extraction), not network-bound; c/b near
1 says so too. With 0.3 s per answer (``--scenario 1 --delay 0.3 --rounds 2``) it is
network-bound: b/a x1.02, c/b x1.64, take 0.53 s; 0.67 round trips per article (EVALSHA
0.39, SMEMBERS 0.13, HGET 0.13: a worker that waits on the network takes fewer requests per
script, and looks for queues more often).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from processes import (
    PYTHON,
    ROOT,
    OutletServer,
    become_subreaper,
    children_cpu,
    count_stored,
    demo_command,
    reap_orphans,
    start_server,
)

sys.path.insert(0, str(ROOT / "tests"))

from redis_server import RedisServer  # noqa: E402

from crawler.distributed.keys import RedisKeys  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KEYS = RedisKeys()
OUTLET = "demonews"
TARGET = 0.10  # b may be at most this much slower than a
LOG_FORMAT = "%(asctime)s.%(msecs)03d [%(name)s] %(levelname)s: %(message)s"
SETTINGS = ["-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=INFO",
            "-s", f"LOG_FORMAT={LOG_FORMAT}", "-s", "LOG_DATEFORMAT=%H:%M:%S"]
RUN_TIMEOUT = 300.0
#: commands this script sends itself during a run, left out of the figures
OWN_COMMANDS = {"zcard", "config|resetstat", "info", "monitor", "ping"}


# -- processes -------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """user+sys seconds of a running process (one we do not reap: the Redis server)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Child:
    """A crawler process whose own CPU is read when it is reaped (wait4), here and only here,
    so that Popen's own polling never reaps it first."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen([PYTHON, "-m", "crawler.cli", *args], cwd=ROOT,
                                            stdout=out, stderr=subprocess.STDOUT)
        self.cpu: float | None = None

    def _reaped(self, flags: int) -> bool:
        if self.cpu is not None:
            return True
        pid, status, usage = os.wait4(self.process.pid, flags)
        if pid == 0:
            return False
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime
        return True

    def exited(self) -> bool:
        return self._reaped(os.WNOHANG)

    def wait(self, timeout: float) -> bool:
        """Wait for the process to exit by itself; False if it is still running."""
        until = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > until:
                return False
            time.sleep(0.01)
        return True

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (a worker drains and exits), then SIGKILL after ``timeout``."""
        if not self.exited():
            self.process.send_signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.process.kill()
            self._reaped(0)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    variant: str
    wall: float
    #: from the start until the first article is stored
    first_stored: float
    stored: int
    #: crawler/worker processes and all their descendants; the processes alone
    cpu: float
    main_cpu: float
    redis_cpu: float = 0.0
    #: b, c: the schedule command's run, and the start until a worker took a first request
    schedule_wall: float = 0.0
    taken: float = 0.0
    commands: Counter = field(default_factory=Counter)
    logs: list[Path] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.stored / self.wall

    def ms_per_article(self, seconds: float) -> float:
        return seconds / self.stored * 1000


class RunFailed(RuntimeError):
    pass


def wait_stored(store: Path, expected: int, started: float, crawlers: list[Child],
                may_exit: bool = False) -> tuple[float, float]:
    """Poll the store until it holds ``expected`` articles; returns (first stored, all
    stored) as perf_counter times."""
    first = None
    while True:
        count = count_stored(store)
        now = time.perf_counter()
        if count and first is None:
            first = now
        if count >= expected:
            return first, now
        if now - started > RUN_TIMEOUT:
            raise RunFailed(f"{count} of {expected} stored after {RUN_TIMEOUT:.0f} s")
        for crawler in crawlers:
            if crawler.exited() and not (may_exit and crawler.process.returncode == 0):
                raise RunFailed(f"{crawler.log.name} exited ({crawler.process.returncode}) "
                                f"with {count} of {expected} stored")
            if crawler.exited():  # a finished crawl: the store is complete
                count = count_stored(store)
                if count < expected:
                    raise RunFailed(f"the crawl finished with {count} of {expected} stored")
        time.sleep(0.05)


def run_standalone(server: OutletServer, work: Path, name: str) -> Run:
    store = work / f"{name}.db"
    cpu_before = children_cpu()
    started = time.perf_counter()
    crawl = Child(["crawl", OUTLET, "--outlets-dir", str(server.outlet_dir),
                   "--store", f"sqlite:///{store}", *SETTINGS], work / f"{name}.log")
    try:
        first, done = wait_stored(store, server.expected, started, [crawl], may_exit=True)
        crawl.wait(120)  # it finishes by itself
    finally:
        crawl.stop(timeout=5)
    if crawl.process.returncode != 0:
        raise RunFailed(f"the crawl exited {crawl.process.returncode}; see {crawl.log}")
    reap_orphans(exclude={server.process.pid})
    return Run("a", done - started, first - started, count_stored(store),
               children_cpu() - cpu_before, crawl.cpu, logs=[crawl.log])


def wait_ready(worker: Child, started: float) -> str:
    """The worker's id, once it logs that it takes work from Redis."""
    while True:
        found = re.search(r"Worker (\S+) taking work from Redis", worker.output())
        if found:
            return found.group(1)
        if worker.exited():
            raise RunFailed(f"{worker.log.name} exited ({worker.process.returncode}):\n"
                            + worker.output()[-2000:])
        if time.perf_counter() - started > 60:
            raise RunFailed(f"{worker.log.name} not ready after 60 s")
        time.sleep(0.05)


class RoundTrips:
    """Counts the client round trips Redis sees (MONITOR), by command, in a thread."""

    def __init__(self, redis: RedisServer) -> None:
        self.client = redis.client()
        self.counts: Counter = Counter()
        self.commands = 0
        self._in_multi: set[str] = set()
        self._monitor = self.client.monitor().__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._stop = False
        self._thread.start()

    def _listen(self) -> None:
        with contextlib.suppress(Exception):
            for event in self._monitor.listen():
                if self._stop:
                    return
                self._count(event)

    def _count(self, event: dict) -> None:
        if event.get("client_type") == "lua":
            return
        client = event.get("client_address", "") + ":" + str(event.get("client_port", ""))
        name = event["command"].split(" ", 1)[0].strip('"').lower()
        if name in OWN_COMMANDS:
            return
        self.commands += 1
        if name == "multi":
            self._in_multi.add(client)
        elif name == "exec":
            self._in_multi.discard(client)
            self.counts["MULTI..EXEC"] += 1
        elif client not in self._in_multi:
            self.counts[name.upper()] += 1

    def close(self) -> Counter:
        time.sleep(0.3)  # let the last events arrive
        self._stop = True
        with contextlib.suppress(Exception):
            self._monitor.connection.disconnect()
        self._thread.join(2)
        self.client.close()
        return self.counts


def run_workers(server: OutletServer, work: Path, name: str, workers: int, extra: list[str],
                monitor: bool = False) -> tuple[Run, Counter | None]:
    store = work / f"{name}.db"
    cpu_before = children_cpu()
    redis = RedisServer().start()
    client = redis.client()
    own_zcard = 0
    crew: list[Child] = []
    trips: RoundTrips | None = None
    try:
        ready = time.perf_counter()
        crew = [Child(["worker", "--redis", redis.url, "--store", f"sqlite:///{store}",
                       "--outlets-dir", str(server.outlet_dir), *SETTINGS, *extra],
                      work / f"{name}-worker{i}.log") for i in range(workers)]
        for worker in crew:
            wait_ready(worker, ready)
        client.config_resetstat()
        trips = RoundTrips(redis) if monitor else None
        redis_before = process_cpu(redis.process.pid)
        started = time.perf_counter()
        schedule = Child(["schedule", OUTLET, "--redis", redis.url,
                          "--outlets-dir", str(server.outlet_dir)], work / f"{name}-schedule.log")
        if not schedule.wait(60):
            schedule.stop(timeout=5)
        scheduled = time.perf_counter()
        if schedule.process.returncode != 0:
            raise RunFailed(f"schedule exited {schedule.process.returncode}:\n"
                            + schedule.output())
        seeds = schedule.output().count("queued ")
        # the first take: the seeds' queue shrinks
        while True:
            own_zcard += 1
            if client.zcard(KEYS.queue(OUTLET)) < seeds:
                taken = time.perf_counter()
                break
            if time.perf_counter() - started > 60:
                raise RunFailed("no worker took a request within 60 s")
            time.sleep(0.01)
        first, done = wait_stored(store, server.expected, started, crew)
        redis_cpu = process_cpu(redis.process.pid) - redis_before
        commands = Counter({
            name.removeprefix("cmdstat_"): stat["calls"]
            for name, stat in client.info("commandstats").items()
        })
        commands["zcard"] -= own_zcard
        for own in OWN_COMMANDS:
            if own != "zcard":
                commands.pop(own, None)
        rounds = trips.close() if trips else None
        trips = None
    finally:
        if trips is not None:
            trips.close()
        for worker in crew:
            worker.stop()
        client.close()
    reap_orphans(exclude={server.process.pid, redis.process.pid})
    cpu = children_cpu() - cpu_before
    redis.close()
    for worker in crew:
        if worker.process.returncode != 0:
            raise RunFailed(f"{worker.log.name} exited {worker.process.returncode}:\n"
                            + worker.output()[-2000:])
    run = Run("bc"[workers > 1], done - started, first - started, count_stored(store),
              cpu - schedule.cpu, sum(w.cpu for w in crew), redis_cpu,
              schedule_wall=scheduled - started, taken=taken - started, commands=+commands,
              logs=[w.log for w in crew])
    return run, rounds


def idle_worker_cpu(server: OutletServer, work: Path, extra: list[str]) -> float:
    """CPU seconds of a worker (and its descendants) that starts, finds no work and stops:
    the fixed cost in every worker's figure."""
    cpu_before = children_cpu()
    with RedisServer() as redis:
        worker = Child(["worker", "--redis", redis.url, "--store",
                        f"sqlite:///{work / 'idle.db'}", "--outlets-dir", str(server.outlet_dir),
                        *SETTINGS, *extra], work / "idle-worker.log")
        try:
            wait_ready(worker, time.perf_counter())
        finally:
            worker.stop()
        reap_orphans(exclude={server.process.pid, redis.process.pid})
        return children_cpu() - cpu_before


# -- the benchmark ---------------------------------------------------------------------------

VARIANTS = {
    "a": "a  crawl (standalone)",
    "b": "b  schedule + 1 worker",
    "c": "c  schedule + 2 workers",
}


def run_variant(variant: str, server: OutletServer, work: Path, name: str,
                worker_settings: list[str]) -> Run:
    if variant == "a":
        return run_standalone(server, work, name)
    return run_workers(server, work, name, 1 if variant == "b" else 2, worker_settings)[0]


def median(values) -> float:
    return statistics.median(list(values))


def print_run(label: str, run: Run) -> None:
    print(f"  {label:<12} {run.variant}  {run.stored:>5} stored  {run.wall:>6.2f} s "
          f"(first stored {run.first_stored:5.2f})  {run.per_second:>6.1f} art/s  "
          f"CPU {run.ms_per_article(run.cpu):6.2f} ms/art", flush=True)


def summarise(runs: dict[str, list[Run]]) -> dict[str, float]:
    print(f"  {'variant':<24} {'wall s':>7} {'art/s':>6} {'sched':>6} {'take':>6} "
          f"{'1st art':>7} {'CPU ms/art':>10} {'main':>6} {'extract':>7} {'redis':>6}")
    rates = {}
    for variant, label in VARIANTS.items():
        rows = runs[variant]
        rates[variant] = median(r.per_second for r in rows)
        distributed = variant != "a"

        def column(value, width: int, rows=rows, distributed=distributed) -> str:
            if not distributed:
                return f"{'-':>{width}}"
            return f"{median(value(r) for r in rows):>{width}.2f}"

        print(f"  {label:<24} {median(r.wall for r in rows):>7.2f} {rates[variant]:>6.1f} "
              f"{column(lambda r: r.schedule_wall, 6)} {column(lambda r: r.taken, 6)} "
              f"{median(r.first_stored for r in rows):>7.2f} "
              f"{median(r.ms_per_article(r.cpu) for r in rows):>10.2f} "
              f"{median(r.ms_per_article(r.main_cpu) for r in rows):>6.2f} "
              f"{median(r.ms_per_article(r.cpu - r.main_cpu) for r in rows):>7.2f} "
              f"{column(lambda r: r.ms_per_article(r.redis_cpu), 6)}")
    ratio_ba, ratio_cb = rates["b"] / rates["a"], rates["c"] / rates["b"]
    verdict = "meets" if ratio_ba >= 1 - TARGET else "misses"
    # as if the worker had taken the seeds the moment the schedule command had queued them
    prompt = median(r.stored / (r.wall - r.taken + r.schedule_wall) for r in runs["b"])
    print(f"  throughput b/a x{ratio_ba:.2f} ({verdict} the {TARGET:.0%} target), "
          f"c/b x{ratio_cb:.2f}; b/a without b's wait from queued seeds to first take "
          f"(median {median(r.taken - r.schedule_wall for r in runs['b']):.2f} s): "
          f"x{prompt / rates['a']:.2f}")
    return {"b/a": ratio_ba, "c/b": ratio_cb, "b/a prompt": prompt / rates["a"]}


def print_commands(b_runs: list[Run], trips: Counter | None, trips_stored: int) -> None:
    stored = sum(r.stored for r in b_runs)
    calls: Counter = sum((r.commands for r in b_runs), Counter())
    total = sum(calls.values())
    print(f"  Redis commands per stored article, one worker (INFO commandstats, "
          f"{len(b_runs)} runs): {total / stored:.2f}")
    for command, count in calls.most_common(10):
        print(f"    {command:<18} {count / stored:6.2f}")
    if trips is not None and trips_stored:
        print(f"  client round trips per stored article (MONITOR, one run): "
              f"{sum(trips.values()) / trips_stored:.2f}")
        for command, count in trips.most_common(10):
            print(f"    {command:<18} {count / trips_stored:6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.02,
                        help="seconds the demo server waits before each answer")
    parser.add_argument("--scenario", type=int, action="append", choices=(1, 2, 3),
                        help="run only this scenario (repeatable): 1 healthy, 2 healthy "
                             "without delay, 3 dead,seized,healthy")
    parser.add_argument("--worker-set", action="append", default=[], metavar="NAME=VALUE",
                        help="extra setting for the workers only (repeatable)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the stores and logs in this directory")
    args = parser.parse_args()

    if not become_subreaper():
        print("warning: cannot become a child subreaper; forkserver CPU may be missed",
              file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    logs = args.keep or work
    logs.mkdir(parents=True, exist_ok=True)
    scenarios = [("healthy", args.delay), ("healthy", 0.0), ("dead,seized,healthy", args.delay)]
    worker_settings = [f for setting in args.worker_set for f in ("-s", setting)]
    print(f"{args.articles} articles, {args.rounds} rounds; settings: {' '.join(SETTINGS)}"
          + (f"; workers also {' '.join(worker_settings)}" if worker_settings else ""))
    ratios = []
    try:
        for number, (behaviours, delay) in enumerate(scenarios, 1):
            if args.scenario and number not in args.scenario:
                continue
            command = demo_command(args.articles, behaviours, work / f"outlets{number}", delay)
            server = start_server(command)
            try:
                print(f"\n[{number}] mirrors {behaviours}, delay {delay} s per answer: "
                      f"{server.expected} articles expected", flush=True)
                runs: dict[str, list[Run]] = {v: [] for v in VARIANTS}
                order = list(VARIANTS)
                for n in range(1, args.rounds + 1):
                    for variant in order[n - 1:] + order[:n - 1]:  # interleaved
                        run = run_variant(variant, server, logs, f"s{number}-r{n}-{variant}",
                                          worker_settings)
                        runs[variant].append(run)
                        print_run(f"round {n}", run)
                monitored, trips = run_workers(server, logs, f"s{number}-monitor", 1,
                                               worker_settings, monitor=True)
                print_run("MONITOR", monitored)
                idle = idle_worker_cpu(server, logs, worker_settings)
                print()
                ratios.append((behaviours, delay, summarise(runs)))
                print(f"  fixed cost: a worker that starts and stops with no work takes "
                      f"{idle:.2f} s CPU ({idle / server.expected * 1000:.2f} ms per article "
                      f"of this crawl)")
                print_commands(runs["b"], trips, monitored.stored)
            finally:
                server.stop()
    except RunFailed as exc:
        print(f"\nrun failed: {exc}\nlogs in {logs}", file=sys.stderr)
        return 1
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    print("\nthroughput ratios (medians of articles/s):")
    for behaviours, delay, ratio in ratios:
        print(f"  {behaviours:<20} delay {delay:<5} b/a x{ratio['b/a']:.2f}  "
              f"c/b x{ratio['c/b']:.2f}  (b/a without the wait for the first take "
              f"x{ratio['b/a prompt']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
