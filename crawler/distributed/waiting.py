"""The workers' waiting room: documents no mirror can take now, kept in Redis.

A parked document moves from this worker's leases to ``<prefix>:waiting:<outlet>`` in one
transaction, so a worker killed while an outage lasts loses nothing. Every worker looks each
second at the outlets with waiting documents: when one of the outlet's mirrors is in
rotation (in the shared mirror health), the due documents go back to the outlet's queue in
one script; when all are out but one may be probed, one goes, to probe it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from scrapy import signals as scrapy_signals

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.steps import Attempts
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.ledger import WAITING_ROOM
from crawler.ticker import Ticker
from crawler.waiting import TICK, OutageReports, documents_to_release

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from crawler.core.outlets import OutletCatalog
    from crawler.ledger import RequestLedger
    from crawler.mirrors import MirrorHealth

logger = logging.getLogger(__name__)


class RedisWaitingRoom:
    def __init__(self, crawler: Crawler, catalog: OutletCatalog, health: MirrorHealth,
                 ledger: RequestLedger) -> None:
        self.crawler = crawler
        self.catalog = catalog
        self.health = health
        self.ledger = ledger
        settings = crawler.settings
        self.queues = OutletQueues(crawl_context(crawler).redis,
                                   RedisKeys.from_settings(settings),
                                   crawl_context(crawler).worker_id, None)
        self.give_up_after = settings.getfloat("DOCUMENT_GIVE_UP_AFTER")
        # parked while Redis was unreachable: their leases stay in Redis meanwhile
        self._unsent: deque[tuple[Request, int, int | None]] = deque()
        self._ticker = Ticker(self.tick, TICK, "The waiting room's look")
        self._reports = OutageReports()
        crawler.signals.connect(self.open, signal=scrapy_signals.spider_opened)
        crawler.signals.connect(self.close, signal=scrapy_signals.spider_closed)

    def open(self, spider) -> None:
        self.queues.spider = spider  # requests are serialized with their spider callbacks
        self._ticker.start()

    def close(self) -> None:
        self._ticker.stop()
        self._send()
        if self._unsent:
            logger.error("%d waiting documents could not be parked in Redis: they go back to "
                         "the queue with this worker's leases", len(self._unsent))

    def add(self, request: Request, delay: float) -> None:
        self.ledger.held_by(request, WAITING_ROOM)  # here until it is parked in Redis
        since = Attempts.of(request).since
        give_up_ms = None if since is None else int((since + self.give_up_after) * 1000)
        self._unsent.append((request, int((time.time() + delay) * 1000), give_up_ms))
        self.crawler.stats.inc_value("documents/waited")
        self._send()

    def _send(self) -> None:
        while self._unsent:
            request, due_ms, give_up_ms = self._unsent[0]
            try:
                self.queues.park(request.meta[meta.OUTLET], request, due_ms, give_up_ms)
            except RedisError as exc:
                logger.warning("Could not park %s in Redis (%s): retrying", request.url, exc)
                return
            self._unsent.popleft()
            self.ledger.handed_off(request)

    def count(self, outlet: str) -> int:
        try:
            return int(self.queues.server.zcard(self.queues.keys.waiting(outlet)))
        except RedisError:
            return 0

    def tick(self) -> None:
        self._send()
        try:
            for name in self.queues.waiting_outlets():
                outlet = self.catalog.get(name)
                states = self.health.available(outlet)
                next_probe = self.health.next_probe_in(outlet)
                limit = documents_to_release(states, next_probe)
                if limit != 0:
                    self.queues.release_waiting(name, limit=limit or 0)  # 0: all that are due
                else:
                    # no mirror may come back: those past the horizon go, to be given up
                    self.queues.release_expired(name)
                if not any(states.values()):
                    self._reports.report(outlet, states, self.count(name), next_probe)
        except RedisError as exc:
            logger.debug("Waiting documents not looked at (%s)", exc)
