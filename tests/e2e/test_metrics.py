"""The metrics of README.md ("Metrics") from real crawls of the demo outlet on loopback.

Workers (`crawler worker --metrics-port`) take their work from a private redis-server; their
/metrics is read with urllib and checked against what was stored, what the mirrors logged and
what Scrapy's own stats say. A real Prometheus then scrapes real workers while they crawl and
evaluates every dashboard query and every rule of monitoring/. Last, `crawler crawl
--metrics-port` serves the same families while it runs.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass

import pytest
from conftest import FAST, REPO, crawler_env, run_crawler, store_count, stored_records, wait_for
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_server import PrometheusServer, free_loopback_port, require_prometheus
from test_monitoring_files import (
    ALERTS,
    dashboard_query,
    grafana_outlet_value,
    panel_exprs,
    recorded_names,
)

from crawler.distributed.keys import RedisKeys

KEYS = RedisKeys()
#: the metrics server listens on loopback only in tests (its default serves every interface)
LOOPBACK = ("-s", "METRICS_HOST=127.0.0.1")
OUTCOMES = {"ok", "http_error", "timeout", "connection_error", "blocked"}
#: outcomes that come with a response, so with a download latency
ANSWERED = ("ok", "http_error", "blocked")

#: README.md "Metrics": family -> (type, labels); counters as exposed, with ``_total``
DOCUMENTED: dict[str, tuple[str, set[str]]] = {
    "crawler_requests_total": ("counter", {"outlet", "mirror", "outcome"}),
    "crawler_articles_stored_total": ("counter", {"outlet", "section"}),
    "crawler_extraction_failures_total": ("counter", {"outlet"}),
    "crawler_mirror_up": ("gauge", {"outlet", "mirror"}),
    "crawler_mirror_failovers_total": ("counter", {"outlet"}),
    "crawler_queue_depth": ("gauge", {"outlet"}),
    "crawler_response_seconds": ("histogram", {"outlet"}),
    "crawler_extraction_seconds": ("histogram", set()),
}
#: only the distributed mode has a shared queue
DISTRIBUTED_ONLY = {"crawler_queue_depth"}


# -- reading /metrics ------------------------------------------------------------------------


@dataclass
class Metrics:
    """One scrape of a /metrics endpoint."""

    types: dict[str, str]
    samples: list[Sample]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        types, samples = {}, []
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            samples += [s for s in family.samples if not s.name.endswith("_created")]
        return cls(types, samples)

    def series(self, name: str, **labels: str) -> list[Sample]:
        return [
            s for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def total(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.series(name, **labels))

    def by(self, name: str, label: str, *, zeros: bool = False, **labels: str
           ) -> dict[str, float]:
        """Totals per value of ``label``; counters' zero series are left out unless
        ``zeros`` (every series is exported from the start, at 0)."""
        values: Counter[str] = Counter()
        for sample in self.series(name, **labels):
            values[sample.labels[label]] += sample.value
        return {value: total for value, total in values.items() if total or zeros}

    def type_of(self, name: str) -> str | None:
        # the parser names a counter family without its _total suffix
        return self.types.get(name) or self.types.get(name.removesuffix("_total"))


def metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


def scrape(port: int) -> Metrics | None:
    """The endpoint's metrics, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(metrics_url(port), timeout=5) as response:
            return Metrics.parse(response.read().decode("utf-8"))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def assert_contract_families(*scrapes: Metrics, distributed: bool = True) -> None:
    """Every documented family is declared by each scrape, of its type, and its series
    carry exactly the documented labels; across the scrapes every family has series (a
    labelled family has none on a worker that has not seen such an event yet)."""
    for name, (kind, labels) in DOCUMENTED.items():
        if name in DISTRIBUTED_ONLY and not distributed:
            continue
        suffixes = {"_bucket": {"le"}, "_count": set(), "_sum": set()}
        if kind != "histogram":
            suffixes = {"": set()}
        for metrics in scrapes:
            assert metrics.type_of(name) == kind, (name, metrics.type_of(name))
            for suffix, extra in suffixes.items():
                for sample in metrics.series(name + suffix):
                    assert set(sample.labels) == labels | extra, (name + suffix, sample.labels)
            if kind == "histogram":
                assert_buckets_add_up(metrics, name)
        for suffix in suffixes:
            assert any(m.series(name + suffix) for m in scrapes), f"no series of {name}{suffix}"


