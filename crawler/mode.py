"""The crawl's one switch between standalone and distributed: the ``CRAWL_MODE`` setting.

A standalone crawl keeps its shared state in the process (and beside a SQLite store); a
distributed worker keeps it in Redis. The mode chooses every backend at once (:data:`BACKENDS`:
what the crawl context builds, and :class:`CrawlMode`, the add-on that sets what Scrapy
builds), so no crawl can run half in one mode and half in the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

STANDALONE = "standalone"
DISTRIBUTED = "distributed"

#: the crawl's shared parts, by mode: each built from_crawler, or as its owner says
BACKENDS: dict[str, dict[str, str]] = {
    STANDALONE: {
        "health": "crawler.mirrors.MirrorHealth",
        "waiting": "crawler.waiting.LocalWaitingRoom",
        "limiter": "crawler.politeness.LocalLimiter",
        "validators": "crawler.validators.StoreValidators",
        "mirror_registry": "crawler.mirror_registry.StoreMirrorRegistry",
    },
    DISTRIBUTED: {
        "health": "crawler.distributed.mirrors.RedisMirrorHealth",
        "waiting": "crawler.distributed.waiting.RedisWaitingRoom",
        "limiter": "crawler.distributed.politeness.RedisLimiter",
        "validators": "crawler.distributed.validators.RedisValidators",
        "mirror_registry": "crawler.distributed.candidates.RedisMirrorRegistry",
    },
}

#: what Scrapy builds for each mode (a standalone crawl: Scrapy's own)
SCRAPY_SETTINGS: dict[str, dict[str, Any]] = {
    STANDALONE: {
        "SCHEDULER": "scrapy.core.scheduler.Scheduler",
        "DUPEFILTER_CLASS": "scrapy.dupefilters.RFPDupeFilter",
    },
    DISTRIBUTED: {
        "SCHEDULER": "crawler.distributed.scheduler.LeasingScheduler",
        "DUPEFILTER_CLASS": "crawler.distributed.dupefilter.CompactDupeFilter",
    },
}
#: extensions a mode adds (None: takes out); a worker may be paused (SIGSTOP, a paused
#: container), and its AutoThrottle must not read the pause as the outlet's latency
EXTENSIONS: dict[str, dict[str, int | None]] = {
    STANDALONE: {},
    DISTRIBUTED: {
        "scrapy.extensions.throttle.AutoThrottle": None,
        "crawler.distributed.throttle.StallAwareThrottle": 0,
    },
}
#: Prometheus collectors a mode adds to ``METRICS_COLLECTORS``: a worker reports the
#: shared state in Redis too
COLLECTORS: dict[str, list[str]] = {
    STANDALONE: [],
    DISTRIBUTED: ["crawler.distributed.status.RedisStateCollector"],
}


def crawl_mode(settings: BaseSettings) -> str:
    """The crawl's mode; a clear error for one that is not a mode."""
    mode = settings.get("CRAWL_MODE") or STANDALONE
    if mode not in BACKENDS:
        raise ValueError(f"CRAWL_MODE is {mode!r}: it is {STANDALONE!r} or {DISTRIBUTED!r}")
    return mode


def check_mode(settings: BaseSettings) -> str:
    """The crawl's mode, once no setting names what Scrapy builds for the other mode (a
    worker's scheduler in a standalone crawl, with its state in this process, or Scrapy's
    in a worker, which would take nothing from Redis); a one-line error if one does. A
    class of the user's own is theirs to choose."""
    mode = crawl_mode(settings)
    for other, parts in SCRAPY_SETTINGS.items():
        for name, path in parts.items():
            given = (settings.getpriority(name) or 0) > 0  # not Scrapy's default
            if other != mode and given and settings.get(name) == path:
                run = "`crawler worker`" if other == DISTRIBUTED else "`crawler crawl`"
                raise ValueError(f"{name} is {path}, which only a {other} crawl uses "
                                 f"(run {run}): this crawl is {mode}")
    return mode


def backend(settings: BaseSettings, part: str) -> str:
    """The import path of ``part``'s backend in the crawl's mode."""
    return BACKENDS[crawl_mode(settings)][part]


class CrawlMode:
    """Scrapy add-on (``ADDONS``): sets what Scrapy builds for the crawl's mode, at the
    add-on priority, so that a setting given on the command line still wins."""

    def update_settings(self, settings: BaseSettings) -> None:
        mode = check_mode(settings)
        for name, value in SCRAPY_SETTINGS[mode].items():
            settings.set(name, value, priority="addon")
        extensions = settings["EXTENSIONS"]
        for path, order in EXTENSIONS[mode].items():
            extensions.set(path, order, priority="addon")
