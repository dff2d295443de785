"""Redis memory and commands per URL: CompactDupeFilter against scrapy-redis's RFPDupeFilter.

Each filter gets its own private redis-server (default configuration) and records N distinct
URLs' fingerprints, pipelined in batches. Bytes per URL come from Redis's own figures: the
growth of INFO ``used_memory``, and MEMORY USAGE of the filter's keys (all of them, and an
estimate from a sample). Commands per ``request_seen()`` are counted on 2,000 real requests
(each asked twice: new, then seen): round trips sent by the client, and commands Redis ran
(INFO commandstats, including those inside the Lua script).

    .venv/bin/python benchmarks/dupefilter.py [--urls N] [--buckets B]

Exits 1 if CompactDupeFilter needs more than 16 bytes per URL (by used_memory), or if it
took any new URL for seen.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from scrapy import Request
from scrapy.utils.test import get_crawler
from scrapy_redis.dupefilter import RFPDupeFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from redis_server import RedisServer  # noqa: E402

from crawler.distributed.dupefilter import (  # noqa: E402
    DEFAULT_BUCKETS,
    CompactDupeFilter,
)

LIMIT_BYTES_PER_URL = 16.0
SAMPLE_KEYS = 64
COMMAND_SAMPLE = 2000


class CountingRedis(redis.Redis):
    """Counts the commands the client sends (pipelines count as one round trip)."""

    sent = 0

    def execute_command(self, *args, **options):
        CountingRedis.sent += 1
        return super().execute_command(*args, **options)


@dataclass
class Result:
    name: str
    urls: int
    seconds: float
    used_memory: int
    memory_usage_all: int
    memory_usage_sampled: float  # bytes per URL estimated from a sample of keys
    false_positives: int
    round_trips: float = 0.0
    server_commands: float = 0.0
    command_detail: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def per_url(self) -> float:
        return self.used_memory / self.urls


def url_fingerprints(count: int, batch: int) -> Iterator[list[bytes]]:
    """SHA1 fingerprints (what Scrapy's fingerprinter returns) of distinct article URLs."""
    for start in range(0, count, batch):
        yield [
            hashlib.sha1(b"https://www.presstv.ir/Detail/2024/01/01/%d/" % n).digest()
            for n in range(start, min(count, start + batch))
        ]


def used_memory(client: redis.Redis) -> int:
    return client.info("memory")["used_memory"]


def memory_usage(client: redis.Redis, keys: list) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return pipe.execute()


def server_commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): value["calls"]
        for name, value in stats.items()
        # leave out what the benchmark and the connection set-up ask
        if not name.startswith(
            ("cmdstat_info", "cmdstat_config", "cmdstat_hello", "cmdstat_client")
        )
    }


def count_commands(
    server: RedisServer, request_seen: Callable[[Request], bool], result: Result
) -> None:
    """Round trips and server commands per request_seen(), half new and half seen."""
    requests = [Request(f"https://x.test/Detail/2024/02/02/{n}/") for n in range(COMMAND_SAMPLE)]
    with server.client() as admin:
        admin.config_resetstat()
        sent_before = CountingRedis.sent
        answers = [request_seen(request) for request in requests + requests]
        calls = server_commands(admin)
    assert answers == [False] * COMMAND_SAMPLE + [True] * COMMAND_SAMPLE
    lookups = 2 * COMMAND_SAMPLE
    result.round_trips = (CountingRedis.sent - sent_before) / lookups
    result.server_commands = sum(calls.values()) / lookups
    result.command_detail = {name: count / lookups for name, count in sorted(calls.items())}


def bench_compact(urls: int, batch: int, buckets: int, retention_days: float | None) -> Result:
    name = "CompactDupeFilter, " + (
        "no retention" if retention_days is None else f"retention {retention_days:g} d"
    )
    with RedisServer() as server, server.client() as client:
        settings = {
            "REDIS_URL": server.url,
            "REDIS_PARAMS": {"redis_cls": CountingRedis},
            "DUPEFILTER_BUCKETS": buckets,
            "DUPEFILTER_RETENTION_DAYS": retention_days,
        }
        crawler = get_crawler(settings_dict=settings)
        dupefilter = CompactDupeFilter.from_crawler(crawler)
        dupefilter.fingerprint_seen(b"warm-up: loads the script")
        before = used_memory(client)
        started = time.perf_counter()
        false_positives = 0
        for fingerprints in url_fingerprints(urls, batch):
            false_positives += sum(dupefilter.fingerprints_seen(fingerprints))
        seconds = time.perf_counter() - started
        grown = used_memory(client) - before

        keys = [
            key
            for key in client.scan_iter(match=f"{dupefilter.key}:*", count=1000)
            if not key.endswith(b":layout")
        ]
        usage = memory_usage(client, keys)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hlen(key)
            pipe.object("encoding", key)
        replies = pipe.execute()
        lengths, encodings = replies[0::2], replies[1::2]
        sample = random.Random(1).sample(range(len(keys)), min(SAMPLE_KEYS, len(keys)))
        sampled = sum(usage[i] for i in sample) / sum(lengths[i] for i in sample)
        result = Result(name, urls, seconds, grown, sum(usage), sampled, false_positives)
        not_listpack = sum(encoding != b"listpack" for encoding in encodings)
        result.notes.append(
            f"{len(keys)} bucket keys, {max(lengths)} entries in the fullest (listpack up to "
            f"512), {not_listpack} not listpack"
        )
        recheck = next(url_fingerprints(min(urls, 10_000), 10_000))
        if not all(dupefilter.fingerprints_seen(recheck)):
            result.notes.append("ERROR: some recorded URLs were not seen again")
        count_commands(server, dupefilter.request_seen, result)
    return result


