"""The times this process stood still lately (SIGSTOP, a paused container, a starved CPU),
kept by one clock per crawl that looks every :data:`~crawler.core.stalls.TICK` seconds.

What measures a duration on the plain clock reads a pause as its own: AutoThrottle as the
outlet's latency, a download as a timeout of a request that never had its time. Both ask
this clock what to leave out (:func:`crawler.core.stalls.stalled_within`).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from scrapy import signals

from crawler.core.stalls import TICK, TOLERANCE, Stall, stall_since, stalled_within
from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class StallClock:
    def __init__(self, horizon: float) -> None:
        #: stalls older than this are forgotten: nothing measured lasts longer
        self.horizon = horizon
        self._stalls: deque[Stall] = deque()
        self.last_tick = time.monotonic()
        self._ticker = Ticker(self.tick, TICK, "Stall check")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StallClock:
        # no download lasts longer than its timeout
        clock = cls(crawler.settings.getfloat("DOWNLOAD_TIMEOUT") + TICK + TOLERANCE)
        crawler.signals.connect(clock.start, signal=signals.spider_opened)
        crawler.signals.connect(clock.stop, signal=signals.spider_closed)
        return clock

    def start(self) -> None:
        self.last_tick = time.monotonic()
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def tick(self) -> None:
        now = time.monotonic()
        stall = stall_since(self.last_tick, now, TICK, TOLERANCE)
        if stall is not None:
            self._stalls.append(stall)
        while self._stalls and self._stalls[0][1] < now - self.horizon:
            self._stalls.popleft()
        self.last_tick = now

    def stalls(self, now: float) -> list[Stall]:
        """The stalls remembered, with the one going on at ``now`` (an answer read as the
        loop resumes comes before the clock's next look notices the pause)."""
        ongoing = stall_since(self.last_tick, now, TICK, TOLERANCE)
        return [*self._stalls, ongoing] if ongoing is not None else list(self._stalls)

    def stalled_within(self, start: float, end: float) -> float:
        """Seconds this process stood still between ``start`` and ``end`` (monotonic)."""
        return stalled_within(start, end, self.stalls(end))