def assert_buckets_add_up(metrics: Metrics, name: str) -> None:
    for count in metrics.series(name + "_count"):
        buckets = sorted(
            (float(s.labels["le"]), s.value)
            for s in metrics.series(name + "_bucket")
            if {k: v for k, v in s.labels.items() if k != "le"} == count.labels
        )
        assert buckets[-1] == (math.inf, count.value), (name, count.labels)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets), (name, buckets)


# -- the crawl -------------------------------------------------------------------------------


def schedule(fx, redis_url: str) -> None:
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", redis_url)
    assert result.returncode == 0, result.stderr


def start_worker(workers, redis_url: str, store: str, fx) -> tuple[object, int]:
    """A worker serving metrics on a free loopback port, once /metrics answers."""
    port = free_loopback_port()
    worker = workers(redis_url, store, fx.outlet_dir, *LOOPBACK, metrics_port=port)
    wait_for(lambda: worker.process.poll() is not None or scrape(port), 60,
             f"the worker's metrics on port {port}")
    assert worker.process.poll() is None, worker.output()[-3000:]
    return worker, port


def settled(client, fx, store: str):
    """True once every listed article is stored and Redis holds no queued or leased work."""
    def check() -> bool:
        return (
            store_count(store) >= len(fx.expected_articles())
            and not any(client.zcard(k) for k in client.scan_iter(f"{KEYS.prefix}:queue:*"))
            and not any(client.hlen(k) for k in client.scan_iter(f"{KEYS.prefix}:inflight:*"))
        )
    return check


def server_answers(server) -> int:
    """Requests a mirror answered, robots.txt aside (it is not an outlet document)."""
    return sum(1 for r in server.requests if r.path != "/robots.txt" and r.status is not None)


def video_pages_served(fx) -> int:
    """Times the video page (no text at all) went out as a 200 that is not a block page:
    each of those reaches extraction and fails there."""
    path = fx.site.video_article.path
    return sum(
        1 for server in fx.servers if server.behaviour != "seized"
        for r in server.requests if r.path == path and r.status == 200
    )


def scrapy_stat(log: str, name: str) -> int:
    """A value from the stats Scrapy dumps when the crawler closes (0 when absent)."""
    found = re.findall(rf"'{re.escape(name)}': (\d+)", log)
    return int(found[-1]) if found else 0


# -- one worker: every family, and values that agree with the store and the mirrors ------------


