"""The workers' scheduler: scrapy-redis's, with leases, persistence and Redis outages handled.

Built on :class:`scrapy_redis.scheduler.Scheduler` for its connection and settings handling;
it differs where that one loses work:

- Shared state is never deleted when a worker closes (scrapy-redis clears the queue and the
  dupefilter unless ``SCHEDULER_PERSIST``).
- A taken request is leased, not gone: it stays in ``<prefix>:inflight:<worker>`` until the
  crawler's ledger reports its final outcome (it calls :meth:`request_finished`), a follow-up
  request is queued in its place, or it is parked in the waiting room. Workers heartbeat;
  the leases of a worker silent for ``WORKER_TIMEOUT`` seconds go back to the queue. A worker
  that stops returns its unfinished leases itself. One that was only paused that long learns
  it at its next heartbeat and drops what it had taken and not started, unless leased again.
- Requests flow continuously: ``next_request`` takes from the outlets' queues in turn
  whenever the engine has room, and seeds are ordinary queued requests (``crawler
  schedule``), so nothing waits for the spider to go idle. One take leases up to
  ``SCHEDULER_TAKE_BATCH`` requests (never more than ``CONCURRENT_REQUESTS``); those the
  engine cannot start yet wait here, leased, and go back to the queue with the worker's
  other leases when it stops or dies.
- Acknowledgements wait up to ``SCHEDULER_ACK_DELAY`` seconds to ride on the next take (one
  script). A worker killed meanwhile has those requests run again, which stores nothing
  twice (storage is idempotent; a listing's links are in the dupefilter already); a worker
  that stops sends them before it returns its leases.
- New requests (a listing's links) are checked against the dupefilter and queued in
  batches of ``SCHEDULER_PUSH_BATCH``, one script each (check and queueing in one atomic
  step), sent when full, at the engine's next tick and before any lease is acknowledged: a
  listing is acknowledged only once its follow-ups are in Redis. Requests carrying a lease
  (a retry on another mirror) are queued one by one, releasing their lease in the same
  script.
- While Redis is unreachable, new requests and acknowledgements wait in memory and are
  retried; the worker logs, backs off and resumes. Its leases stay in Redis meanwhile, so a
  worker dying during the outage still loses nothing.
- No deprecated ``spider=`` argument to stats.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.misc import build_from_crawler, load_object
from scrapy_redis.scheduler import Scheduler as RedisScheduler

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.redact import redact_url
from crawler.distributed.dupefilter import SeenCheck
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.ledger import LOST
from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: how many of its long-open documents a worker reports, the oldest first
OPEN_REPORTED = 20
#: a request to queue, with the dupefilter's check for the push script (None: not checked)
Entry = tuple[str, Request, SeenCheck | None]


def take_size(batch: int, concurrency: int) -> int:
    """Requests to lease per take: the batch, but no more than the engine runs at once, so
    what waits in the worker is bounded by what it will start next."""
    return max(1, min(batch, concurrency))


def ack_due(pending_since: float | None, now: float, delay: float) -> bool:
    """Whether acknowledgements pending since ``pending_since`` go now rather than with the
    next take."""
    return pending_since is not None and now - pending_since >= delay


def may_take(starved_at: float | None, now: float, idle_poll: float) -> bool:
    """Whether to ask Redis for work. Once every queue came back empty, not before the idle
    poll is over (the waker, or this worker's own new requests, say sooner): each finished
    download would otherwise cost an empty take."""
    return starved_at is None or now - starved_at >= idle_poll


def still_held(taken: list[Request], held: list[bool]) -> list[Request]:
    """The requests of ``taken`` whose lease is still this worker's (``held``, in order)."""
    return [request for request, is_held in zip(taken, held, strict=True) if is_held]


class LeasingScheduler(RedisScheduler):
    def __init__(self, crawler: Crawler, server: Any) -> None:
        settings = crawler.settings
        super().__init__(server, persist=True)
        self.crawler = crawler
        self.stats = crawler.stats
        self.keys = RedisKeys.from_settings(settings)
        self.worker = crawl_context(crawler).worker_id
        self.heartbeat_interval = settings.getfloat("WORKER_HEARTBEAT")
        self.timeout_ms = int(settings.getfloat("WORKER_TIMEOUT") * 1000)
        self.retry_max = settings.getfloat("REDIS_RETRY_MAX")
        self.open_warn = settings.getfloat("DOCUMENT_OPEN_WARN")
        self.df = build_from_crawler(load_object(settings["DUPEFILTER_CLASS"]), crawler)
        self.queues: OutletQueues | None = None
        # new requests gathered for one round trip (see _flush_batch)
        self.push_batch = max(1, settings.getint("SCHEDULER_PUSH_BATCH"))
        self._batch: list[tuple[str, Request]] = []
        # taken in one go, leased, not started by the engine yet
        self.take_count = take_size(settings.getint("SCHEDULER_TAKE_BATCH"),
                                    settings.getint("CONCURRENT_REQUESTS"))
        self._taken: deque[Request] = deque()
        # what could not reach Redis yet: requests to queue, with their checks and the leases
        # they release
        self._unsent: deque[tuple[list[Entry], list[str]]] = deque()
        # leases to acknowledge, with the next take or once pending for ack_delay
        self._unacked: set[str] = set()
        self._unacked_since: float | None = None
        self.ack_delay = settings.getfloat("SCHEDULER_ACK_DELAY")
        # what becomes true with the acknowledgements: validators of documents read
        self._ack_fields: list[tuple[str, str, str]] = []
        self._outlets: list[str] = []
        self._outlets_read = 0.0
        self._turn = 0
        self._redis_down_since: float | None = None
        self._next_try = 0.0
        self._retry_delay = 0.5
        self._heartbeat = Ticker(self.beat, self.heartbeat_interval, "Heartbeat")
        self._joined = False
        self.idle_poll = settings.getfloat("SCHEDULER_IDLE_POLL")
        # when every queue last came back empty; None while there may be work
        self._starved_at: float | None = None
        self._waker = Ticker(self._tick, self.idle_poll, "The look for new work")
        # the ledger tells this scheduler of each end directly: a failed acknowledgement is seen
        self.ledger = crawl_context(crawler).ledger
        self.ledger.lease_keeper = self
        connect = crawler.signals.connect
        connect(self.on_spider_idle, signal=scrapy_signals.spider_idle)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LeasingScheduler:
        server = crawl_context(crawler).redis
        return cls(crawler, server)

    # -- life cycle ------------------------------------------------------------------------------

    def open(self, spider) -> None:
        self.spider = spider
        self.queues = OutletQueues(self.server, self.keys, self.worker, spider)
        self.df.open()
        self._heartbeat.start(now=True)
        self._waker.start()
        logger.info("Worker %s taking work from Redis", self.worker)

    def close(self, reason: str) -> None:
        self._heartbeat.stop()
        self._waker.stop()
        self._flush_batch()
        self._flush_unsent()
        self._flush_unacked()  # before the leases go back: what has ended must not run again
        self._taken.clear()  # leased: they go back to the queue with the rest
        # what is still open here goes back with its lease (now, or once the heartbeat
        # times out): Redis holds it
        self.ledger.all_handed_off()
        try:
            returned = self.queues.requeue_worker(self.worker)
        except RedisError as exc:
            logger.error(
                "Could not return this worker's leases (%s): they go back to the queue when "
                "its heartbeat times out", exc,
            )
            return
        if returned:
            logger.info("Returned %d unfinished requests to the queue", returned)
        if self._unsent or self._batch:
            logger.error("%d new requests could not be queued: Redis unreachable",
                         sum(len(e) for e, _ in self._unsent) + len(self._batch))
        self.df.close(reason)

    def on_spider_idle(self) -> None:
        raise DontCloseSpider("a worker waits for work until it is stopped")

    def beat(self) -> None:
        """Heartbeat, retry what Redis missed, and return the leases of dead workers."""
        try:
            missing, dead = self.queues.heartbeat(self.timeout_ms)
            self._redis_back()
        except RedisError as exc:
            self._redis_failed(exc)
            return
        if missing and self._joined:
            self._taken_over()
        self._joined = True
        self._report_open()
        self._flush_batch()
        self._flush_unsent()
        self._flush_unacked()
        for worker in dead:
            if worker == self.worker:
                continue  # never: this beat has just renewed its own
            try:
                moved = self.queues.requeue_worker(worker)
            except RedisError as exc:
                self._redis_failed(exc)
                return
            logger.warning("Worker %s went silent: returned its %d requests to the queue",
                           worker, moved)
            self.stats.inc_value("scheduler/requeued_from_dead_workers", moved)
            self._starved_at = None

    def _report_open(self) -> None:
        now = time.monotonic()
        documents = [{"url": redact_url(o.request.url),
                      "outlet": o.request.meta.get(meta.OUTLET),
                      "seconds": round(now - o.since, 1), "holder": o.holder}
                     for o in self.ledger.open_longer_than(self.open_warn)[:OPEN_REPORTED]]
        try:
            self.queues.report_open(documents, self.timeout_ms)
        except RedisError as exc:
            self._redis_failed(exc)

    def _taken_over(self) -> None:
        """This worker was silent past the timeout (paused, stopped) and another returned
        its leases to the queue: what it took and has not started is others' work now,
        unless it leased it again since it resumed."""
        logger.warning("Worker %s was silent for over %d s: its leases went back to the queue",
                       self.worker, self.timeout_ms // 1000)
        self.stats.inc_value("scheduler/taken_over")
        taken = list(self._taken)
        try:
            held = self.queues.held([r.meta["lease"] for r in taken])
        except RedisError as exc:
            self._redis_failed(exc)
            return  # run them all: twice is harmless, never is not
        kept = still_held(taken, held)
        if len(kept) < len(taken):
            logger.warning("Dropped %d requests taken before the pause: others run them",
                           len(taken) - len(kept))
            self.stats.inc_value("scheduler/dropped_taken_over", len(taken) - len(kept))
        self._taken = deque(kept)

    # -- Redis outages ---------------------------------------------------------------------------

    def _redis_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now
            logger.error("Redis unreachable (%s): holding work in memory and retrying", exc)
        self._next_try = now + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self.retry_max)

    def _redis_back(self) -> None:
        if self._redis_down_since is not None:
            logger.warning("Redis reachable again after %.0f s: resuming",
                           time.monotonic() - self._redis_down_since)
            self._redis_down_since = None
        self._retry_delay = 0.5

    def _redis_usable(self) -> bool:
        return self._redis_down_since is None or time.monotonic() >= self._next_try

    # -- scheduler API ---------------------------------------------------------------------------

    def enqueue_request(self, request: Request) -> bool:
        outlet = request.meta.get("outlet")
        if outlet is None:
            raise ValueError(f"request without an outlet cannot be queued: {request}")
        lease = request.meta.get("lease")
        if lease is None:
            self._batch.append((outlet, request))
            if len(self._batch) >= self.push_batch:
                self._flush_batch()
            return True
        self._flush_batch()
        entries: list[Entry] = [(outlet, request, None)]
        try:
            entries = self._entries([(outlet, request)])
            # a duplicate releases the lease too: its request is finished with this link
            queued = self._push(entries, [lease])
            self._redis_back()
        except RedisError as exc:
            self._redis_failed(exc)
            self._unsent.append((entries, [lease]))
            return True
        return queued > 0

    def _flush_batch(self) -> None:
        """Queue the gathered new requests the dupefilter has not seen: one script."""
        if not self._batch or not self._redis_usable():
            return
        batch, self._batch = self._batch, []
        try:
            entries = self._entries(batch)
        except RedisError as exc:
            self._redis_failed(exc)
            self._batch = batch + self._batch
            return
        try:
            self._push(entries)
            self._redis_back()
        except RedisError as exc:
            self._redis_failed(exc)
            # sent again as they are: the script ran entirely or not at all (asked again, its
            # checks give the same answers), and what a dupefilter let through here stays so
            self._unsent.append((entries, []))

    def _entries(self, batch: list[tuple[str, Request]]) -> list[Entry]:
        """The requests of ``batch`` with the dupefilter's check of each, for the push script
        to run. A dupefilter that cannot give one is asked here, and what it has seen left
        out (two round trips, and not atomic with the push)."""
        seen_check = getattr(self.df, "seen_check", None)
        if seen_check is None:
            return [(outlet, request, None) for outlet, request in self._unseen(batch)]
        return [(outlet, request, None if request.dont_filter else seen_check(request))
                for outlet, request in batch]

    def _push(self, entries: list[Entry], release: list[str] | tuple = ()) -> int:
        """Queue what the checks let through and release the leases; how many were queued."""
        if not entries and not release:
            return 0
        queued = self.queues.push_unseen(entries, release)
        for (_, request, _), was_queued in zip(entries, queued, strict=True):
            self.ledger.handed_off(request)  # queued in Redis, or a duplicate of a queued one
            if not was_queued:
                self.df.log(request, self.spider)
        count = sum(queued)
        if count:
            self.stats.inc_value("scheduler/enqueued/redis", count)
            self._starved_at = None  # work this worker may take at once
        return count

    def _unseen(self, batch: list[tuple[str, Request]]) -> list[tuple[str, Request]]:
        """The requests of ``batch`` the dupefilter has not seen (recording them as seen)."""
        checked = [(outlet, r) for outlet, r in batch if not r.dont_filter]
        batch_seen = getattr(self.df, "fingerprints_seen", None)
        fingerprinter = getattr(self.df, "fingerprinter", None)
        if batch_seen is not None and fingerprinter is not None:
            seen = batch_seen([fingerprinter.fingerprint(r) for _, r in checked])
        else:
            seen = [self.df.request_seen(r) for _, r in checked]
        duplicates = {id(r) for (_, r), was_seen in zip(checked, seen, strict=True) if was_seen}
        for _, request in checked:
            if id(request) in duplicates:
                self.df.log(request, self.spider)
        return [(outlet, r) for outlet, r in batch if id(r) not in duplicates]

    def next_request(self) -> Request | None:
        self._flush_batch()  # the engine's tick: what a callback yielded goes out now
        if not self._taken:
            self._take()
        if not self._taken:
            return None
        self.stats.inc_value("scheduler/dequeued/redis")
        request = self._taken.popleft()
        self.ledger.hold(request)
        return request

    def _take(self) -> None:
        """Lease the next requests, from the outlets' queues in turn, and send the pending
        acknowledgements in the same script."""
        now = time.monotonic()
        if not self._redis_usable() or not may_take(self._starved_at, now, self.idle_poll):
            return
        leases, fields = self._acks_to_send()
        try:
            if not self._outlets or now - self._outlets_read > 2.0:
                self._outlets = self.queues.outlets()
                self._outlets_read = now
            for _ in range(len(self._outlets)):
                outlet = self._outlets[self._turn % len(self._outlets)]
                self._turn += 1
                taken = self.queues.take(outlet, self.take_count, leases, fields)
                self._acks_sent()
                leases, fields = set(), []
                if taken:
                    self._taken.extend(taken)
                    self._starved_at = None
                    break
            else:
                self._starved_at = now
            self._redis_back()
        except RedisError as exc:
            self._redis_failed(exc)
            self._starved_at = now
        # not sent (no outlet has a queue, or Redis failed): they wait for the next chance
        self._unacked |= leases
        self._ack_fields[:0] = fields

    def _tick(self) -> None:
        if ack_due(self._unacked_since, time.monotonic(), self.ack_delay):
            self._flush_unacked()
        self._wake_if_work()

    def _wake_if_work(self) -> None:
        """While the engine has found nothing, look for work others queued (a schedule, a
        worker's new links) and wake it: it would otherwise wait for its 5 s heartbeat."""
        if self._starved_at is None or not self._redis_usable():
            return
        try:
            depths = self.queues.depths(self.queues.outlets())
        except RedisError:
            return
        if any(depths.values()):
            self._starved_at = None
            # Scrapy has no public call that makes the engine ask its scheduler again
            slot = getattr(self.crawler.engine, "_slot", None)
            if slot is not None:
                slot.nextcall.schedule()

    def has_pending_requests(self) -> bool:
        if self._unsent or self._batch or self._taken:
            return True
        try:
            return any(self.queues.depths(self.queues.outlets()).values())
        except RedisError:
            return True

    def __len__(self) -> int:
        try:
            queued = sum(self.queues.depths(self.queues.outlets()).values())
        except RedisError:
            queued = 0
        return queued + len(self._taken)

    def flush(self) -> None:
        """Never: the queues and the dupefilter belong to every worker."""

    # -- acknowledgements ------------------------------------------------------------------------

    def request_finished(self, request: Request, outcome: str) -> None:
        if outcome in LOST and hasattr(self.df, "forget"):
            # let a later crawl of the section try it again, or it would be a gap for ever
            try:
                self.df.forget(request)
            except RedisError as exc:
                logger.warning("Could not forget given-up %s (%s)", request.url, exc)
        self._ack([request])

    def _ack(self, requests: list[Any]) -> None:
        leases = {r.meta["lease"] for r in requests if r is not None and "lease" in r.meta}
        if not leases:
            return
        self._unacked |= leases
        for request in requests:
            if request is not None and meta.VALIDATORS in request.meta:
                self._ack_fields.append(tuple(request.meta[meta.VALIDATORS]))
        if self._unacked_since is None:
            self._unacked_since = time.monotonic()
        if ack_due(self._unacked_since, time.monotonic(), self.ack_delay):
            self._flush_unacked()

    def _acks_to_send(self) -> tuple[set[str], list[tuple[str, str, str]]]:
        """The pending acknowledgements, taken out, if they may go: only once the requests
        that follow from them are in Redis."""
        if not self._unacked or self._batch or self._unsent:
            return set(), []
        leases, self._unacked = self._unacked, set()
        fields, self._ack_fields = self._ack_fields, []
        return leases, fields

    def _acks_sent(self) -> None:
        if not self._unacked:
            self._unacked_since = None

    def _flush_unacked(self) -> None:
        if not self._unacked or not self._redis_usable():
            return
        # a lease is acknowledged only once the requests that follow from it are in Redis
        self._flush_batch()
        self._flush_unsent()
        leases, fields = self._acks_to_send()
        if not leases:
            return
        try:
            self.queues.ack(leases, fields)
            self._acks_sent()
        except RedisError as exc:
            self._unacked |= leases
            self._ack_fields[:0] = fields
            self._redis_failed(exc)

    def _flush_unsent(self) -> None:
        while self._unsent and self._redis_usable():
            entries, release = self._unsent[0]
            try:
                self._push(entries, release)
            except RedisError as exc:
                self._redis_failed(exc)
                return
            self._unsent.popleft()
