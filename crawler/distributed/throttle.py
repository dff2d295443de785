"""AutoThrottle that does not take the time this process stood still for the server's.

A download's latency is measured on the process's clock from the request to the answer. A
worker that stood still meanwhile (stopped with SIGSTOP, its container paused, starved of
CPU) counts the whole pause as latency: AutoThrottle then sets the outlet's delay to a
quarter of it, 6 s or more after a pause past ``WORKER_TIMEOUT``, and a worker told to stop
afterwards downloads what it holds one delay apart before it exits. Here the time the event
loop stood still is taken out of each latency first (``crawler.core.stalls``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.extensions.throttle import AutoThrottle

from crawler.core.stalls import TICK, TOLERANCE, Stall, latency_without_stalls, stall_since
from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Response


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