def test_a_worker_serves_the_contract_families_and_they_agree_with_the_crawl(
    demo_outlet, redis_server, workers, tmp_path
):
    # politeness keeps work queued for a while, so the queue depth is seen above zero
    fx = demo_outlet("dead", "seized", "flaky", "healthy", articles=60,
                     politeness={"requests_per_second": 10})
    dead, seized, flaky, healthy = (fx.server(b) for b in ("dead", "seized", "flaky", "healthy"))
    store = f"sqlite:///{tmp_path}/crawl.db"
    worker, port = start_worker(workers, redis_server.url, store, fx)

    # before any work every mirror counts as in rotation
    idle = scrape(port)
    up = idle.by("crawler_mirror_up", "mirror", zeros=True, outlet=fx.name)
    assert up == dict.fromkeys(fx.mirrors, 1)

    schedule(fx, redis_server.url)
    queued = wait_for(
        lambda: (m := scrape(port)) and m.total("crawler_queue_depth", outlet=fx.name) > 0 and m,
        60, "queued work in crawler_queue_depth",
    )
    assert store_count(store) < len(fx.expected_articles())
    assert queued.series("crawler_worker_up")[0].value == 1
    wait_for(settled(redis_server.client(), fx, store), 120, "the crawl to finish")
    # a stored batch is counted right after it is durable: allow the signal to land
    metrics = wait_for(
        lambda: (m := scrape(port))
        and m.total("crawler_articles_stored_total") >= store_count(store) and m,
        10, "the last stored batch counted",
    )
    assert_contract_families(metrics)

    records = stored_records(store)
    stored = metrics.by("crawler_articles_stored_total", "section", outlet=fx.name)
    assert stored == dict(Counter(r["section"] for r in records))
    assert sum(stored.values()) == len(records) == len(fx.expected_articles())

    # every download is counted once, against the mirror that got it
    outcomes = {
        mirror: metrics.by("crawler_requests_total", "outcome", outlet=fx.name, mirror=mirror)
        for mirror in fx.mirrors
    }
    assert set(metrics.by("crawler_requests_total", "outcome")) <= OUTCOMES
    assert set(outcomes[dead.base_url]) == {"connection_error"}
    assert set(outcomes[seized.base_url]) == {"blocked"}
    assert outcomes[flaky.base_url]["ok"] > 0 and outcomes[flaky.base_url]["http_error"] > 0
    assert outcomes[healthy.base_url]["ok"] > 0
    for server in (seized, flaky, healthy):
        answered = sum(outcomes[server.base_url].get(o, 0) for o in ANSWERED)
        assert answered == server_answers(server), server.behaviour

    up = metrics.by("crawler_mirror_up", "mirror", zeros=True, outlet=fx.name)
    assert (up[dead.base_url], up[seized.base_url], up[healthy.base_url]) == (0, 0, 1)

    failures = metrics.total("crawler_extraction_failures_total", outlet=fx.name)
    assert failures == video_pages_served(fx) > 0
    # each article page that reached extraction was timed once: stored or failed
    assert metrics.total("crawler_extraction_seconds_count") == len(records) + failures
    assert metrics.total("crawler_response_seconds_count", outlet=fx.name) == sum(
        metrics.total("crawler_requests_total", outlet=fx.name, outcome=o) for o in ANSWERED
    )
    assert metrics.total("crawler_queue_depth", outlet=fx.name) == 0
    assert metrics.total("crawler_inflight_requests", outlet=fx.name) == 0

    # the same counts as Scrapy's own stats, dumped when the worker stops
    assert worker.stop(signal.SIGTERM) < 30
    log = worker.output()
    failovers = metrics.total("crawler_mirror_failovers_total", outlet=fx.name)
    assert failovers == scrapy_stat(log, "mirror/failovers") > 0
    for outcome in OUTCOMES:
        counted = metrics.total("crawler_requests_total", outcome=outcome)
        assert counted == scrapy_stat(log, f"mirror/outcome/{outcome}"), outcome
    assert failures == scrapy_stat(log, "extraction/failed/empty")


# -- two workers: the sum over workers is the crawl ------------------------------------------


