"""A compact, exact request dupefilter shared by all workers through Redis.

scrapy-redis's ``RFPDupeFilter`` keeps one Redis set of 40-character hex fingerprints: about
90 bytes of Redis memory per URL. :class:`CompactDupeFilter` keeps the same answer in under
14 bytes per URL, and unlike a Bloom filter it never calls a new URL "seen" except on a full
collision of the bits it keeps.

Layout
------
Each fingerprint is hashed again (BLAKE2b, 12 bytes, so any fingerprinter's output is spread
evenly); the first 4 bytes pick one of ``DUPEFILTER_BUCKETS`` buckets, the next 8 bytes are a
binary field in that bucket's Redis hash, with an empty value::

    <DUPEFILTER_KEY>:<period>:<bucket>   hash   {8-byte field: ""}
    <DUPEFILTER_KEY>:layout              string the bucket count and period length in use

A hash of at most ``hash-max-listpack-entries`` (default 512) entries of at most 64 bytes is
stored by Redis as one flat listpack: 10 bytes per field (8, and 2 of element header and
back-length) and 2 per empty value, so 12 bytes per URL plus allocator rounding and a small
per-key share. ``HSETNX`` is the atomic test-and-set: two workers can never both see a URL
as new.

Memory, measured on Redis 7.0.15 with default settings (``benchmarks/dupefilter.py``, 10^6
URLs, 4096 buckets): 13.4 bytes per URL by the growth of ``used_memory`` (13.6 with
retention, whose keys carry an expiry), against 88.4 for ``RFPDupeFilter``; the fullest
bucket held 295 entries. A lookup is one round trip: HSETNX without retention, one EVALSHA
with it (one HEXISTS per older live period inside the script). A bucket that grows past 512
entries is converted by Redis to a real hash table and costs about five times as much, so
size the bucket count to the URLs one bucket key receives:

    DUPEFILTER_BUCKETS >= (URLs per period, or in total without retention) / 400,
    rounded up to a power of two.

At 400 per bucket on average the fullest of thousands of buckets stays under 512 (the
counts are binomial: the standard deviation is 20). The default, 4096, holds about 1.6
million URLs per period. Raising ``hash-max-listpack-entries`` on the server (e.g. to 1024)
allows half the buckets, at a slower insert into the longer listpacks.

False positives
---------------
A URL is wrongly taken for seen only if its 12 + 64 = 76 kept bits (at 4096 buckets:
log2(buckets) + 64 in general) equal those of a URL already stored. With n URLs stored,
the expected number of colliding pairs is n^2 / 2^77: 7e-12 at 10^6 URLs, 7e-6 at 10^9.
With retention, n is the number of URLs inside the window.

Retention
---------
``DUPEFILTER_RETENTION_DAYS = None`` (the default) remembers every URL for ever, in the
keys ``<key>:all:<bucket>``. With a number R, time is cut into periods of
``DUPEFILTER_PERIOD_DAYS`` = P (period number = Unix time // P): a new fingerprint goes into
the current period's keys, and a lookup checks the current period and the ceil(R / P)
before it, in one round trip (a Lua script: "seen in any of them, else HSETNX into the
current one"). A fingerprint is therefore remembered for at least R and less than
(ceil(R / P) + 1) * P after it was first recorded (R + P when P divides R); seeing it again
does not extend that, so a page still linked after R is fetched once more, then remembered
again. Each period's keys expire (PEXPIRE, set when a key is created) the moment that
period leaves the window, so memory stays flat: it holds the URLs first seen in the last
(ceil(R / P) + 1) * P at most. Bucket count and period length are fixed for the life of the
data (``<key>:layout`` records them and a worker configured differently refuses to start);
the retention may be changed at any time, keys that exist keep the expiry they were given.

The period number comes from each worker's clock: a worker whose clock is off by s seconds
shifts its window by s, nothing worse, since every live period is checked.

The workers' scheduler runs the same test-and-set inside the script that queues new requests
(:meth:`CompactDupeFilter.seen_check`, ``LUA_SEEN_OR_ADD``): a batch of links is checked and
queued in one round trip, and a link is never recorded as seen without being queued.

Settings: DUPEFILTER_KEY (default ``<REDIS_KEY_PREFIX>:dupefilter``), DUPEFILTER_BUCKETS,
DUPEFILTER_RETENTION_DAYS, DUPEFILTER_PERIOD_DAYS, DUPEFILTER_DEBUG; the Redis connection
comes from REDIS_URL (and the other ``REDIS_*`` settings) through ``scrapy_redis.connection``.
It works with Scrapy's scheduler and with scrapy-redis's (``DUPEFILTER_CLASS``); ``close()``
keeps the data, ``clear()`` deletes this filter's keys and nothing else. Keys of different
periods share no hash tag, so it needs a single Redis server, not Redis Cluster.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy.dupefilters import BaseDupeFilter
from scrapy.utils.misc import load_object
from scrapy.utils.request import RequestFingerprinter, referer_str

from crawler.connection import redis_client
from crawler.context import crawl_context
from crawler.distributed.keys import RedisKeys

if TYPE_CHECKING:
    from redis import Redis
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector
    from scrapy.utils.request import RequestFingerprinterProtocol

logger = logging.getLogger(__name__)

DEFAULT_KEY = "crawler:dupefilter"
DEFAULT_BUCKETS = 4096
DEFAULT_PERIOD_DAYS = 30.0
DAY = 86400.0

BUCKET_BYTES = 4
FIELD_BYTES = 8
# Commands per pipeline in the batch methods: bounded so one batch never holds Redis long.
PIPELINE_BATCH = 5000

# The test-and-set as a Lua function, for this filter's script and for scripts that check
# requests and queue them in one step (crawler.distributed.queue). keys[first]: the bucket in
# the current period; keys[first + 1 .. first + count - 1]: the same bucket in older live
# periods; expire_ms: milliseconds until the current period leaves the window (0: never).
# Returns 0 if the field is in any of them, else records it in the current one and returns 1,
# as HSETNX does.
LUA_SEEN_OR_ADD = """
local function seen_or_add(keys, first, count, field, expire_ms)
    for i = first + 1, first + count - 1 do
        if redis.call('HEXISTS', keys[i], field) == 1 then return 0 end
    end
    if redis.call('HSETNX', keys[first], field, '') == 0 then return 0 end
    if expire_ms > 0 and redis.call('PTTL', keys[first]) == -1 then
        redis.call('PEXPIRE', keys[first], expire_ms)
    end
    return 1
