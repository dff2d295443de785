"""Per-outlet politeness, one contract for both limiters: in this process
(crawler.politeness.LocalLimiter) and in Redis for every worker together
(crawler.distributed.politeness.RedisLimiter)."""

from __future__ import annotations

import asyncio
import time

import pytest

from crawler.core.outlets import Politeness
from crawler.distributed.keys import RedisKeys
from crawler.distributed.politeness import RedisLimiter
from crawler.politeness import Limiter, LocalLimiter


def redis_limiter(client) -> RedisLimiter:
    return RedisLimiter(client, RedisKeys(), hold_seconds=30, book_ahead=5)


@pytest.fixture(params=["memory", "redis"])
def limiters(request):
    """Two limiters counting together: one process's (the same one twice), or two workers'."""
    if request.param == "memory":
        limiter = LocalLimiter()
        return limiter, limiter
    client = request.getfixturevalue("redis_server").client()
    return redis_limiter(client), redis_limiter(client)


def test_both_are_limiters(limiters):
    assert all(isinstance(limiter, Limiter) for limiter in limiters)


def test_concurrency_holds_for_the_outlet_and_a_release_frees_a_slot(limiters):
    one, two = limiters
    limits = Politeness(concurrency=2)

    async def scenario():
        first = await one.acquire("news", limits)
        await two.acquire("news", limits)
        third = asyncio.ensure_future(one.acquire("news", limits))
        other_outlet = await asyncio.wait_for(two.acquire("other", limits), 5)
        await asyncio.sleep(0.3)
        assert not third.done()  # the outlet's two slots are taken, whichever limiter asks
        one.release(first)
        slot = await asyncio.wait_for(third, 5)
        return slot, other_outlet

    slot, other = asyncio.run(scenario())
    assert (slot.outlet, other.outlet) == ("news", "other")


def test_the_rate_holds_for_the_outlet(limiters):
    one, two = limiters
    limits = Politeness(requests_per_second=10)

    async def scenario():
        started = time.monotonic()
        for n in range(5):
            await (one if n % 2 else two).acquire("news", limits)
        return time.monotonic() - started

    # five starts are four intervals apart at the least, on either clock
    assert asyncio.run(scenario()) >= 0.35


def test_workers_limit_themselves_alone_while_redis_is_out(redis_server):
    limiter = redis_limiter(redis_server.client(socket_timeout=1))
    redis_server.stop()
    limits = Politeness(concurrency=1)

    async def scenario():
        slot = await limiter.acquire("news", limits)
        waiting = asyncio.ensure_future(limiter.acquire("news", limits))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the fallback counts in this process
        limiter.release(slot)
        return slot, await asyncio.wait_for(waiting, 5)

    first, second = asyncio.run(scenario())
    assert first.local and second.local