def test_two_workers_counts_add_up_to_what_was_stored(demo_outlet, redis_server, workers, tmp_path):
    fx = demo_outlet("dead", "seized", "healthy", articles=80, delay=0.02)
    store = f"sqlite:///{tmp_path}/crawl.db"
    crew = [start_worker(workers, redis_server.url, store, fx) for _ in range(2)]
    schedule(fx, redis_server.url)
    wait_for(settled(redis_server.client(), fx, store), 120, "the crawl to finish")

    def both():
        scrapes = [scrape(port) for _, port in crew]
        total = sum(m.total("crawler_articles_stored_total") for m in scrapes if m)
        return all(scrapes) and total >= store_count(store) and scrapes

    scrapes = wait_for(both, 10, "the last stored batches counted")
    records = stored_records(store)
    per_section: Counter[str] = Counter()
    assert_contract_families(*scrapes)
    for metrics in scrapes:
        per_section.update(metrics.by("crawler_articles_stored_total", "section"))
    assert dict(per_section) == dict(Counter(r["section"] for r in records))
    assert sum(per_section.values()) == len(records) == len(fx.expected_articles())

    healthy = fx.server("healthy")
    assert sum(
        m.total("crawler_requests_total", mirror=healthy.base_url, outcome=outcome)
        for m in scrapes for outcome in ANSWERED
    ) == server_answers(healthy)
    assert sum(
        m.total("crawler_extraction_failures_total") for m in scrapes
    ) == video_pages_served(fx)
    for metrics in scrapes:
        # each reports both live workers, and the failing mirrors out of rotation, whichever
        # worker found them failing (the mirror alerts take the max over workers)
        assert [s.value for s in metrics.series("crawler_worker_up")] == [1, 1]
        up = metrics.by("crawler_mirror_up", "mirror", zeros=True, outlet=fx.name)
        states = [up[fx.server(b).base_url] for b in ("dead", "seized", "healthy")]
        assert states == [0, 0, 1], f"crawler_mirror_up of dead, seized, healthy: {states}"
    for worker, _ in crew:
        assert worker.stop(signal.SIGTERM) < 30


# -- a real Prometheus: every dashboard query and rule on real workers ------------------------


def finite(samples: list[dict]) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in samples)


