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
from typing import TYPE_CHECKING

from scrapy.extensions.throttle import AutoThrottle

from crawler.context import crawl_context
from crawler.core.stalls import latency_without_stalls

if TYPE_CHECKING:
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Response


class StallAwareThrottle(AutoThrottle):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.clock = crawl_context(crawler).stall_clock

    def _adjust_delay(self, slot: Slot, latency: float, response: Response) -> None:
        now = time.monotonic()
        super()._adjust_delay(slot, latency_without_stalls(latency, now, self.clock.stalls(now)),
                              response)
