"""Mirror health, and request identity that does not depend on the mirror.

A document is (outlet, path). Which mirror serves it is chosen late and may change on
failure, so fingerprints (dedup) are computed on the canonical URL: the same path on the
outlet's first mirror.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from scrapy.utils.misc import build_from_crawler, load_object
from w3lib.url import canonicalize_url

from crawler import signals
from crawler.outlets import Outlet, OutletCatalog

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


@dataclass
class MirrorState:
    consecutive_failures: int = 0
    #: monotonic time until which the mirror is out of rotation; None while it is up
    down_until: float | None = None
    last_reason: str | None = None


class MirrorHealth:
    """Which mirrors of each outlet are in rotation, in one process.

    A mirror leaves rotation after ``MIRROR_FAILURE_THRESHOLD`` consecutive failures (at once
    when it serves a block page), stays out for ``MIRROR_COOLDOWN`` seconds, then one request
    probes it: a success brings it back, a failure sends it out for another cool-down.

    The distributed mode subclasses this to share the state through Redis; the middlewares
    only use the public methods.
    """

    def __init__(
        self,
        crawler: Crawler | None = None,
        failure_threshold: int = 3,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.crawler = crawler
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.clock = clock
        self._states: dict[tuple[str, str], MirrorState] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorHealth:
        return cls(
            crawler,
            failure_threshold=crawler.settings.getint("MIRROR_FAILURE_THRESHOLD"),
            cooldown=crawler.settings.getfloat("MIRROR_COOLDOWN"),
        )

    # -- state storage: the distributed subclass overrides these two ---------------------------

    def _state(self, outlet: str, mirror: str) -> MirrorState:
        key = (outlet, mirror)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = MirrorState()
        return state

    def _save(self, outlet: str, mirror: str, state: MirrorState) -> None:
        self._states[(outlet, mirror)] = state

    # -- queries ---------------------------------------------------------------------------------

    def is_up(self, outlet: str, mirror: str) -> bool:
        return self._state(outlet, mirror).down_until is None

    def choose(self, outlet: Outlet, exclude: frozenset[str] = frozenset(),
               allow_down: bool = True) -> str | None:
        """The mirror to send the next request for ``outlet`` to, None when all are excluded.

        The first mirror in preference order that is up; else one whose cool-down is over
        (that request is its probe); else, when every mirror is out, the one back soonest, so
        that work keeps being tried rather than dropped (unless ``allow_down`` is false).
        ``exclude`` holds mirrors this document already failed on in the current round.
        """
        now = self.clock()
        soonest: tuple[float, str] | None = None
        for mirror in outlet.mirrors:
            if mirror in exclude:
                continue
            state = self._state(outlet.name, mirror)
            if state.down_until is None:
                return mirror
            if state.down_until <= now:
                # one probe per cool-down: push the window on so others don't pile in
                state.down_until = now + self.cooldown
                self._save(outlet.name, mirror, state)
                return mirror
            if soonest is None or state.down_until < soonest[0]:
                soonest = (state.down_until, mirror)
        return soonest[1] if soonest is not None and allow_down else None

    def states(self, outlet: Outlet) -> dict[str, bool]:
        """mirror -> in rotation, in preference order."""
        return {m: self.is_up(outlet.name, m) for m in outlet.mirrors}

    # -- updates ---------------------------------------------------------------------------------

    def record_success(self, outlet: str, mirror: str) -> None:
        state = self._state(outlet, mirror)
        if state.consecutive_failures == 0 and state.down_until is None:
            return  # the hot path: nothing changes
        was_down = state.down_until is not None
        self._save(outlet, mirror, MirrorState())
        if was_down:
            self._changed(outlet, mirror, up=True)

    def record_failure(self, outlet: str, mirror: str, reason: str, *, severe: bool = False):
        """Count a failure; ``severe`` (a block or seizure page) takes the mirror out at once."""
        state = self._state(outlet, mirror)
        state.consecutive_failures += 1
        state.last_reason = reason
        was_up = state.down_until is None
        if severe or state.consecutive_failures >= self.failure_threshold or not was_up:
            state.down_until = self.clock() + self.cooldown
        self._save(outlet, mirror, state)
        if was_up and state.down_until is not None:
            self._changed(outlet, mirror, up=False)

    def _changed(self, outlet: str, mirror: str, up: bool) -> None:
        if self.crawler is not None:
            self.crawler.signals.send_catch_log(
                signals.mirror_state_changed, outlet=outlet, mirror=mirror, up=up
            )


_health_by_crawler: WeakKeyDictionary[Crawler, MirrorHealth] = WeakKeyDictionary()


def mirror_health(crawler: Crawler) -> MirrorHealth:
    """The crawler's one mirror-health object (``MIRROR_HEALTH_CLASS``), shared by the
    spider middleware that routes new requests and the downloader middleware that fails over."""
    health = _health_by_crawler.get(crawler)
    if health is None:
        cls = load_object(crawler.settings["MIRROR_HEALTH_CLASS"])
        health = _health_by_crawler[crawler] = build_from_crawler(cls, crawler)
    return health


_catalog_by_crawler: WeakKeyDictionary[Crawler, OutletCatalog] = WeakKeyDictionary()


def outlet_catalog(crawler: Crawler) -> OutletCatalog:
    """The crawler's outlets (``OUTLETS_DIR``), loaded once and shared by its components."""
    catalog = _catalog_by_crawler.get(crawler)
    if catalog is None:
        catalog = _catalog_by_crawler[crawler] = OutletCatalog.from_setting(
            crawler.settings.get("OUTLETS_DIR")
        )
    return catalog


class MirrorAwareFingerprinter:
    """Request fingerprints on the canonical URL, so a document has one fingerprint
    whichever mirror a request for it names.

    Requests of an outlet carry ``meta["outlet"]``; others (robots.txt) fall back to their URL.
    """

    def __init__(self, crawler: Crawler | None = None) -> None:
        self.crawler = crawler
        self._cache: WeakKeyDictionary[Request, bytes] = WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorAwareFingerprinter:
        return cls(crawler)

    def canonical_url(self, request: Request) -> str:
        name = request.meta.get("outlet")
        if name is None or self.crawler is None:
            return request.url
        return outlet_catalog(self.crawler).get(name).canonical_url(request.url)

    def fingerprint(self, request: Request) -> bytes:
        cached = self._cache.get(request)
        if cached is None:
            url = canonicalize_url(self.canonical_url(request))
            digest = hashlib.sha1(request.method.encode() + b" " + url.encode())
            if request.body:
                digest.update(b"\0" + request.body)
            cached = self._cache[request] = digest.digest()
        return cached
