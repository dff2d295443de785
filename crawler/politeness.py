"""Per-outlet politeness: at most ``requests_per_second`` and ``concurrency`` (from the outlet
file) for the outlet as a whole, whichever mirror serves it.

:class:`PolitenessMiddleware` holds each request until the outlet's limiter lets it go. The
limiter is chosen by the crawl's mode (crawler/mode.py): :class:`LocalLimiter` counts in this
process; the distributed mode's counts in Redis, for all workers together.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Politeness

#: how often a request waiting for a free download slot looks again (seconds)
SLOT_POLL = 0.05


@dataclass(frozen=True)
class Slot:
    """A download's place within its outlet's limits: what ``acquire`` gives, ``release``
    takes back."""

    outlet: str
    token: str
    #: counted by this process alone (the distributed limiter's fallback while Redis is out)
    local: bool = True


@runtime_checkable
class Limiter(Protocol):
    """What both limiters are: in this process (:class:`LocalLimiter`) or in Redis."""

    async def acquire(self, outlet: str, limits: Politeness) -> Slot:
        """Wait until a request of ``outlet`` may start."""
        ...

    def release(self, slot: Slot) -> None:
        """The request left the downloader: its slot is free."""
        ...


class LocalLimiter:
    """Politeness counted in this process."""

    def __init__(self) -> None:
        self._next_start: dict[str, float] = {}
        self._active: dict[str, set[str]] = {}
        self._tokens = itertools.count()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LocalLimiter:
        return cls()

    async def acquire(self, outlet: str, limits: Politeness) -> Slot:
        token = str(next(self._tokens))
        active = self._active.setdefault(outlet, set())
        while limits.concurrency and len(active) >= limits.concurrency:
            await asyncio.sleep(SLOT_POLL)
        active.add(token)
        if limits.requests_per_second:
            now = time.monotonic()
            start = max(now, self._next_start.get(outlet, 0.0))
            self._next_start[outlet] = start + 1.0 / limits.requests_per_second
            if start > now:
                await asyncio.sleep(start - now)
        return Slot(outlet, token)

    def release(self, slot: Slot) -> None:
        self._active.get(slot.outlet, set()).discard(slot.token)
