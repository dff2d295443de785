"""Politeness counted in Redis, so an outlet's limits hold for all workers together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from crawler.context import crawl_context
from crawler.distributed.keys import RedisKeys
from crawler.politeness import SLOT_POLL, LocalLimiter, Slot

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Politeness

logger = logging.getLogger(__name__)

# Take a download slot and a start time, atomically, on the Redis clock.
# KEYS: active zset, next-start key. ARGV: token, concurrency (0: none), interval ms (0: none),
# how long a slot is held at most (ms; a dead worker's slots free themselves), how far ahead
# a start may be booked (ms).
# Returns {wait ms, 0} when granted, {-1, retry in ms} when not yet.
_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local concurrency, interval = tonumber(ARGV[2]), tonumber(ARGV[3])
if concurrency > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    if redis.call('ZCARD', KEYS[1]) >= concurrency then return {-1, 0} end
end
local wait = 0
if interval > 0 then
    local start = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
    if start - now > tonumber(ARGV[5]) then return {-1, start - now - tonumber(ARGV[5])} end
    redis.call('SET', KEYS[2], start + interval, 'PX', start - now + interval + 60000)
    wait = start - now
end
if concurrency > 0 then
    redis.call('ZADD', KEYS[1], now + wait + tonumber(ARGV[4]), ARGV[1])
    redis.call('PEXPIRE', KEYS[1], wait + tonumber(ARGV[4]) + 60000)
end
return {wait, 0}
"""


class RedisLimiter:
    def __init__(self, server, keys: RedisKeys, hold_seconds: float, book_ahead: float) -> None:
        self.server = server
        self.keys = keys
        self.hold_ms = int(hold_seconds * 1000)
        self.book_ahead_ms = int(book_ahead * 1000)
        self._acquire = server.register_script(_ACQUIRE)
        self._fallback = LocalLimiter()
        self._prefix = uuid.uuid4().hex[:8]
        self._count = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisLimiter:
        settings = crawler.settings
        return cls(
            crawl_context(crawler).redis, RedisKeys.from_settings(settings),
            # a download can't outlast its timeout; the slot frees itself after that
            hold_seconds=settings.getfloat("DOWNLOAD_TIMEOUT") + 10,
            book_ahead=settings.getfloat("POLITENESS_BOOK_AHEAD"),
        )

    async def acquire(self, outlet: str, limits: Politeness) -> Slot:
        self._count += 1
        token = f"{self._prefix}:{self._count}"
        interval = int(1000 / limits.requests_per_second) if limits.requests_per_second else 0
        while True:
            try:
                wait, retry = self._acquire(
                    keys=[self.keys.active(outlet), self.keys.politeness(outlet)],
                    args=[token, limits.concurrency or 0, interval, self.hold_ms,
                          self.book_ahead_ms],
                )
            except RedisError as exc:
                logger.warning("Politeness state unreachable (%s): limiting this worker alone",
                               exc)
                return await self._fallback.acquire(outlet, limits)
            if wait >= 0:
                if wait:
                    await asyncio.sleep(wait / 1000)
                return Slot(outlet, token, local=False)
            await asyncio.sleep(max(retry / 1000, SLOT_POLL))

    def release(self, slot: Slot) -> None:
        if slot.local:
            self._fallback.release(slot)
            return
        with contextlib.suppress(RedisError):  # else the slot frees itself after its hold
            self.server.zrem(self.keys.active(slot.outlet), slot.token)
