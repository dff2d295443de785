"""Distributed mode: several `crawler worker` processes on one private redis-server, crawling
the demo outlet on loopback."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
from conftest import run_crawler, store_count, stored_records, wait_for

from crawler.core.outlets import load_outlet_file
from crawler.demo.site import VIDEO
from crawler.distributed.keys import RedisKeys
from crawler.distributed.mirrors import RedisMirrorHealth, parse_mirror_state

KEYS = RedisKeys()


def schedule(fx, redis_url, *args):
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", redis_url, *args)
    assert result.returncode == 0, result.stderr
    return result


def assert_each_listed_article_once(fx, store):
    records = stored_records(store)
    urls = [r["canonical_url"] for r in records]
    assert len(urls) == len(set(urls))
    assert set(urls) == fx.expected_articles()
    for record in records:
        assert record["text"] == fx.truth(record["canonical_url"]).text


def assert_redis_drained(client):
    """Nothing queued and nothing leased: every request reached its final outcome."""
    for key in client.scan_iter(match=f"{KEYS.prefix}:queue:*"):
        assert client.zcard(key) == 0, key
    for key in client.scan_iter(match=f"{KEYS.prefix}:inflight:*"):
        assert client.hlen(key) == 0, key


def all_stored(fx, store):
    return lambda: store_count(store) >= len(fx.expected_articles())


def test_three_workers_one_killed_mid_crawl_lose_nothing(
    demo_outlet, redis_server, workers, tmp_path
):
    fx = demo_outlet("dead", "seized", "hanging", "flaky", "healthy", articles=150,
                     delay=0.03)
    store = f"sqlite:///{tmp_path}/crawl.db"
    url = redis_server.url
    crew = [workers(url, store, fx.outlet_dir) for _ in range(3)]
    schedule(fx, url)
    expected = len(fx.expected_articles())
    wait_for(lambda: store_count(store) >= expected // 3, 120, "a third of the articles")
    crew[0].stop(signal.SIGKILL)
    crew.append(workers(url, store, fx.outlet_dir))
    wait_for(all_stored(fx, store), 180, "every article stored")
    # the killed worker's leases went back to the queue and were finished by the others
    client = redis_server.client()
    wait_for(lambda: not any(client.hlen(k) for k in client.scan_iter(f"{KEYS.prefix}:inflight:*")),
             60, "no request left in flight")
    for worker in crew[1:]:
        assert worker.stop(signal.SIGTERM) < 30
        assert worker.process.returncode == 0, worker.output()[-2000:]
    assert_each_listed_article_once(fx, store)
    assert_redis_drained(client)
    # none of them ever served a stored article
    bad = {fx.server(b).base_url for b in ("dead", "seized", "hanging")}
    assert not [r for r in stored_records(store) if r["mirror"] in bad]


def test_sigterm_returns_in_flight_work_and_another_worker_finishes(
    demo_outlet, redis_server, workers, tmp_path
):
    # slow enough (politeness) that the worker is stopped mid-crawl
    fx = demo_outlet("healthy", articles=80, delay=0.2, politeness={"requests_per_second": 8})
    store = f"sqlite:///{tmp_path}/crawl.db"
    first = workers(redis_server.url, store, fx.outlet_dir)
    schedule(fx, redis_server.url)
    client = redis_server.client()
    wait_for(lambda: any(client.hlen(k) for k in client.scan_iter(f"{KEYS.prefix}:inflight:*")),
             60, "requests in flight")
    wait_for(lambda: store_count(store) > 0, 60, "a first article stored")
    assert first.stop(signal.SIGTERM) < 30
    assert first.process.returncode == 0
    assert not any(client.hlen(k) for k in client.scan_iter(f"{KEYS.prefix}:inflight:*"))
    # the rest waits in the queue, nothing leased to the stopped worker
    assert store_count(store) < len(fx.expected_articles())
    assert client.zcard(KEYS.queue(fx.name)) > 0
    second = workers(redis_server.url, store, fx.outlet_dir)
    wait_for(all_stored(fx, store), 180, "every article stored")
    assert second.stop(signal.SIGTERM) < 30
    assert_each_listed_article_once(fx, store)


def test_scheduling_again_fetches_listings_but_no_stored_article(
    demo_outlet, redis_server, workers, tmp_path
):
    fx = demo_outlet("healthy", articles=40)
    store = f"sqlite:///{tmp_path}/crawl.db"
    worker = workers(redis_server.url, store, fx.outlet_dir)
    schedule(fx, redis_server.url)
    wait_for(all_stored(fx, store), 120, "every article stored")
    client = redis_server.client()
    wait_for(lambda: not any(client.hlen(k) for k in client.scan_iter(f"{KEYS.prefix}:inflight:*")),
             60, "the crawl to settle")
    server = fx.server("healthy")
    server.clear_log()
    schedule(fx, redis_server.url)
    wait_for(lambda: len([p for p in server.paths() if p.startswith("/section/")]) >= 4, 60,
             "the section pages fetched again")
    wait_for(lambda: not any(client.zcard(k) for k in client.scan_iter(f"{KEYS.prefix}:queue:*"))
             and not any(client.hlen(k) for k in client.scan_iter(f"{KEYS.prefix}:inflight:*")),
             60, "the second crawl to finish")
    articles = {p for p in server.paths() if p.startswith("/news/")}
    # only the video page, which never gave text and so was given up and forgotten, is retried
    assert articles <= {a.path for a in fx.site.articles if a.kind == VIDEO}
    assert worker.stop(signal.SIGTERM) < 30
    assert_each_listed_article_once(fx, store)


def test_mirror_health_is_shared_between_workers(demo_outlet, redis_server, tmp_path):
    fx = demo_outlet("seized", "healthy", articles=10)
    outlet = load_outlet_file(fx.outlet_file)
    seized, healthy = outlet.mirrors
    client = redis_server.client()

    def health():
        return RedisMirrorHealth(None, client, KEYS, failure_threshold=3, cooldown=0.5,
                                 refresh=0.0)

    one, two = health(), health()
    assert two.choose(outlet) == seized
    one.record_failure(outlet.name, seized, "block page", strong=True)
    # the other worker stops sending to it, and knows only a mirror check may probe it
    assert not two.is_up(outlet, seized)
    assert two.choose(outlet) == healthy
    assert two.checked_only(outlet) == {seized}
    # after the cool-down exactly one worker wins the check
    wait_for(lambda: two.due_checks(outlet) == [seized], 5, "the cool-down to pass",
             interval=0.05)
    assert two.next_probe_in(outlet) is None  # no document probes it
    wins = [one.claim_probe(outlet.name, seized), two.claim_probe(outlet.name, seized)]
    assert sorted(wins) == [False, True]
    # a page served to a document still in flight does not bring it back; the check does
    one.record_success(outlet.name, seized)
    assert not two.is_up(outlet, seized) and two.checked_only(outlet) == {seized}
    one.record_success(outlet.name, seized, serves_outlet=True)
    assert two.is_up(outlet, seized) and two.checked_only(outlet) == frozenset()

    # a mirror that could not serve is probed by a document, as before
    for _ in range(3):
        one.record_failure(outlet.name, healthy, "connection refused")
    assert not two.is_up(outlet, healthy) and two.checked_only(outlet) == frozenset()
    wait_for(lambda: two.next_probe_in(outlet) == 0, 5, "the cool-down to pass",
             interval=0.05)
    picks = [one.choose(outlet, exclude={seized}), two.choose(outlet, exclude={seized})]
    assert sorted(picks, key=str) == sorted([healthy, None], key=str)
    one.record_success(outlet.name, healthy)
    assert two.is_up(outlet, healthy)

    # a state written before there was evidence reads as service evidence
    client.hset(KEYS.mirrors(outlet.name), seized, f"3|{10 ** 15}|connection refused")
    state = parse_mirror_state(client.hget(KEYS.mirrors(outlet.name), seized))
    assert (state.failures, state.evidence) == (3, "service")
    assert health().checked_only(outlet) == frozenset()


def test_a_seized_mirror_found_by_one_worker_is_avoided_by_all(
    demo_outlet, redis_server, workers, tmp_path
):
    fx = demo_outlet("seized", "healthy", articles=60, delay=0.02)
    store = f"sqlite:///{tmp_path}/crawl.db"
    crew = [workers(redis_server.url, store, fx.outlet_dir) for _ in range(3)]
    schedule(fx, redis_server.url)
    wait_for(all_stored(fx, store), 120, "every article stored")
    # strong evidence takes it out for all; only requests already on their way hit it
    assert fx.server("seized").hits() <= 3 * 2 + 4
    for worker in crew:
        assert worker.stop(signal.SIGTERM) < 30


def test_politeness_holds_across_workers(demo_outlet, redis_server, workers, tmp_path):
    fx = demo_outlet("healthy", articles=40, delay=0.3,
                     politeness={"requests_per_second": 4, "concurrency": 2})
    store = f"sqlite:///{tmp_path}/crawl.db"
    crew = [workers(redis_server.url, store, fx.outlet_dir, "-s", "ROBOTSTXT_OBEY=False")
            for _ in range(3)]
    schedule(fx, redis_server.url)
    wait_for(all_stored(fx, store), 180, "every article stored")
    server = fx.server("healthy")
    assert server.max_in_flight <= 2
    starts = sorted(r.started for r in server.requests)
    per_second = Counter(int((t - starts[0]) * 1) for t in starts)
    # at 4 per second, no one-second window sees more than 4 (+1 for window edges)
    assert max(per_second.values()) <= 5, per_second
    for worker in crew:
        assert worker.stop(signal.SIGTERM) < 30


def test_a_redis_restart_mid_crawl_loses_nothing(
    demo_outlet, redis_server_factory, workers, tmp_path
):
    redis_server = redis_server_factory(appendonly=True)
    # politeness keeps the crawl going long enough to pull Redis from under it
    fx = demo_outlet("dead", "healthy", articles=100, politeness={"requests_per_second": 10})
    store = f"sqlite:///{tmp_path}/crawl.db"
    crew = [workers(redis_server.url, store, fx.outlet_dir, "-s", "REDIS_RETRY_MAX=1")
            for _ in range(2)]
    schedule(fx, redis_server.url)
    wait_for(lambda: store_count(store) >= 20, 120, "some articles stored")
    redis_server.stop(kill=True)
    wait_for(lambda: all("Redis unreachable" in w.output() for w in crew), 30,
             "the workers to notice")
    assert store_count(store) < len(fx.expected_articles())
    redis_server.restart(keep_data=True)
    wait_for(all_stored(fx, store), 180, "every article stored")
    for worker in crew:
        assert worker.process.poll() is None, worker.output()[-3000:]
        assert "Redis reachable again" in worker.output()
        assert worker.stop(signal.SIGTERM) < 30
    assert_each_listed_article_once(fx, store)
    assert_redis_drained(redis_server.client())


@pytest.mark.parametrize("command", [["worker"], ["schedule", "presstv"], ["status"]])
def test_unreachable_redis_is_one_line(command):
    result = run_crawler(*command, "--redis", "redis://127.0.0.1:1/0")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach Redis at redis://127.0.0.1:1/0" in lines[0]


def test_status_reports_queues_workers_and_mirrors(demo_outlet, redis_server, workers, tmp_path):
    fx = demo_outlet("dead", "healthy", articles=30, delay=0.05)
    store = f"sqlite:///{tmp_path}/crawl.db"
    worker = workers(redis_server.url, store, fx.outlet_dir)
    schedule(fx, redis_server.url)
    wait_for(all_stored(fx, store), 120, "every article stored")
    result = run_crawler("status", "--redis", redis_server.url, "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    outlet = state["outlets"][fx.name]
    assert outlet["queued"] == 0
    dead = fx.server("dead").base_url
    assert outlet["mirrors"][dead]["up"] is False
    assert [w["alive"] for w in state["workers"]] == [True]
    table = run_crawler("status", "--redis", redis_server.url)
    assert fx.name in table.stdout and "live" in table.stdout
    assert worker.stop(signal.SIGTERM) < 30
