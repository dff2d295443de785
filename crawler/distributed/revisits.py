"""The beat's share of revisits: queueing the stored articles that are due.

Every ``REVISIT_CHECK_SECONDS`` the leading beat asks the store which articles of each
scheduled outlet are due (:func:`crawler.revisits.due_revisits`) and queues them below new
articles. ``<prefix>:revisits:<outlet>`` remembers when each was queued, so an article whose
revisit is still queued, waiting for a mirror or failing is not queued again before its
interval is over.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from redis import Redis

from crawler.core.outlets import Outlet
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.revisits import due_revisits
from crawler.spiders.outlet import OutletSpider
from crawler.storage import Store

logger = logging.getLogger(__name__)


class RevisitQueuer:
    def __init__(self, server: Redis, keys: RedisKeys, store: Store, queues: OutletQueues,
                 spider: OutletSpider, batch: int) -> None:
        self.server = server
        self.keys = keys
        self.store = store
        self.queues = queues
        self.spider = spider
        self.batch = batch

    def queue_due(self, outlet: Outlet, now: float) -> int:
        """Queue the outlet's due articles not queued within its interval (``now``: the
        Redis clock); returns how many were queued."""
        key = self.keys.revisits(outlet.name)
        interval = outlet.revisit.interval_seconds
        due = due_revisits(self.store, outlet, self.batch, datetime.fromtimestamp(now, UTC))
        # forget what was queued longer ago than the interval: due again if the store says so
        self.server.zremrangebyscore(key, "-inf", now - interval)
        if not due:
            return 0
        urls = [article["canonical_url"] for article in due]
        queued = self.server.zmscore(key, urls)
        fresh = [article for article, when in zip(due, queued, strict=True) if when is None]
        if fresh:
            self.queues.push((outlet.name, self.spider.revisit_request(outlet, article))
                             for article in fresh)
            self.server.zadd(key, {article["canonical_url"]: now for article in fresh})
            logger.info("Queued %d revisits of %s", len(fresh), outlet.name)
        return len(fresh)
