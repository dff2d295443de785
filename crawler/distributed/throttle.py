"""AutoThrottle that does not take the time this process stood still for the server's.

A download's latency is measured on the process's clock from the request to the answer. A
worker that stood still meanwhile (stopped with SIGSTOP, its container paused, starved of
CPU) counts the whole pause as latency: AutoThrottle then sets the outlet's delay to a
quarter of it, 6 s or more after a pause past ``WORKER_TIMEOUT``, and a worker told to stop
afterwards downloads what it holds one delay apart before it exits. Here the time the event
loop stood still is taken out of each latency first.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.extensions.throttle import AutoThrottle

from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Response

#: seconds between the looks at the clock, and how late a look may be before the time
#: counts as a stall (the loop is often busy for a fraction of a second)
TICK = 0.5
TOLERANCE = 1.0

Stall = tuple[float, float]


def stall_since(last_tick: float, now: float, interval: float, tolerance: float) -> Stall | None:
    """The time the loop stood still after its tick at ``last_tick``, if longer than
    ``tolerance``: from when the next tick was due until ``now``."""
    due = last_tick + interval
    return (due, now) if now - due > tolerance else None


def stalled_within(start: float, end: float, stalls: Iterable[Stall]) -> float:
    """Seconds of ``stalls`` that fall between ``start`` and ``end``."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in stalls)


def latency_without_stalls(latency: float, now: float, stalls: Iterable[Stall]) -> float:
    """A latency that ended ``now``, less the time the process stood still during it."""
    return max(0.0, latency - stalled_within(now - latency, now, stalls))


class StallAwareThrottle(AutoThrottle):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        # no download lasts longer: older stalls can be forgotten
        self.horizon = crawler.settings.getfloat("DOWNLOAD_TIMEOUT") + TICK + TOLERANCE
        self.stalls: deque[Stall] = deque()
        self.last_tick = time.monotonic()
        self._ticker = Ticker(self.tick, TICK, "Stall check")
        crawler.signals.connect(self._start_clock, signal=signals.spider_opened)
        crawler.signals.connect(self._stop_clock, signal=signals.spider_closed)

    def _start_clock(self) -> None:
        self.last_tick = time.monotonic()
        self._ticker.start()

    def _stop_clock(self) -> None:
        self._ticker.stop()

    def tick(self) -> None:
        now = time.monotonic()
        stall = stall_since(self.last_tick, now, TICK, TOLERANCE)
        if stall is not None:
            self.stalls.append(stall)
        while self.stalls and self.stalls[0][1] < now - self.horizon:
            self.stalls.popleft()
        self.last_tick = now

    def _adjust_delay(self, slot: Slot, latency: float, response: Response) -> None:
        now = time.monotonic()
        # answers read as the loop resumes come before its tick notices the stall
        ongoing = stall_since(self.last_tick, now, TICK, TOLERANCE)
        stalls = [*self.stalls, ongoing] if ongoing is not None else self.stalls
        super()._adjust_delay(slot, latency_without_stalls(latency, now, stalls), response)
