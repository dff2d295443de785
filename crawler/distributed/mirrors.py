"""Mirror health shared by every worker through Redis.

When one worker finds a mirror seized, the others stop sending to it at their next refresh
(``MIRROR_HEALTH_REFRESH`` seconds), and only one worker in all probes a mirror whose
cool-down is over. Reads come from a local copy, so the hot path (a healthy mirror
answering) costs no Redis command; every change is one atomic script on the Redis clock.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from crawler.context import crawl_context
from crawler.core.judging import CONTENT, SERVICE, may_probe
from crawler.distributed.keys import RedisKeys
from crawler.mirrors import MirrorHealth

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Outlet

logger = logging.getLogger(__name__)

#: seconds between a worker's reports that a mirror served a page of a kind
SERVED_TELL_EVERY = 5.0

_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""
# a value is "failures|down until ms|reason|evidence|not before ms": evidence while out,
# not before ms (0: none) once a Retry-After held it (values written before there was
# evidence have three fields, and read as service evidence; before there were holds, four)
_PARSE = """
local failures, down, reason, evidence, hold = 0, 0, '', '', 0
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
    local f = {}
    for part in string.gmatch(v .. '|', '([^|]*)|') do f[#f + 1] = part end
    failures, down, reason = tonumber(f[1]), tonumber(f[2]), f[3] or ''
    evidence, hold = f[4] or '', tonumber(f[5] or '0') or 0
end
local function save(failures, down, reason, evidence)
    redis.call('HSET', KEYS[1], ARGV[1],
               failures .. '|' .. down .. '|' .. reason .. '|' .. evidence .. '|' .. hold)
end
"""
# ARGV: mirror, threshold, cooldown ms, strong (0/1), reason -> {went down (0/1), down until}
_FAILURE = _NOW + _PARSE + """
failures = failures + 1
local was_up = down == 0
if ARGV[4] == '1' or failures >= tonumber(ARGV[2]) or not was_up then
    down = now + tonumber(ARGV[3])
    if ARGV[4] == '1' then evidence = 'content'
    elseif evidence == '' then evidence = 'service' end
end
save(failures, down, ARGV[5], evidence)
if was_up and down > 0 then return {1, down} end
return {0, down}
"""
# ARGV: mirror, serves the outlet (0/1) -> 1 when it came back up; a hold stays
_SUCCESS = _PARSE + """
if failures == 0 and down == 0 then return 0 end
if evidence == 'content' and ARGV[2] ~= '1' then return 0 end
save(0, 0, '', '')
if down > 0 then return 1 end
return 0
"""
# ARGV: mirror, cooldown ms -> 1 when this caller won the probe of a cooled-down mirror
# (none while it is held)
_CLAIM_PROBE = _NOW + _PARSE + """
if down > 0 and down <= now and hold <= now then
    save(failures, now + tonumber(ARGV[2]), 'probe', evidence)
    return 1
end
return 0
"""
# ARGV: mirror, Retry-After ms -> not before ms (a shorter one never shortens a hold)
_HOLD = _NOW + _PARSE + """
local asked = now + math.max(0, tonumber(ARGV[2]))
if asked > hold then
    hold = asked
    save(failures, down, reason, evidence)
end
return hold
"""
_READ = _NOW + """
return {now, redis.call('HGETALL', KEYS[1])}
"""


@dataclass(frozen=True)
class SharedMirrorState:
    """A ``<prefix>:mirrors:<outlet>`` hash value."""

    failures: int
    #: ms on the Redis clock; 0 while in rotation
    down_until: int
    reason: str
    #: CONTENT or SERVICE while out; values written before there was evidence read as SERVICE
    evidence: str | None
    #: ms on the Redis clock before which it may not be asked (Retry-After); 0 for none
    not_before: int = 0


def parse_mirror_state(value: bytes | str) -> SharedMirrorState:
    text = value.decode() if isinstance(value, bytes) else value
    failures, down_until, reason, *rest = text.split("|")
    evidence = rest[0] if rest else ""
    not_before = int(rest[1] or 0) if len(rest) > 1 else 0
    down = int(down_until)
    return SharedMirrorState(int(failures), down, reason,
                             (evidence or SERVICE) if down else None, not_before)


class RedisMirrorHealth(MirrorHealth):
    def __init__(self, crawler: Crawler, server, keys: RedisKeys, failure_threshold: int,
                 cooldown: float, refresh: float) -> None:
        super().__init__(crawler, failure_threshold=failure_threshold, cooldown=cooldown)
        self.server = server
        self.keys = keys
        self.refresh_interval = refresh
        self._failure = server.register_script(_FAILURE)
        self._success = server.register_script(_SUCCESS)
        self._claim = server.register_script(_CLAIM_PROBE)
        self._read = server.register_script(_READ)
        self._hold = server.register_script(_HOLD)
        # outlet -> (monotonic time read, Redis time then in ms, {mirror: down until ms})
        self._cache: dict[str, tuple[float, int, dict[str, int]]] = {}
        # outlet -> the mirrors out on content evidence, as last read or written
        self._checked_only: dict[str, set[str]] = {}
        # outlet -> {mirror: not before, ms on the Redis clock}, as last read or written
        self._holds: dict[str, dict[str, int]] = {}
        # mirrors this worker saw fail since their last success: a success must reset them
        self._failing: set[tuple[str, str]] = set()
        # (outlet, mirror, kind) -> when this worker last told Redis it served (wall clock)
        self._served_told: dict[tuple[str, str, str | None], float] = {}
        # outlet -> (monotonic time read, {(mirror, kind): served at, wall clock})
        self._served_read: dict[str, tuple[float, dict[tuple[str, str | None], float]]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisMirrorHealth:
        settings = crawler.settings
        return cls(
            crawler, crawl_context(crawler).redis, RedisKeys.from_settings(settings),
            failure_threshold=settings.getint("MIRROR_FAILURE_THRESHOLD"),
            cooldown=settings.getfloat("MIRROR_COOLDOWN"),
            refresh=settings.getfloat("MIRROR_HEALTH_REFRESH"),
        )

    # -- the local copy --------------------------------------------------------------------------

    def _view_ms(self, outlet: str) -> tuple[int, dict[str, int]]:
        """(Redis time now in ms, estimated; {mirror: down until ms, 0 when up})."""
        cached = self._cache.get(outlet)
        mono = time.monotonic()
        if cached is None or mono - cached[0] >= self.refresh_interval:
            try:
                now, flat = self._read(keys=[self.keys.mirrors(outlet)])
            except RedisError as exc:
                if cached is None:
                    logger.warning("Mirror health unreadable (%s): treating mirrors as up", exc)
                    return int(time.time() * 1000), {}
                return cached[1] + int((mono - cached[0]) * 1000), cached[2]
            states = {flat[i].decode(): parse_mirror_state(flat[i + 1])
                      for i in range(0, len(flat), 2)}
            downs = {mirror: state.down_until for mirror, state in states.items()}
            self._checked_only[outlet] = {m for m, state in states.items()
                                          if not may_probe(state.evidence, False)}
            self._holds[outlet] = {m: state.not_before for m, state in states.items()
                                   if state.not_before}
            if cached is not None:
                for mirror in set(downs) | set(cached[2]):
                    before, after = cached[2].get(mirror, 0) == 0, downs.get(mirror, 0) == 0
                    if before != after:
                        self._changed(outlet, mirror, up=after)
            else:
                # out before this worker looked (a worker started, or restarted, mid-outage):
                # its parts that act on a mirror out (mirror checks) must hear of it too
                for mirror, down in downs.items():
                    if down:
                        self._found_out(outlet, mirror, states[mirror].reason)
            self._cache[outlet] = cached = (mono, int(now), downs)
        return cached[1] + int((mono - cached[0]) * 1000), cached[2]

    def _set_local(self, outlet: str, mirror: str, down_until: int,
                   evidence: str | None = None) -> None:
        cached = self._cache.get(outlet)
        if cached is not None:
            cached[2][mirror] = down_until
        checked = self._checked_only.setdefault(outlet, set())
        if not down_until:
            checked.discard(mirror)
        elif not may_probe(evidence, False):
            checked.add(mirror)

    # -- MirrorHealth ----------------------------------------------------------------------------

    def view(self, outlet: Outlet) -> tuple[float, dict[str, float | None]]:
        now, downs = self._view_ms(outlet.name)
        return now / 1000, {m: (downs.get(m, 0) / 1000) or None for m in outlet.mirrors}

    def checked_only(self, outlet: Outlet) -> frozenset[str]:
        self._view_ms(outlet.name)
        return frozenset(self._checked_only.get(outlet.name, ()))

    def held(self, outlet: Outlet) -> dict[str, float]:
        now, _ = self._view_ms(outlet.name)
        return {m: (until - now) / 1000 for m, until in self._holds.get(outlet.name, {}).items()
                if until > now}

    def claim_probe(self, outlet: str, mirror: str) -> bool:
        try:
            won = self._claim(keys=[self.keys.mirrors(outlet)],
                              args=[mirror, int(self.cooldown * 1000)])
        except RedisError:
            return False
        if won:
            now, _ = self._view_ms(outlet)
            self._set_local(outlet, mirror, now + int(self.cooldown * 1000))
        return bool(won)

    def record_success(self, outlet: str, mirror: str, *, serves_outlet: bool = False) -> None:
        cached = self._cache.get(outlet)
        if (cached is not None and cached[2].get(mirror, 0) == 0
                and (outlet, mirror) not in self._failing):
            return  # the hot path: known good, nothing to tell Redis
        if mirror in self._checked_only.get(outlet, ()) and not serves_outlet:
            return  # only a mirror check brings it back (the script says so too)
        try:
            came_back = self._success(keys=[self.keys.mirrors(outlet)],
                                      args=[mirror, 1 if serves_outlet else 0])
        except RedisError:
            return
        self._failing.discard((outlet, mirror))
        self._set_local(outlet, mirror, 0)
        if came_back:
            self._changed(outlet, mirror, up=True)

    def record_failure(self, outlet: str, mirror: str, reason: str, *, strong: bool = False):
        self._failing.add((outlet, mirror))
        try:
            went_down, down_until = self._failure(
                keys=[self.keys.mirrors(outlet)],
                args=[mirror, self.failure_threshold, int(self.cooldown * 1000),
                      1 if strong else 0, reason[:200].replace("|", "/")],
            )
        except RedisError as exc:
            logger.warning("Could not record a failure of %s (%s)", mirror, exc)
            return
        self._set_local(outlet, mirror, int(down_until), CONTENT if strong else SERVICE)
        if went_down:
            self._changed(outlet, mirror, up=False, reason=reason)

    def record_served(self, outlet: str, mirror: str, kind: str) -> None:
        super().record_served(outlet, mirror, kind)
        # told at most every SERVED_TELL_EVERY seconds per mirror and kind: the hot path stays
        # nearly free, and a worker that starts later still knows which mirrors served lately
        now = time.time()
        if now - self._served_told.get((outlet, mirror, kind), -SERVED_TELL_EVERY) < \
                SERVED_TELL_EVERY:
            return
        self._served_told[(outlet, mirror, kind)] = now
        ms = int(now * 1000)
        # unreachable, this worker still knows; the others learn at a later page it serves
        with contextlib.suppress(RedisError):
            self.server.hset(self.keys.served(outlet),
                             mapping={f"{mirror}|{kind}": ms, f"{mirror}|*": ms})

    def served_at(self, outlet: Outlet, mirror: str, kind: str | None) -> float | None:
        mono = time.monotonic()
        cached = self._served_read.get(outlet.name)
        if cached is None or mono - cached[0] >= self.refresh_interval:
            try:
                flat = self.server.hgetall(self.keys.served(outlet.name))
            except RedisError:
                flat = {}
            read: dict[tuple[str, str | None], float] = {}
            for field, value in flat.items():
                name, _, of_kind = field.decode().rpartition("|")
                read[(name, None if of_kind == "*" else of_kind)] = int(value) / 1000
            self._served_read[outlet.name] = cached = (mono, read)
        times = [t for t in (super().served_at(outlet, mirror, kind),
                             cached[1].get((mirror, kind))) if t is not None]
        return max(times) if times else None

    def hold(self, outlet: str, mirror: str, seconds: float) -> None:
        try:
            until = self._hold(keys=[self.keys.mirrors(outlet)],
                               args=[mirror, int(seconds * 1000)])
        except RedisError as exc:
            logger.warning("Could not record the Retry-After of %s (%s)", mirror, exc)
            return
        # this worker holds back at once; the others at their next refresh
        holds = self._holds.setdefault(outlet, {})
        before = holds.get(mirror, 0)
        holds[mirror] = int(until)
        if before <= self._view_ms(outlet)[0]:
            self._held(outlet, mirror, seconds)
