"""Recurring schedules, and the beat service that queues their sections when due.

A schedule is one (outlet, section) with an interval, kept in the hash
``<prefix>:schedules``. Any number of beats may run: one holds the lease ``<prefix>:beat``
and does the work, the others stand by and take over when its lease lapses. Each run is
claimed and its requests queued in one Lua script on the Redis clock, so even two beats that
both believe they lead (a paused process, a lapsed lease) queue a section once per interval.
A beat that was down runs each missed schedule once when it returns, not once per missed
interval.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from dataclasses import asdict, dataclass

from redis import Redis
from redis.exceptions import RedisError

from crawler.core.outlets import OutletCatalog, OutletError
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.distributed.revisits import RevisitQueuer
from crawler.spiders.outlet import OutletSpider
from crawler.storage import Store, StoreError

logger = logging.getLogger(__name__)

@dataclass
class Schedule:
    outlet: str
    section: str
    every: float
    #: Unix times (Redis clock); next_run <= now means due
    next_run: float
    last_run: float | None = None
    runs: int = 0

    @property
    def field(self) -> str:
        return f"{self.outlet}|{self.section}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: bytes | str) -> Schedule:
        return cls(**json.loads(data))


# Claim a due run and queue its requests, atomically.
# KEYS: schedules hash, the outlet's queue, the set of queues.
# ARGV: field, outlet, then score/payload pairs. Returns the new schedule JSON, or false
# when not due (already run by another beat, or removed).
_RUN_IF_DUE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local s = cjson.decode(raw)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if s['next_run'] > now then return false end
-- the next run after now on the schedule's own cadence: missed runs collapse into this one
local missed = math.floor((now - s['next_run']) / s['every'])
s['next_run'] = s['next_run'] + (missed + 1) * s['every']
s['last_run'] = now
s['runs'] = s['runs'] + 1
local encoded = cjson.encode(s)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
for i = 3, #ARGV, 2 do
    redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('SADD', KEYS[3], ARGV[2])
return encoded
"""

# Take or keep the beat lease. KEYS: lease key. ARGV: holder, ttl ms. Returns 1 when held.
_HOLD_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""

_DROP_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class Schedules:
    """The schedules in Redis."""

    def __init__(self, server: Redis, keys: RedisKeys) -> None:
        self.server = server
        self.keys = keys
        self._run_if_due = server.register_script(_RUN_IF_DUE)

    def redis_now(self) -> float:
        seconds, micros = self.server.time()
        return seconds + micros / 1e6

    def add(self, outlet: str, sections: list[str], every: float) -> list[Schedule]:
        """Schedule each section every ``every`` seconds, the first run now. Scheduling a
        section again changes its interval and keeps its history."""
        now = self.redis_now()
        existing = {s.field: s for s in self.all()}
        added = []
        for section in sections:
            schedule = Schedule(outlet, section, every, next_run=now)
            old = existing.get(schedule.field)
            if old is not None:
                schedule.last_run, schedule.runs = old.last_run, old.runs
                schedule.next_run = min(old.next_run, now + every)
            self.server.hset(self.keys.schedules, schedule.field, schedule.to_json())
            added.append(schedule)
        return added

    def remove(self, outlet: str, sections: list[str] | None = None) -> list[str]:
        fields = [s.field for s in self.all()
                  if s.outlet == outlet and (not sections or s.section in sections)]
        if fields:
            self.server.hdel(self.keys.schedules, *fields)
        return fields

    def all(self) -> list[Schedule]:
        raw = self.server.hgetall(self.keys.schedules)
        return sorted((Schedule.from_json(v) for v in raw.values()),
                      key=lambda s: (s.outlet, s.section))

    def run_if_due(self, schedule: Schedule, queues: OutletQueues,
                   spider: OutletSpider, catalog: OutletCatalog) -> Schedule | None:
        outlet = catalog.get(schedule.outlet)
        args: list = [schedule.field, schedule.outlet]
        for request in spider.seed_requests(outlet, [schedule.section]):
            args += [-request.priority, queues.encode(request)]
        result = self._run_if_due(
            keys=[self.keys.schedules, self.keys.queue(schedule.outlet), self.keys.queues],
            args=args,
        )
        return Schedule.from_json(result) if result else None


class Beat:
    """The long-running service behind `crawler beat`."""

    def __init__(self, server: Redis, keys: RedisKeys, catalog: OutletCatalog,
                 tick: float = 1.0, lease_seconds: float = 10.0, store: Store | None = None,
                 revisit_every: float = 60.0, revisit_batch: int = 1000) -> None:
        self.server = server
        self.keys = keys
        self.catalog = catalog
        self.tick = tick
        self.lease_ms = int(lease_seconds * 1000)
        self.holder = uuid.uuid4().hex
        self.schedules = Schedules(server, keys)
        self.spider = OutletSpider()
        self.queues = OutletQueues(server, keys, "beat", self.spider)
        self._hold_lease = server.register_script(_HOLD_LEASE)
        self._drop_lease = server.register_script(_DROP_LEASE)
        self._stopping = threading.Event()
        self._leading: bool | None = None
        self._redis_down = False
        #: with a store, the stored articles of scheduled outlets are revisited when due
        self.revisits = RevisitQueuer(server, keys, store, self.queues, self.spider,
                                      revisit_batch) if store is not None else None
        self.revisit_every = revisit_every
        self._next_revisit_check = 0.0

    def stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> None:
        logger.info("Beat %s started", self.holder[:8])
        while not self._stopping.is_set():
            try:
                self.beat_once()
                if self._redis_down:
                    logger.warning("Redis reachable again: resuming")
                    self._redis_down = False
            except RedisError as exc:
                if not self._redis_down:
                    logger.error("Redis unreachable (%s): retrying", exc)
                    self._redis_down = True
            self._stopping.wait(self.tick)
        self._release()
        logger.info("Beat %s stopped", self.holder[:8])

    def beat_once(self) -> list[Schedule]:
        """Queue what is due, if this beat holds the lease; returns the runs made."""
        leading = bool(self._hold_lease(keys=[self.keys.beat], args=[self.holder, self.lease_ms]))
        if leading != self._leading:
            logger.info("Beat %s is %s", self.holder[:8], "leading" if leading else "standing by")
            self._leading = leading
        if not leading:
            return []
        now = self.schedules.redis_now()
        runs = []
        for schedule in self.schedules.all():
            if schedule.next_run > now:
                continue
            try:
                ran = self.schedules.run_if_due(schedule, self.queues, self.spider, self.catalog)
            except (OutletError, ValueError) as exc:
                logger.error("Schedule %s cannot run: %s", schedule.field, exc)
                continue
            if ran is not None:
                logger.info("Queued %s %s (run %d; next in %.0f s)", ran.outlet, ran.section,
                            ran.runs, ran.next_run - now)
                runs.append(ran)
        if self.revisits is not None and now >= self._next_revisit_check:
            self._next_revisit_check = now + self.revisit_every
            self.queue_revisits(now)
        return runs

    def queue_revisits(self, now: float) -> int:
        """Queue the due revisits of every scheduled outlet; returns how many."""
        queued = 0
        for name in sorted({s.outlet for s in self.schedules.all()}):
            try:
                queued += self.revisits.queue_due(self.catalog.get(name), now)
            except (OutletError, StoreError) as exc:
                logger.error("Revisits of %s cannot be queued: %s", name, exc)
        return queued

    def _release(self) -> None:
        with contextlib.suppress(RedisError):  # else the lease lapses by itself
            self._drop_lease(keys=[self.keys.beat], args=[self.holder])
