"""Running the distributed mode: what a worker changes in the settings, and queueing seeds."""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis
from scrapy.settings import Settings

from crawler.core.outlets import Outlet
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.spiders.outlet import OutletSpider

#: a worker is the standalone crawler with these settings, and nothing else
DISTRIBUTED_SETTINGS = {
    "SCHEDULER": "crawler.distributed.scheduler.LeasingScheduler",
    "DUPEFILTER_CLASS": "crawler.distributed.dupefilter.CompactDupeFilter",
    "MIRROR_HEALTH_CLASS": "crawler.distributed.mirrors.RedisMirrorHealth",
    "POLITENESS_LIMITER_CLASS": "crawler.distributed.politeness.RedisLimiter",
    "WAITING_ROOM_CLASS": "crawler.distributed.waiting.RedisWaitingRoom",
    "VALIDATORS_CLASS": "crawler.distributed.validators.RedisValidators",
    "MIRROR_REGISTRY_CLASS": "crawler.distributed.candidates.RedisMirrorRegistry",
    "METRICS_COLLECTORS": ["crawler.distributed.status.RedisStateCollector"],
}
#: a worker may be paused (SIGSTOP, a paused container): its AutoThrottle must not read the
#: pause as the outlet's latency (crawler/distributed/throttle.py)
EXTENSIONS = {
    "scrapy.extensions.throttle.AutoThrottle": None,
    "crawler.distributed.throttle.StallAwareThrottle": 0,
}


def apply_distributed(settings: Settings) -> Settings:
    for name, value in DISTRIBUTED_SETTINGS.items():
        if settings.getpriority(name) < 40:  # leave what the user set with -s
            settings.set(name, value, priority="cmdline")
    # merged into the project's extensions; what the user set wins
    settings.set("EXTENSIONS", {**EXTENSIONS, **settings.getdict("EXTENSIONS")},
                 priority=settings.getpriority("EXTENSIONS") or "project")
    return settings


def queue_sections(server: Redis, settings: Settings, outlet: Outlet,
                   sections: Iterable[str] = ()) -> list[str]:
    """Queue the first page of each section (all when none named); returns their URLs.

    Section pages are fetched again each time (they are not deduplicated), the articles they
    list only when not seen before.
    """
    spider = OutletSpider()
    # validators are looked up by the worker that fetches them, not here
    requests = spider.seed_requests(outlet, sections)
    queues = OutletQueues(server, RedisKeys.from_settings(settings), "scheduler", spider)
    queues.push((outlet.name, request) for request in requests)
    return [request.url for request in requests]
