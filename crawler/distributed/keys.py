"""The Redis key layout of the distributed mode, in one place.

    <prefix>:queue:<outlet>        zset    serialized requests waiting (score: -priority)
    <prefix>:queues                set     outlets that have a queue
    <prefix>:workers               zset    worker id -> last heartbeat (ms, Redis clock)
    <prefix>:inflight:<worker>     hash    lease id -> "<outlet>\\0<score>\\0<request>"
    <prefix>:open:<worker>         string  the worker's documents open longer than
                                           DOCUMENT_OPEN_WARN (JSON; expires with it)
    <prefix>:waiting:<outlet>      zset    "<score>\\0<request>" of documents no mirror can
                                           take now (score: when it may go again, ms)
    <prefix>:waitings              set     outlets that have documents waiting
    <prefix>:mirrors:<outlet>      hash    mirror -> "<failures>|<down until ms>|<reason>"
    <prefix>:politeness:<outlet>   string  the earliest time (ms) of the next request
    <prefix>:active:<outlet>       zset    downloads under way -> their deadline (ms)
    <prefix>:schedules             hash    "<outlet>|<section>" -> schedule (JSON)
    <prefix>:beat                  string  the beat lease holder
    <prefix>:validators:<outlet>   hash    path -> ETag and Last-Modified of the last answer
    <prefix>:mirror_candidates     hash    "<outlet>|<base>" -> a mirror the outlet named (JSON)
    <prefix>:mirror_verify:<outlet>|<base>  string  the worker verifying it (expires)
                                           of a listing, feed or sitemap (JSON)
    <prefix>:revisits:<outlet>     zset    canonical URL -> when the beat last queued its
                                           revisit (s, Redis clock)
    <prefix>:dupefilter:...        see crawler.distributed.dupefilter (unless DUPEFILTER_KEY)

Nothing here is ever deleted because one worker stops.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "crawler"


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_settings(cls, settings) -> RedisKeys:
        return cls(settings.get("REDIS_KEY_PREFIX") or DEFAULT_PREFIX)

    def queue(self, outlet: str) -> str:
        return f"{self.prefix}:queue:{outlet}"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def inflight(self, worker: str) -> str:
        return f"{self.prefix}:inflight:{worker}"

    def open_documents(self, worker: str) -> str:
        return f"{self.prefix}:open:{worker}"

    def waiting(self, outlet: str) -> str:
        return f"{self.prefix}:waiting:{outlet}"

    def give_up(self, outlet: str) -> str:
        """Sorted set: the outlet's waiting documents by when they are given up (ms), so
        that one is given up though no mirror ever comes back."""
        return f"{self.prefix}:give-up:{outlet}"

    @property
    def waitings(self) -> str:
        return f"{self.prefix}:waitings"

    def mirrors(self, outlet: str) -> str:
        return f"{self.prefix}:mirrors:{outlet}"

    def served(self, outlet: str) -> str:
        """Hash: "<mirror>|<kind>" -> when a worker last saw the mirror serve a page of that
        kind ("*": any), ms since the epoch."""
        return f"{self.prefix}:served:{outlet}"

    def politeness(self, outlet: str) -> str:
        return f"{self.prefix}:politeness:{outlet}"

    def active(self, outlet: str) -> str:
        return f"{self.prefix}:active:{outlet}"

    @property
    def schedules(self) -> str:
        return f"{self.prefix}:schedules"

    @property
    def beat(self) -> str:
        return f"{self.prefix}:beat"

    def validators(self, outlet: str) -> str:
        return f"{self.prefix}:validators:{outlet}"

    def revisits(self, outlet: str) -> str:
        return f"{self.prefix}:revisits:{outlet}"

    @property
    def dupefilter(self) -> str:
        return f"{self.prefix}:dupefilter"
