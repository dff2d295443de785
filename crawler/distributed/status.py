"""What the shared Redis state says: for `crawler status` and the metrics collector."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from crawler.context import crawl_context
from crawler.core.outlets import OutletCatalog, OutletError
from crawler.core.redact import redact_text
from crawler.distributed.keys import RedisKeys
from crawler.distributed.mirrors import parse_mirror_state
from crawler.distributed.queue import inflight_by_outlet, open_documents
from crawler.distributed.schedules import Schedules


def read_status(server, keys: RedisKeys, worker_timeout: float) -> dict[str, Any]:
    """Queue depth and leased requests per outlet, workers, mirror health, in one snapshot."""
    queue_outlets = sorted(m.decode() for m in server.smembers(keys.queues))
    pipe = server.pipeline(transaction=False)
    for outlet in queue_outlets:
        pipe.zcard(keys.queue(outlet))
    depths = dict(zip(queue_outlets, pipe.execute(), strict=True))
    inflight, heartbeats = inflight_by_outlet(server, keys)
    seconds, micros = server.time()
    now_ms = seconds * 1000 + micros // 1000
    workers = [
        {"worker": worker, "seconds_since_heartbeat": round((now_ms - beat) / 1000, 1),
         "alive": now_ms - beat < worker_timeout * 1000}
        for worker, beat in sorted(heartbeats.items())
    ]
    mirrors: dict[str, dict[str, Any]] = {}
    prefix = keys.mirrors("")
    for key in server.scan_iter(match=prefix + "*", count=100):
        outlet = key.decode()[len(prefix):]
        for mirror, value in sorted(server.hgetall(key).items()):
            state = parse_mirror_state(value)
            failures, down_until, reason = state.failures, state.down_until, state.reason
            down_for = max(0, down_until - now_ms) / 1000 if down_until else 0
            mirrors.setdefault(outlet, {})[mirror.decode()] = {
                "up": down_until == 0, "consecutive_failures": failures,
                # content: it served something else, and waits for a mirror check
                "evidence": state.evidence,
                # the reason may quote a URL from the web, with a user and password
                "out_for_seconds": round(down_for, 1),
                # under a Retry-After: asked by no one until then, in rotation or not
                "held_for_seconds": round(max(0, state.not_before - now_ms) / 1000, 1),
                "last_failure": redact_text(reason) or None,
            }
    waiting_outlets = sorted(m.decode() for m in server.smembers(keys.waitings))
    pipe = server.pipeline(transaction=False)
    for outlet in waiting_outlets:
        pipe.zcard(keys.waiting(outlet))
    waiting = dict(zip(waiting_outlets, pipe.execute(), strict=True))
    schedules = [asdict(s) for s in Schedules(server, keys).all()]
    outlets = sorted(set(depths) | set(inflight) | set(mirrors) | set(waiting))
    return {
        "time": now_ms / 1000,
        "schedules": schedules,
        "outlets": {
            o: {"queued": depths.get(o, 0), "in_flight": inflight.get(o, 0),
                "waiting": waiting.get(o, 0), "mirrors": mirrors.get(o, {})}
            for o in outlets
        },
        "workers": workers,
        # documents a worker has held for longer than DOCUMENT_OPEN_WARN: stuck
        "open_documents": open_documents(server, keys, heartbeats),
    }


class RedisStateCollector:
    """Prometheus collector: gauges of the shared state, read from Redis at scrape time.

    It provides ``crawler_mirror_up`` too: in distributed mode mirror health is shared, and an
    idle worker must report it as it is, not as it last saw it.
    """

    provides = frozenset({"crawler_mirror_up"})

    def __init__(self, server, keys: RedisKeys, worker_timeout: float,
                 catalog: OutletCatalog) -> None:
        self.server = server
        self.keys = keys
        self.worker_timeout = worker_timeout
        self.catalog = catalog

    @classmethod
    def from_crawler(cls, crawler) -> RedisStateCollector:
        settings = crawler.settings
        return cls(crawl_context(crawler).redis, RedisKeys.from_settings(settings),
                   settings.getfloat("WORKER_TIMEOUT"), crawl_context(crawler).catalog)

    def collect(self):
        status = read_status(self.server, self.keys, self.worker_timeout)
        depth = GaugeMetricFamily("crawler_queue_depth", "Requests waiting in the queue",
                                  labels=["outlet"])
        inflight = GaugeMetricFamily("crawler_inflight_requests",
                                     "Requests leased to workers", labels=["outlet"])
        for outlet, state in status["outlets"].items():
            depth.add_metric([outlet], state["queued"])
            inflight.add_metric([outlet], state["in_flight"])
        workers = GaugeMetricFamily("crawler_worker_up", "1 per worker with a live heartbeat",
                                    labels=["worker"])
        for worker in status["workers"]:
            if worker["alive"]:
                workers.add_metric([worker["worker"]], 1)
        scheduled = GaugeMetricFamily("crawler_outlet_scheduled",
                                      "1 while the outlet has a recurring schedule",
                                      labels=["outlet"])
        last_run = GaugeMetricFamily("crawler_schedule_last_run_timestamp_seconds",
                                     "When a schedule last queued its section",
                                     labels=["outlet", "section"])
        for outlet in sorted({s["outlet"] for s in status["schedules"]}):
            scheduled.add_metric([outlet], 1)
        for schedule in status["schedules"]:
            if schedule["last_run"] is not None:
                last_run.add_metric([schedule["outlet"], schedule["section"]],
                                    schedule["last_run"])
        mirror_up = GaugeMetricFamily(
            "crawler_mirror_up", "1 while the mirror is in rotation, 0 while it is skipped",
            labels=["outlet", "mirror"])
        for name in self.catalog.names():
            try:
                outlet = self.catalog.get(name)
            except OutletError:
                continue
            shared = status["outlets"].get(name, {}).get("mirrors", {})
            for mirror in outlet.mirrors:
                mirror_up.add_metric([name, mirror], 1 if shared.get(mirror, {}).get("up", True)
                                     else 0)
        return [depth, inflight, workers, scheduled, last_run, mirror_up]