def bench_rfp(urls: int, batch: int) -> Result:
    with RedisServer() as server, server.client() as client:
        dupefilter = RFPDupeFilter(
            CountingRedis.from_url(server.url), key="crawler:dupefilter", debug=False
        )
        client.sadd(dupefilter.key, "warm-up")
        before = used_memory(client)
        started = time.perf_counter()
        false_positives = 0
        for fingerprints in url_fingerprints(urls, batch):
            # what RFPDupeFilter.request_seen() sends: SADD of the 40-character hex SHA1
            pipe = client.pipeline(transaction=False)
            for fingerprint in fingerprints:
                pipe.sadd(dupefilter.key, fingerprint.hex())
            false_positives += sum(added == 0 for added in pipe.execute())
        seconds = time.perf_counter() - started
        grown = used_memory(client) - before
        (usage,) = memory_usage(client, [dupefilter.key])
        sampled = client.memory_usage(dupefilter.key) / client.scard(dupefilter.key)
        result = Result("scrapy-redis RFPDupeFilter", urls, seconds, grown, usage, sampled, 0)
        result.false_positives = false_positives
        result.notes.append(f"one set, {client.object('encoding', dupefilter.key).decode()}")
        count_commands(server, dupefilter.request_seen, result)
    return result


def report(results: list[Result]) -> None:
    print()
    print(
        f"{'filter':<36} {'URLs':>9} {'B/URL used_memory':>18} {'B/URL MEMORY USAGE':>19}"
        f" {'(sampled)':>10} {'round trips':>12} {'server cmds':>12} {'URLs/s':>9}"
    )
    for r in results:
        print(
            f"{r.name:<36} {r.urls:>9} {r.per_url:>18.2f} {r.memory_usage_all / r.urls:>19.2f}"
            f" {r.memory_usage_sampled:>10.2f} {r.round_trips:>12.2f} {r.server_commands:>12.2f}"
            f" {r.urls / r.seconds:>9.0f}"
        )
    print()
    for r in results:
        detail = ", ".join(f"{name} {count:.2f}" for name, count in r.command_detail.items())
        print(f"{r.name}: commands per request_seen: {detail}")
        for note in r.notes:
            print(f"  {note}")
        print(f"  new URLs taken for seen: {r.false_positives}")
    print(
        "\nused_memory: growth of INFO used_memory over the inserts, divided by the URLs;"
        "\nMEMORY USAGE: sum over the filter's keys (SAMPLES 0); sampled: over"
        f" {SAMPLE_KEYS} random bucket keys (compact) or the default 5-member sample (set)."
        "\nround trips: commands the client sent per request_seen(); server cmds: commands"
        " Redis ran, Lua's included (half the requests new, half seen)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="URLs per pipeline")
    parser.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS)
    args = parser.parse_args()

    results = []
    for retention in (None, 365.0):
        print(f"CompactDupeFilter, retention {retention}: {args.urls} URLs...", flush=True)
        results.append(bench_compact(args.urls, args.batch, args.buckets, retention))
    print(f"RFPDupeFilter: {args.urls} URLs...", flush=True)
    results.append(bench_rfp(args.urls, args.batch))
    report(results)

    compact = [r for r in results if r.name.startswith("Compact")]
    failed = False
    for r in compact:
        if r.per_url > LIMIT_BYTES_PER_URL:
            print(f"FAIL: {r.name} uses {r.per_url:.2f} B/URL > {LIMIT_BYTES_PER_URL}")
            failed = True
        if r.false_positives or any(note.startswith("ERROR") for note in r.notes):
            print(f"FAIL: {r.name} answered wrongly")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