@pytest.fixture
def beat(tmp_path):
    """Start `crawler beat`: ``beat(redis_url, outlet_dir)``; stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(redis_url: str, outlet_dir) -> subprocess.Popen:
        log = (tmp_path / f"beat{len(started)}.log").open("w")
        started.append(subprocess.Popen(
            [sys.executable, "-m", "crawler.cli", "beat", "--redis", redis_url,
             "--outlets-dir", str(outlet_dir), "--tick", "0.2"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=crawler_env(),
        ))
        log.close()
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_prometheus_evaluates_every_panel_and_rule_on_crawling_workers(
    demo_outlet, redis_server, workers, beat, tmp_path
):
    require_prometheus()
    # at 5 requests a second the crawl lasts about half a minute: rates have many samples
    fx = demo_outlet("dead", "seized", "healthy", articles=100,
                     politeness={"requests_per_second": 5})
    store = f"sqlite:///{tmp_path}/crawl.db"
    crew = [start_worker(workers, redis_server.url, store, fx) for _ in range(2)]
    expected = len(fx.expected_articles())
    targets = [f"127.0.0.1:{port}" for _, port in crew]
    problems: list[str] = []
    with PrometheusServer(targets, rule_files=[ALERTS]) as prometheus:
        prometheus.wait_for(
            lambda: [t["health"] for t in prometheus.active_targets()] == ["up", "up"],
            timeout=30, what="both workers scraped",
        )
        # a recurring schedule, run by the beat at once, as in production
        result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                             "--redis", redis_server.url, "--every", "1h")
        assert result.returncode == 0, result.stderr
        beat(redis_server.url, fx.outlet_dir)
        outlets = prometheus.wait_for(
            lambda: prometheus.label_values("outlet", "crawler_requests_total"),
            timeout=30, what="outlet values",
        )
        assert outlets == [fx.name]
        queries = {
            (title, dashboard_query(expr, grafana_outlet_value(outlets)))
            for title, expr in panel_exprs()
        }

        # while work flows, every panel shows a number (not NaN: rates have two samples)
        pending = set(queries)
        while pending and store_count(store) < expected:
            shown = {(title, q) for title, q in pending if finite(prometheus.query(q))}
            if store_count(store) < expected:  # still crawling when they were shown
                pending -= shown
            time.sleep(0.5)
        problems += [f"no number mid-crawl: {title}: {q}" for title, q in sorted(pending)]
        wait_for(settled(redis_server.client(), fx, store), 120, "the crawl to finish")

        # after the crawl: every panel still returns data, every recording rule records
        time.sleep(3)  # a few scrapes of the final counts
        problems += [
            f"no data after the crawl: {title}: {q}"
            for title, q in sorted(queries) if not prometheus.query(q)
        ]
        records = recorded_names()
        deadline = time.monotonic() + 15
        while records and time.monotonic() < deadline:
            records = {name for name in records if not prometheus.query(name)}
            time.sleep(0.5)
        problems += [f"recording rule recorded nothing: {name}" for name in sorted(records)]
        rules = [r for group in prometheus.rules() for r in group["rules"]]
        assert {r["name"] for r in rules} >= recorded_names()
        problems += [
            f"rule {r['name']}: {r['health']} {r.get('lastError')}"
            for r in rules if r["health"] != "ok"
        ]

        # the values Prometheus holds are the crawl's
        stored = prometheus.query("sum(crawler_articles_stored_total)")
        assert float(stored[0]["value"][1]) == store_count(store) == expected
        live = prometheus.query("crawler:live_workers:count")
        assert [s["value"][1] for s in live] == ["2"]
        # what CrawlerMirrorDown and the "Mirrors down" panel see: out on every worker
        down = prometheus.query("max by (mirror) (crawler_mirror_up) == 0")
        failing = {fx.server("dead").base_url, fx.server("seized").base_url}
        if {s["metric"]["mirror"] for s in down} != failing:
            problems.append(
                f"mirrors out of rotation on every worker: {down}, expected {sorted(failing)}"
            )
    assert not problems, "\n".join(problems)
    for worker, _ in crew:
        assert worker.stop(signal.SIGTERM) < 30


# -- standalone: `crawler crawl --metrics-port` ------------------------------------------------


def test_a_standalone_crawl_serves_the_families_while_it_runs(demo_outlet, tmp_path):
    fx = demo_outlet("dead", "seized", "healthy", articles=40,
                     politeness={"requests_per_second": 5})
    store = f"sqlite:///{tmp_path}/crawl.db"
    port = free_loopback_port()
    log = (tmp_path / "crawl.log").open("w")
    crawl = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", fx.name, "--outlets-dir",
         str(fx.outlet_dir), "--store", store, "--metrics-port", str(port),
         "--warc", str(tmp_path / "warc"), *FAST, *LOOPBACK],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=crawler_env(),
    )
    try:
        # mid-crawl: articles stored and the video page failed, the process still crawling
        metrics = wait_for(
            lambda: crawl.poll() is not None
            or ((m := scrape(port)) and m.total("crawler_articles_stored_total") > 0
                and m.total("crawler_extraction_failures_total") > 0 and m),
            120, "stored articles and an extraction failure in the crawl's metrics",
        )
        assert crawl.poll() is None, (tmp_path / "crawl.log").read_text()[-3000:]
        assert isinstance(metrics, Metrics)
        assert_contract_families(metrics, distributed=False)
        assert metrics.series("crawler_queue_depth") == []
        outcomes = metrics.by("crawler_requests_total", "outcome", outlet=fx.name)
        assert {"ok", "connection_error", "blocked"} <= set(outcomes) <= OUTCOMES
        up = metrics.by("crawler_mirror_up", "mirror", zeros=True, outlet=fx.name)
        assert [up[m] for m in fx.mirrors] == [0, 0, 1]
        mid_crawl = metrics.total("crawler_articles_stored_total")
        # an article's records are written before it is stored, and counted as written
        warc_records = metrics.by("crawler_warc_records_total", "outlet")
        assert warc_records.get(fx.name, 0) >= mid_crawl > 0
        warc_bytes = metrics.total("crawler_warc_bytes_total", outlet=fx.name)
        assert crawl.wait(120) == 0, (tmp_path / "crawl.log").read_text()[-3000:]
    finally:
        if crawl.poll() is None:
            crawl.kill()
            crawl.wait()
        log.close()
    assert mid_crawl < store_count(store) == len(fx.expected_articles())
    # what was counted is in the files (which only grew since), beside their warcinfo records
    assert 0 < warc_bytes < sum(f.stat().st_size for f in (tmp_path / "warc").iterdir())
    # the metrics server went away with the crawl
    assert scrape(port) is None
