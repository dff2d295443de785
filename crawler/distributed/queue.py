"""Per-outlet request queues in Redis, with leases: a taken request stays recorded under its
worker until its outcome is final, and goes back to the queue if the worker dies.

Every operation that moves a request between the queue and a lease is one Lua script or one
MULTI/EXEC, so a crash at any moment leaves each request either queued or leased, never
neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from redis import Redis
from scrapy import Request, Spider
from scrapy.utils.request import request_from_dict
from scrapy_redis import picklecompat

from crawler.distributed.dupefilter import LUA_SEEN_OR_ADD, SeenCheck
from crawler.distributed.keys import RedisKeys

# HDEL of many fields, in slices: Lua's unpack() has a bounded stack.
_LUA_HDEL = """
local function hdel(key, args, first, last)
    for i = first, last, 1000 do
        redis.call('HDEL', key, unpack(args, i, math.min(i + 999, last)))
    end
end
"""

# Acknowledge leases of a worker, then take the best requests of one outlet's queue and lease
# them to it. The lease id is the payload's SHA1, so it can be derived inside the script,
# atomically with the move.
# KEYS: the queue, the worker's leases, then a hash per acknowledged field.
# ARGV: the outlet, how many to take, how many leases to release, the leases, then (field,
# value) per hash in KEYS[3..]. Returns payload, lease, payload, lease, ...
_TAKE = _LUA_HDEL + """
local released = tonumber(ARGV[3])
hdel(KEYS[2], ARGV, 4, 3 + released)
local a = 4 + released
for i = 3, #KEYS do
    redis.call('HSET', KEYS[i], ARGV[a], ARGV[a + 1])
    a = a + 2
end
local items = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[2]))
local taken = {}
for i = 1, #items, 2 do
    local lease = redis.sha1hex(items[i])
    redis.call('HSET', KEYS[2], lease, ARGV[1] .. '\\0' .. items[i + 1] .. '\\0' .. items[i])
    taken[#taken + 1] = items[i]
    taken[#taken + 1] = lease
end
return taken
"""

# Queue requests the dupefilter has not seen, recording them as seen, and release leases of
# the worker, in one atomic step: a request is never recorded as seen yet not queued.
# KEYS: the worker's leases, the set of queues, then per request its queue and its
# dupefilter keys (none when it is not checked).
# ARGV: how many leases to release, the leases, then per request: outlet, score, payload,
# number of dupefilter keys, dupefilter field, expiry (ms). Returns 1 per request queued, 0
# per duplicate.
_PUSH_UNSEEN = LUA_SEEN_OR_ADD + _LUA_HDEL + """
local released = tonumber(ARGV[1])
hdel(KEYS[1], ARGV, 2, 1 + released)
local k, a = 3, 2 + released
local queued, outlets = {}, {}
while a <= #ARGV do
    local count = tonumber(ARGV[a + 3])
    local new = 1
    if count > 0 then
        new = seen_or_add(KEYS, k + 1, count, ARGV[a + 4], tonumber(ARGV[a + 5]))
    end
    if new == 1 then
        redis.call('ZADD', KEYS[k], ARGV[a + 1], ARGV[a + 2])
        if not outlets[ARGV[a]] then
            redis.call('SADD', KEYS[2], ARGV[a])
            outlets[ARGV[a]] = true
        end
    end
    queued[#queued + 1] = new
    k = k + 1 + count
    a = a + 6
end
return queued
"""

# Put every lease of a worker back on its outlet's queue and forget the worker.
_REQUEUE = """
local entries = redis.call('HGETALL', KEYS[1])
local moved = 0
for i = 2, #entries, 2 do
    local value = entries[i]
    local a = string.find(value, '\\0', 1, true)
    local b = string.find(value, '\\0', a + 1, true)
    local outlet = string.sub(value, 1, a - 1)
    local score = string.sub(value, a + 1, b - 1)
    redis.call('ZADD', ARGV[1] .. ':queue:' .. outlet, score, string.sub(value, b + 1))
    redis.call('SADD', KEYS[2], outlet)
    moved = moved + 1
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[2])
return moved
"""

# Move waiting documents whose time has come (score <= now, Redis clock) back to their
# outlet's queue: all of them, or at most ARGV[2] (> 0).
_RELEASE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local limit = tonumber(ARGV[2])
local items
if limit > 0 then
    items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
else
    items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
end
for _, item in ipairs(items) do
    local a = string.find(item, '\\0', 1, true)
    redis.call('ZADD', KEYS[2], string.sub(item, 1, a - 1), string.sub(item, a + 1))
    redis.call('ZREM', KEYS[1], item)
    redis.call('ZREM', KEYS[5], item)
end
if #items > 0 then redis.call('SADD', KEYS[3], ARGV[1]) end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
return #items
"""

# Move the waiting documents past their give-up time (KEYS[5], Redis clock) back to their
# outlet's queue whatever the mirrors' state, for a worker's failover to end them.
_RELEASE_EXPIRED = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local moved = 0
for _, item in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)) do
    redis.call('ZREM', KEYS[5], item)
    if redis.call('ZREM', KEYS[1], item) == 1 then
        local a = string.find(item, '\\0', 1, true)
        redis.call('ZADD', KEYS[2], string.sub(item, 1, a - 1), string.sub(item, a + 1))
        moved = moved + 1
    end
