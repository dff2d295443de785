"""Mirror candidates shared by every worker through Redis.

One hash holds every outlet's candidates (``<prefix>:mirror_candidates``, field
``<outlet>|<base>``, value the candidate as JSON), so an adoption reaches every worker at its
next refresh (``MIRROR_DISCOVERY_REFRESH``) and survives a worker's restart. A candidate is
verified by one worker in all: the one that wins its lease
(``<prefix>:mirror_verify:<outlet>|<base>``, ``SET NX`` with ``MIRROR_DISCOVERY_LEASE``
seconds on the Redis clock). A worker killed while verifying leaves the candidate
``verifying`` with a lease that runs out; the next worker to look wins it and verifies again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from crawler.context import crawl_context
from crawler.distributed.keys import RedisKeys
from crawler.mirror_registry import Candidate, MirrorRegistry

if TYPE_CHECKING:
    from redis import Redis
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def candidates_key(keys: RedisKeys) -> str:
    return f"{keys.prefix}:mirror_candidates"


def lease_key(keys: RedisKeys, outlet: str, base: str) -> str:
    return f"{keys.prefix}:mirror_verify:{outlet}|{base}"


class RedisMirrorRegistry(MirrorRegistry):
    def __init__(self, server: Redis, keys: RedisKeys, owner: str, lease: float,
                 crawler: Crawler | None = None) -> None:
        super().__init__(crawler)
        self.server = server
        self.keys = keys
        self.owner = owner
        self.lease = lease
        self.refresh()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisMirrorRegistry:
        context = crawl_context(crawler)
        return cls(context.redis, RedisKeys.from_settings(crawler.settings), context.worker_id,
                   crawler.settings.getfloat("MIRROR_DISCOVERY_LEASE"), crawler)

    def refresh(self) -> None:
        try:
            values = self.server.hgetall(candidates_key(self.keys))
        except RedisError as exc:
            logger.warning("Cannot read the mirror candidates: %s", exc)
            return
        candidates = {}
        for value in values.values():
            candidate = Candidate(**json.loads(value))
            candidates[(candidate.outlet, candidate.base)] = candidate
        self._candidates = candidates

    def save(self, candidate: Candidate) -> None:
        super().save(candidate)
        try:
            self.server.hset(candidates_key(self.keys), f"{candidate.outlet}|{candidate.base}",
                             json.dumps(candidate.to_dict()))
        except RedisError as exc:
            logger.warning("Cannot keep mirror candidate %s of %s: %s", candidate.base,
                           candidate.outlet, exc)

    def claim(self, outlet: str, base: str) -> bool:
        try:
            return bool(self.server.set(lease_key(self.keys, outlet, base), self.owner, nx=True,
                                        px=int(self.lease * 1000)))
        except RedisError:
            return False

    def release(self, outlet: str, base: str) -> None:
        key = lease_key(self.keys, outlet, base)
        # only our own lease: one that ran out may be another worker's by now
        with contextlib.suppress(RedisError):
            self.server.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                             "return redis.call('DEL', KEYS[1]) end return 0", 1, key,
                             self.owner)