end
"""
# KEYS: as keys above, from 1; ARGV[1]: the field; ARGV[2]: expire_ms.
SEEN_OR_ADD = LUA_SEEN_OR_ADD + "return seen_or_add(KEYS, 1, #KEYS, ARGV[1], tonumber(ARGV[2]))\n"


@dataclass(frozen=True)
class SeenCheck:
    """What a script needs to test-and-set one fingerprint (see ``LUA_SEEN_OR_ADD``)."""

    keys: tuple[str, ...]
    field: bytes
    expire_ms: int


class LayoutMismatch(RuntimeError):
    """The filter's keys in Redis were written with another bucket count or period."""


class CompactDupeFilter(BaseDupeFilter):
    """Request dupefilter in Redis hashes: about 14 bytes per URL, exact, shared by workers.

    ``retention_days=None`` remembers for ever; ``clock`` gives Unix time in seconds.
    """

    def __init__(
        self,
        server: Redis,
        key: str = DEFAULT_KEY,
        *,
        fingerprinter: RequestFingerprinterProtocol | None = None,
        buckets: int = DEFAULT_BUCKETS,
        retention_days: float | None = None,
        period_days: float = DEFAULT_PERIOD_DAYS,
        debug: bool = False,
        stats: StatsCollector | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if buckets < 1 or buckets > 2 ** (8 * BUCKET_BYTES) or buckets & (buckets - 1):
            raise ValueError(f"DUPEFILTER_BUCKETS must be a power of two, not {buckets}")
        if not period_days > 0:
            raise ValueError(f"DUPEFILTER_PERIOD_DAYS must be positive, not {period_days}")
        if retention_days is not None and not retention_days > 0:
            raise ValueError(
                f"DUPEFILTER_RETENTION_DAYS must be positive or None, not {retention_days}"
            )
        self.server = server
        self.key = key
        self.fingerprinter = fingerprinter or RequestFingerprinter()
        self.buckets = buckets
        self.retention_days = retention_days
        self.period_days = period_days
        self.debug = debug
        self.stats = stats
        self.clock = clock
        self.logdupes = True
        self._period = period_days * DAY
        # older periods a lookup checks besides the current one
        self._older_periods = (
            None if retention_days is None else math.ceil(retention_days * DAY / self._period)
        )
        self._seen_or_add = server.register_script(SEEN_OR_ADD)
        self._own_key = re.compile(rf"{re.escape(key)}:(?:(?:all|-?\d+):\d+|layout)")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CompactDupeFilter:
        dupefilter = cls._from_settings(
            crawler.settings, crawler.request_fingerprinter, crawler.stats,
            crawl_context(crawler).redis,
        )
        dupefilter.check_layout()
        return dupefilter

    @classmethod
    def from_spider(cls, spider: Spider) -> CompactDupeFilter:
        """What scrapy-redis's scheduler calls when it opens."""
        return cls.from_crawler(spider.crawler)

    @classmethod
    def from_settings(
        cls,
        settings: BaseSettings,
        *,
        fingerprinter: RequestFingerprinterProtocol | None = None,
    ) -> CompactDupeFilter:
        """Without a crawler (scripts): give the fingerprinter the crawl uses.

        Scrapy's default one is built here only if the settings name it, since fingerprints
        from another fingerprinter would silently never match the crawl's.
        """
        if fingerprinter is None:
            fingerprinter_cls = load_object(
                settings.get("REQUEST_FINGERPRINTER_CLASS", RequestFingerprinter)
            )
            if fingerprinter_cls is not RequestFingerprinter:
                raise ValueError(
                    f"REQUEST_FINGERPRINTER_CLASS is {fingerprinter_cls.__qualname__}: "
                    "build the filter from_crawler() or pass that fingerprinter"
                )
            fingerprinter = RequestFingerprinter()
        dupefilter = cls._from_settings(settings, fingerprinter, None)
        dupefilter.check_layout()
        return dupefilter

    @classmethod
    def _from_settings(cls, settings, fingerprinter, stats, server=None) -> CompactDupeFilter:
        retention = settings.get("DUPEFILTER_RETENTION_DAYS")
        if isinstance(retention, str) and retention.strip().lower() in ("", "none"):
            retention = None
        return cls(
            server if server is not None else redis_client(settings),
            settings.get("DUPEFILTER_KEY") or RedisKeys.from_settings(settings).dupefilter,
            fingerprinter=fingerprinter,
            buckets=settings.getint("DUPEFILTER_BUCKETS", DEFAULT_BUCKETS),
            retention_days=None if retention is None else float(retention),
            period_days=settings.getfloat("DUPEFILTER_PERIOD_DAYS", DEFAULT_PERIOD_DAYS),
            debug=settings.getbool("DUPEFILTER_DEBUG"),
            stats=stats,
        )

    @property
    def layout(self) -> str:
        periods = "all" if self._older_periods is None else f"period={self._period:g}s"
        return f"v1 buckets={self.buckets} field={FIELD_BYTES}B {periods}"

    def check_layout(self) -> None:
        """Record the layout, or refuse one that differs from what the keys were written with:
        workers that bucket differently would never see each other's fingerprints."""
        layout_key = f"{self.key}:layout"
        if self.server.set(layout_key, self.layout, nx=True):
            return
        stored = self.server.get(layout_key)
        if isinstance(stored, bytes):
            stored = stored.decode()
        if stored is not None and stored != self.layout:
            raise LayoutMismatch(
                f"{layout_key} says {stored!r} but this worker is configured for "
                f"{self.layout!r}: set DUPEFILTER_BUCKETS, DUPEFILTER_PERIOD_DAYS and "
                "DUPEFILTER_RETENTION_DAYS (None or not) as the other workers have them, "
                "or clear() the filter to start over"
            )
        if stored is None:  # deleted in between: take it again
            self.check_layout()

    # -- the dupefilter interface -----------------------------------------------------------
    def request_seen(self, request: Request) -> bool:
        return self.fingerprint_seen(self.fingerprinter.fingerprint(request))

    def fingerprint_seen(self, fingerprint: bytes) -> bool:
        """True if the fingerprint was recorded before; records it if not."""
        return self._ask(self.server, fingerprint, self.clock()) == 0

    def fingerprints_seen(self, fingerprints: Iterable[bytes]) -> list[bool]:
        """:meth:`fingerprint_seen` for many, pipelined: one round trip per batch."""
        now = self.clock()
        results: list[bool] = []
        batch: list[bytes] = []
        for fingerprint in fingerprints:
            batch.append(fingerprint)
            if len(batch) == PIPELINE_BATCH:
                results += self._seen_batch(batch, now)
                batch = []
        if batch:
            results += self._seen_batch(batch, now)
        return results

    def seen_check(self, request: Request) -> SeenCheck:
        """The test-and-set of ``request`` for a script to run (``LUA_SEEN_OR_ADD``), so that
        a request is checked and queued in one atomic step."""
        return self._check(self.fingerprinter.fingerprint(request), self.clock())

    def forget(self, request: Request) -> bool:
        """Forget a request, so it can be fetched again; True if it was recorded."""
        return self.forget_fingerprint(self.fingerprinter.fingerprint(request))

    def forget_fingerprint(self, fingerprint: bytes) -> bool:
        bucket, field = self._locate(fingerprint)
        pipe = self.server.pipeline(transaction=False)
        for key in self._live_keys(bucket, self.clock()):
            pipe.hdel(key, field)
        return any(pipe.execute())

    def seen_count(self) -> int:
        """Fingerprints recorded in the live periods (fewer once some have been forgotten)."""
        now = self.clock()
        total = 0
        pipe = self.server.pipeline(transaction=False)
        for bucket in range(self.buckets):
            for key in self._live_keys(bucket, now):
                pipe.hlen(key)
            if len(pipe) >= PIPELINE_BATCH:
                total += sum(pipe.execute())
        return total + sum(pipe.execute())

    def close(self, reason: str = "") -> None:
        """Keep the fingerprints: the crawl goes on (scrapy-redis calls clear() when the
        scheduler does not persist)."""

    def clear(self) -> None:
        """Delete this filter's keys, and no other (not those of a filter whose key merely
        starts with this one's)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.key) + ":*"
        doomed: list = []
        for key in self.server.scan_iter(match=pattern, count=1000):
            name = key.decode() if isinstance(key, bytes) else key
            if self._own_key.fullmatch(name):
                doomed.append(key)
            if len(doomed) >= 1000:
                self.server.unlink(*doomed)
                doomed = []
        if doomed:
            self.server.unlink(*doomed)

    def log(self, request: Request, spider: Spider | None = None) -> None:
        extra = {"spider": spider} if spider is not None else None
        if self.debug:
            logger.debug(
                "Filtered duplicate request: %(request)s (referer: %(referer)s)",
                {"request": request, "referer": referer_str(request)},
                extra=extra,
            )
        elif self.logdupes:
            logger.debug(
                "Filtered duplicate request: %(request)s - no more duplicates will be shown"
                " (see DUPEFILTER_DEBUG to show all duplicates)",
                {"request": request},
                extra=extra,
            )
            self.logdupes = False
        if self.stats is not None:
            self.stats.inc_value("dupefilter/filtered")

    # -- internals --------------------------------------------------------------------------
    def _locate(self, fingerprint: bytes) -> tuple[int, bytes]:
        """The bucket number and field of a fingerprint."""
        digest = hashlib.blake2b(fingerprint, digest_size=BUCKET_BYTES + FIELD_BYTES).digest()
        bucket = int.from_bytes(digest[:BUCKET_BYTES], "big") & (self.buckets - 1)
        return bucket, digest[BUCKET_BYTES:]

    def _live_keys(self, bucket: int, now: float) -> list[str]:
        """The bucket's keys in every live period, the current period's first."""
        if self._older_periods is None:
            return [f"{self.key}:all:{bucket}"]
        current = int(now // self._period)
        return [
            f"{self.key}:{period}:{bucket}"
            for period in range(current, current - self._older_periods - 1, -1)
        ]

    def _expires_in_ms(self, now: float) -> int:
        """Milliseconds until the current period is older than the window."""
        window_end = (int(now // self._period) + self._older_periods + 1) * self._period
        return max(1, math.ceil((window_end - now) * 1000))

    def _ask(self, client, fingerprint: bytes, now: float):
        """Send the test-and-set through ``client`` (the server or a pipeline); the reply is
        1 if the fingerprint was new and has been recorded, 0 if it was seen before."""
        check = self._check(fingerprint, now)
        if self._older_periods is None:
            return client.hsetnx(check.keys[0], check.field, "")
        return self._seen_or_add(keys=check.keys, args=[check.field, check.expire_ms],
                                 client=client)

    def _check(self, fingerprint: bytes, now: float) -> SeenCheck:
        bucket, field = self._locate(fingerprint)
        expire_ms = 0 if self._older_periods is None else self._expires_in_ms(now)
        return SeenCheck(tuple(self._live_keys(bucket, now)), field, expire_ms)

    def _seen_batch(self, fingerprints: list[bytes], now: float) -> list[bool]:
        pipe = self.server.pipeline(transaction=False)
        for fingerprint in fingerprints:
            self._ask(pipe, fingerprint, now)
        return [added == 0 for added in pipe.execute()]