end
if moved > 0 then redis.call('SADD', KEYS[3], ARGV[1]) end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
return moved
"""

# Heartbeat on the Redis clock: whether the worker was missing (its first beat, or another
# worker returned its leases), and the workers silent for longer than the timeout.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local missing = redis.call('ZADD', KEYS[1], now, ARGV[1])
return {missing, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))}
"""


class OutletQueues:
    """The queues of all outlets, as seen by one worker (``worker`` names its leases)."""

    def __init__(self, server: Redis, keys: RedisKeys, worker: str, spider: Spider | None):
        self.server = server
        self.keys = keys
        self.worker = worker
        self.spider = spider
        self.serializer = picklecompat
        self._take = server.register_script(_TAKE)
        self._push_unseen = server.register_script(_PUSH_UNSEEN)
        self._requeue = server.register_script(_REQUEUE)
        self._heartbeat = server.register_script(_HEARTBEAT)
        self._release = server.register_script(_RELEASE)
        self._release_expired = server.register_script(_RELEASE_EXPIRED)

    # -- encoding --------------------------------------------------------------------------------

    def encode(self, request: Request) -> bytes:
        data = request.to_dict(spider=self.spider)
        # a queued request has no lease yet (to_dict hands out the request's own meta)
        data["meta"] = {k: v for k, v in data["meta"].items() if k != "lease"}
        return self.serializer.dumps(data)

    def decode(self, payload: bytes, lease: str | None = None) -> Request:
        request = request_from_dict(self.serializer.loads(payload), spider=self.spider)
        if lease is not None:
            request.meta["lease"] = lease
        return request

    # -- queue operations ------------------------------------------------------------------------

    def push(self, requests: Iterable[tuple[str, Request]], release: Iterable[str] = ()) -> None:
        """Queue (outlet, request) pairs and, in the same transaction, release the given
        leases of this worker: their work is back in the queue."""
        pipe = self.server.pipeline(transaction=True)
        outlets = set()
        for outlet, request in requests:
            pipe.zadd(self.keys.queue(outlet), {self.encode(request): -request.priority})
            outlets.add(outlet)
        if outlets:
            pipe.sadd(self.keys.queues, *outlets)
        leases = list(release)
        if leases:
            pipe.hdel(self.keys.inflight(self.worker), *leases)
        pipe.execute()

    def park(self, outlet: str, request: Request, due_ms: int,
             give_up_ms: int | None = None) -> None:
        """Put a document no mirror can take now in the outlet's waiting set (with the time
        it is given up, when it has one) and, in the same transaction, release its lease."""
        member = str(-request.priority).encode() + b"\0" + self.encode(request)
        pipe = self.server.pipeline(transaction=True)
        pipe.zadd(self.keys.waiting(outlet), {member: due_ms})
        if give_up_ms is not None:
            pipe.zadd(self.keys.give_up(outlet), {member: give_up_ms})
        pipe.sadd(self.keys.waitings, outlet)
        lease = request.meta.get("lease")
        if lease:
            pipe.hdel(self.keys.inflight(self.worker), lease)
        pipe.execute()

    def release_waiting(self, outlet: str, limit: int = 0) -> int:
        """Move the waiting documents that are due (at most ``limit``, 0 for all) back to the
        queue; returns how many."""
        return int(self._release(keys=self._waiting_keys(outlet), args=[outlet, limit]))

    def release_expired(self, outlet: str) -> int:
        """Move the waiting documents past their give-up time back to the queue, mirrors in
        rotation or not: a worker's failover gives them up. Returns how many."""
        return int(self._release_expired(keys=self._waiting_keys(outlet), args=[outlet]))

    def _waiting_keys(self, outlet: str) -> list[str]:
        return [self.keys.waiting(outlet), self.keys.queue(outlet), self.keys.queues,
                self.keys.waitings, self.keys.give_up(outlet)]

    def waiting_outlets(self) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m
                      for m in self.server.smembers(self.keys.waitings))

    def take(self, outlet: str, count: int = 1, ack: Iterable[str] = (),
             fields: Iterable[tuple[str, str, str]] = ()) -> list[Request]:
        """Lease at most ``count`` of the outlet's best requests to this worker; first, in
        the same script, acknowledge the leases ``ack`` as :meth:`ack` does."""
        ack, fields = list(ack), list(fields)
        result = self._take(
            keys=[self.keys.queue(outlet), self.keys.inflight(self.worker),
                  *(key for key, _, _ in fields)],
            args=[outlet, count, len(ack), *ack,
                  *(v for _, field, value in fields for v in (field, value))],
        )
        return [self.decode(payload, lease.decode() if isinstance(lease, bytes) else lease)
                for payload, lease in zip(result[::2], result[1::2], strict=True)]

    def push_unseen(self, entries: Iterable[tuple[str, Request, SeenCheck | None]],
                    release: Iterable[str] = ()) -> list[bool]:
        """Queue each (outlet, request, check) whose dupefilter ``check`` finds it new (None:
        unchecked), and release the given leases of this worker, in one script: whether each
        was queued."""
        keys = [self.keys.inflight(self.worker), self.keys.queues]
        leases = list(release)
        args: list[Any] = [len(leases), *leases]
        for outlet, request, check in entries:
            keys.append(self.keys.queue(outlet))
            args += [outlet, -request.priority, self.encode(request)]
            if check is None:
                args += [0, "", 0]
            else:
                keys += check.keys
                args += [len(check.keys), check.field, check.expire_ms]
        return [bool(queued) for queued in self._push_unseen(keys=keys, args=args)]

    def ack(self, leases: Iterable[str], fields: Iterable[tuple[str, str, str]] = ()) -> None:
        """Release leases of this worker; in the same transaction, set the hash ``fields``
        (key, field, value) that hold once their requests are done."""
        leases, fields = list(leases), list(fields)
        if not leases and not fields:
            return
        pipe = self.server.pipeline(transaction=True)
        for key, field, value in fields:
            pipe.hset(key, field, value)
        if leases:
            pipe.hdel(self.keys.inflight(self.worker), *leases)
        pipe.execute()

    def requeue_worker(self, worker: str) -> int:
        """Put a worker's leased requests back in their queues; returns how many."""
        return int(self._requeue(
            keys=[self.keys.inflight(worker), self.keys.queues, self.keys.workers],
            args=[self.keys.prefix, worker],
        ))

    def heartbeat(self, timeout_ms: int) -> tuple[bool, list[str]]:
        """Record this worker alive; returns whether it was missing (first beat, or its
        leases were returned by another worker) and the workers silent for ``timeout_ms``."""
        missing, silent = self._heartbeat(keys=[self.keys.workers],
                                          args=[self.worker, timeout_ms])
        return bool(missing), [w.decode() if isinstance(w, bytes) else w for w in silent]

    def report_open(self, documents: list[dict[str, Any]], expire_ms: int) -> None:
        """Say which of this worker's documents are open for long (for `crawler status`),
        until the worker's next report or its silence."""
        key = self.keys.open_documents(self.worker)
        if documents:
            self.server.set(key, json.dumps(documents), px=expire_ms)
        else:
            self.server.delete(key)

    def held(self, leases: list[str]) -> list[bool]:
        """Whether each lease is still this worker's."""
        if not leases:
            return []
        values = self.server.hmget(self.keys.inflight(self.worker), leases)
        return [value is not None for value in values]

    # -- reading ---------------------------------------------------------------------------------

    def outlets(self) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m
                      for m in self.server.smembers(self.keys.queues))

    def depths(self, outlets: Iterable[str]) -> dict[str, int]:
        outlets = list(outlets)
        pipe = self.server.pipeline(transaction=False)
        for outlet in outlets:
            pipe.zcard(self.keys.queue(outlet))
        return dict(zip(outlets, pipe.execute(), strict=True))


def open_documents(server: Redis, keys: RedisKeys, workers: Iterable[str]) -> list[dict[str, Any]]:
    """The documents the workers report open for long, the longest first."""
    workers = list(workers)
    reports = server.mget([keys.open_documents(w) for w in workers]) if workers else []
    found = [{**document, "worker": worker}
             for worker, report in zip(workers, reports, strict=True) if report
             for document in json.loads(report)]
    return sorted(found, key=lambda d: -d["seconds"])


def inflight_by_outlet(server: Redis, keys: RedisKeys) -> tuple[dict[str, int], dict[str, Any]]:
    """(leased requests per outlet, {worker: last heartbeat ms}) across all workers."""
    workers = {
        (w.decode() if isinstance(w, bytes) else w): int(score)
        for w, score in server.zrange(keys.workers, 0, -1, withscores=True)
    }
    counts: dict[str, int] = {}
    for worker in workers:
        for value in server.hvals(keys.inflight(worker)):
            outlet = value.split(b"\0", 1)[0].decode()
            counts[outlet] = counts.get(outlet, 0) + 1
    return counts, workers
