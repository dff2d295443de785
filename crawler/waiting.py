"""Documents that no mirror can take now wait here instead of being given up.

When every mirror of an outlet is out of rotation (or every mirror in rotation just failed a
document), :class:`~crawler.failover.Failover` parks the document's request in the crawler's
waiting room (by the crawl's mode). Each second the room looks at the outlet's mirrors:
when one is in rotation, the documents whose delay is over go back to the crawl; when all
are out but one may be probed, one document goes, to probe it. A document waiting longer
than ``DOCUMENT_GIVE_UP_AFTER`` seconds since its first failure is given up.

:class:`LocalWaitingRoom` keeps the documents in the process and keeps a standalone crawl
open while any wait; the distributed mode keeps them in Redis
(:mod:`crawler.distributed.waiting`). Both decide what goes with :func:`documents_to_release`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from scrapy import signals as scrapy_signals
from scrapy.exceptions import DontCloseSpider

from crawler.core import meta
from crawler.core.steps import Attempts, past_horizon
from crawler.ledger import WAITING_ROOM
from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Outlet, OutletCatalog
    from crawler.ledger import RequestLedger
    from crawler.mirrors import MirrorHealth

logger = logging.getLogger(__name__)

#: seconds between the looks at waiting documents, and between "waiting" log lines
TICK = 1.0
REPORT_EVERY = 10.0


def outage_line(outlet: Outlet, states: dict[str, bool], waiting: int,
                next_probe: float | None) -> str:
    """The line a user sees while documents wait."""
    out = [m for m, up in states.items() if not up]
    if len(out) == len(states):
        every = "the" if len(out) == 1 else f"all {len(out)}"
        probe = "" if next_probe is None else f", next probe in {next_probe:.0f} s"
        return (f"{every} mirror{'s' if len(out) > 1 else ''} of {outlet.name} out: "
                f"{waiting} documents waiting{probe}")
    return f"{outlet.name}: {waiting} documents waiting to be tried again"


class OutageReports:
    """Says what waits: at once when every mirror of an outlet goes out (or one comes back),
    then every ``REPORT_EVERY`` seconds."""

    def __init__(self) -> None:
        # outlet -> (every mirror out, monotonic time of the last line)
        self._last: dict[str, tuple[bool, float]] = {}

    def report(self, outlet: Outlet, states: dict[str, bool], waiting: int,
               next_probe: float | None) -> None:
        all_out = not any(states.values())
        now = time.monotonic()
        last = self._last.get(outlet.name)
        if last is None or last[0] != all_out or now - last[1] >= REPORT_EVERY:
            logger.warning(outage_line(outlet, states, waiting, next_probe))
            self._last[outlet.name] = (all_out, now)


def documents_to_release(states: Mapping[str, bool], next_probe_in: float | None) -> int | None:
    """How many of an outlet's waiting documents go back to the crawl now: every one whose
    delay is over while a mirror is in rotation (None: no limit), one while all are out but
    one may be probed (it will probe it), else none."""
    if any(states.values()):
        return None
    return 1 if next_probe_in == 0 else 0


@runtime_checkable
class WaitingRoom(Protocol):
    """What both waiting rooms are: in this process (:class:`LocalWaitingRoom`) or in Redis.
    Built by the crawl context; each looks at its documents every :data:`TICK` seconds."""

    def add(self, request: Request, delay: float) -> None:
        """Park ``request`` for at least ``delay`` seconds, until a mirror can take it."""
        ...

    def count(self, outlet: str) -> int:
        """How many of ``outlet``'s documents wait."""
        ...

    def tick(self) -> None:
        """Send back to the crawl what may go now (:func:`documents_to_release`)."""
        ...


class LocalWaitingRoom:
    def __init__(self, crawler: Crawler, catalog: OutletCatalog, health: MirrorHealth,
                 ledger: RequestLedger) -> None:
        self.crawler = crawler
        self.catalog = catalog
        self.health = health
        self.ledger = ledger
        self.give_up_after = crawler.settings.getfloat("DOCUMENT_GIVE_UP_AFTER")
        # outlet -> [(monotonic time it may go again, request)]
        self._waiting: dict[str, list[tuple[float, Request]]] = {}
        self._ticker = Ticker(self.tick, TICK, "The waiting room's look")
        self._reports = OutageReports()
        crawler.signals.connect(self.open, signal=scrapy_signals.spider_opened)
        crawler.signals.connect(self.close, signal=scrapy_signals.spider_closed)
        crawler.signals.connect(self.keep_open, signal=scrapy_signals.spider_idle)

    def open(self) -> None:
        self._ticker.start()

    def close(self) -> None:
        self._ticker.stop()
        left = sum(len(entries) for entries in self._waiting.values())
        if left:
            logger.error("%d documents were still waiting for a mirror when the crawl stopped",
                         left)
            for entries in self._waiting.values():
                for _, request in entries:
                    self.ledger.finish(request, "given_up")
            self._waiting.clear()

    def keep_open(self) -> None:
        if any(self._waiting.values()):
            raise DontCloseSpider("documents are waiting for a mirror")

    # -- the room --------------------------------------------------------------------------------

    def add(self, request: Request, delay: float) -> None:
        outlet = request.meta[meta.OUTLET]
        self.ledger.held_by(request, WAITING_ROOM)
        self._waiting.setdefault(outlet, []).append((time.monotonic() + delay, request))
        self.crawler.stats.inc_value("documents/waited")

    def count(self, outlet: str) -> int:
        return len(self._waiting.get(outlet, ()))

    def tick(self) -> None:
        now = time.monotonic()
        for name, entries in list(self._waiting.items()):
            entries[:] = self._without_expired(entries)
            if not entries:
                del self._waiting[name]
                continue
            outlet = self.catalog.get(name)
            states = self.health.available(outlet)
            next_probe = self.health.next_probe_in(outlet)
            limit = documents_to_release(states, next_probe)
            if limit is None:
                due = [entry for entry in entries if entry[0] <= now]
            else:  # one, to probe, the one that has waited its delay first
                due = sorted(entries, key=lambda entry: entry[0])[:limit]
            for entry in due:
                entries.remove(entry)
                self.crawler.engine.crawl(entry[1])
            if entries:
                self._reports.report(outlet, states, len(entries), next_probe)

    def _without_expired(self, entries: list[tuple[float, Request]]):
        wall = time.time()
        kept = []
        for entry in entries:
            attempts = Attempts.of(entry[1])
            if past_horizon(attempts, wall, self.give_up_after):
                logger.warning("Giving up on %s: no mirror could serve it for %.0f s",
                               entry[1].url, wall - attempts.since)
                self.ledger.finish(entry[1], "given_up")
            else:
                kept.append(entry)
        return kept
