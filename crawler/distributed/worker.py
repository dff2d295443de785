"""Queueing seeds for the workers (what a worker changes is its mode: crawler/mode.py)."""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis
from scrapy.settings import Settings

from crawler.core.outlets import Outlet
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.spiders.outlet import OutletSpider


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
