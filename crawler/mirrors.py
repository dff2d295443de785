"""Mirror health, and request identity that does not depend on the mirror.

A document is (outlet, path). Which mirror serves it is chosen late and may change on
failure, so fingerprints (dedup) are computed on the canonical URL: the same path on the
outlet's first mirror.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from crawler.core import signals
from crawler.core.judging import may_probe
from crawler.core.mirror_state import (
    MirrorState,
    after_failure,
    after_probe_claim,
    after_retry_after,
    after_success,
    held,
    mirror_candidates,
)
from crawler.core.outlets import Outlet

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


@runtime_checkable
class MirrorStates(Protocol):
    """What a mirror health backend implements: where the states live, and the rule's
    updates (:mod:`crawler.core.mirror_state`), atomic for every reader. The queries over
    them (:meth:`MirrorHealth.choose` and the rest) are written once, in :class:`MirrorHealth`.
    """

    def view(self, outlet: Outlet) -> tuple[float, dict[str, float | None]]: ...

    def checked_only(self, outlet: Outlet) -> frozenset[str]: ...

    def held(self, outlet: Outlet) -> dict[str, float]: ...

    def claim_probe(self, outlet: str, mirror: str) -> bool: ...

    def record_success(self, outlet: str, mirror: str, *,
                       serves_outlet: bool = False) -> None: ...

    def record_failure(self, outlet: str, mirror: str, reason: str, *,
                       strong: bool = False) -> None: ...

    def hold(self, outlet: str, mirror: str, seconds: float) -> None: ...


class MirrorUnavailable(Exception):
    """Raised for a request about to leave for a mirror that may not be asked now: out of
    rotation since it was routed, or under a Retry-After. Not a download, and nothing
    against the mirror: the failover sends the document elsewhere, or it waits."""


class DownloadStalled(Exception):
    """Raised for a download that timed out while this process stood still: the mirror had
    no fair chance to answer. Nothing against the mirror: the request goes again."""


class MirrorHealth:
    """Which mirrors of each outlet are in rotation, in one process.

    A mirror leaves rotation after ``MIRROR_FAILURE_THRESHOLD`` consecutive failures (at once
    on strong evidence: a block page, the same page served for different documents), stays
    out for ``MIRROR_COOLDOWN`` seconds, then one request probes it: a success brings it
    back, a failure sends it out for another cool-down.

    A mirror that answered 429 or 503 with a Retry-After is *held* until then: no request
    goes to it, in rotation or not, and it is not out for it; once the time has passed it
    is asked as before.

    A mirror out on content evidence (it served something other than the outlet) is probed
    only by a mirror check (:mod:`crawler.extensions.mirror_checks`): a document whose
    healthy answer is known. A page it serves to a document left in flight does not bring it back.

    The states are kept in this process (:class:`MirrorStates`, implemented here); the
    distributed mode's subclass keeps them in Redis, overriding those methods alone.
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
        #: (outlet, mirror, kind) -> when it last served a page of that kind (None: of any
        #: kind), wall-clock time
        self._served: dict[tuple[str, str, str | None], float] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorHealth:
        return cls(
            crawler,
            failure_threshold=crawler.settings.getint("MIRROR_FAILURE_THRESHOLD"),
            cooldown=crawler.settings.getfloat("MIRROR_COOLDOWN"),
        )

    def _state(self, outlet: str, mirror: str) -> MirrorState:
        key = (outlet, mirror)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = MirrorState()
        return state

    # -- what the shared state is: the distributed subclass overrides these two ----------------

    def view(self, outlet: Outlet) -> tuple[float, dict[str, float | None]]:
        """(now, {mirror: down until, None while in rotation}) on the health's clock."""
        return self.clock(), {m: self._state(outlet.name, m).down_until for m in outlet.mirrors}

    def checked_only(self, outlet: Outlet) -> frozenset[str]:
        """The mirrors out of rotation on content evidence: only a mirror check probes them."""
        return frozenset(m for m in outlet.mirrors
                         if not may_probe(self._state(outlet.name, m).evidence, False))

    def held(self, outlet: Outlet) -> dict[str, float]:
        """{mirror: seconds until it may be asked} of the mirrors under a Retry-After now."""
        now = self.clock()
        states = {m: self._state(outlet.name, m) for m in outlet.mirrors}
        return {m: s.not_before - now for m, s in states.items() if held(s, now)}

    def claim_probe(self, outlet: str, mirror: str) -> bool:
        """Win the one probe of a mirror whose cool-down is over (pushes the next one back)."""
        state, won = after_probe_claim(self._state(outlet, mirror), self.clock(), self.cooldown)
        self._states[(outlet, mirror)] = state
        return won

    # -- queries ---------------------------------------------------------------------------------

    def choose(self, outlet: Outlet, exclude: Collection[str] = ()) -> str | None:
        """The mirror to send a request of ``outlet`` to now; None when every mirror not in
        ``exclude`` is out of rotation and none may be probed yet."""
        now, downs = self.view(outlet)
        for mirror, probe in mirror_candidates(outlet.mirrors, downs, now, exclude,
                                               self.checked_only(outlet), self.held(outlet)):
            if not probe or self.claim_probe(outlet.name, mirror):
                return mirror
        return None

    def is_up(self, outlet: Outlet, mirror: str) -> bool:
        return not self.view(outlet)[1].get(mirror)

    def may_send(self, outlet: Outlet, mirror: str, probe: bool = False) -> bool:
        """Whether a request may leave for ``mirror`` now: not while it is held, and only
        while it is in rotation unless the request probes it (or checks it)."""
        return mirror not in self.held(outlet) and (probe or self.is_up(outlet, mirror))

    def states(self, outlet: Outlet) -> dict[str, bool]:
        """mirror -> in rotation, in preference order."""
        downs = self.view(outlet)[1]
        return {m: not downs.get(m) for m in outlet.mirrors}

    def available(self, outlet: Outlet) -> dict[str, bool]:
        """mirror -> in rotation and not held, in preference order: who can take a document
        now (the waiting rooms release documents by it)."""
        holds = self.held(outlet)
        return {m: up and m not in holds for m, up in self.states(outlet).items()}

    def next_probe_in(self, outlet: Outlet) -> float | None:
        """Seconds until a document may probe a mirror out of rotation; 0 when one may now,
        None when none may (every mirror is in rotation, or the rest wait for a check)."""
        now, downs = self.view(outlet)
        checked, holds = self.checked_only(outlet), self.held(outlet)
        waits = [max(0.0, down - now, holds.get(m, 0.0)) for m, down in downs.items()
                 if down and m not in checked]
        return min(waits) if waits else None

    def due_checks(self, outlet: Outlet) -> list[str]:
        """The mirrors out on content evidence whose cool-down is over and which are not
        held: each wants a check (the caller wins its probe first, :meth:`claim_probe`)."""
        now, downs = self.view(outlet)
        holds = self.held(outlet)
        return [m for m in self.checked_only(outlet)
                if (downs.get(m) or now + 1) <= now and m not in holds]

    # -- updates ---------------------------------------------------------------------------------

    def record_success(self, outlet: str, mirror: str, *, serves_outlet: bool = False) -> None:
        """The mirror answered as a server does; ``serves_outlet``: a mirror check found it
        serving the outlet, which alone brings back a mirror out on content evidence."""
        state, came_back = after_success(self._state(outlet, mirror), serves_outlet)
        self._states[(outlet, mirror)] = state
        if came_back:
            self._changed(outlet, mirror, up=True)

    def record_failure(self, outlet: str, mirror: str, reason: str, *, strong: bool = False):
        """Count a failure; ``strong`` evidence takes the mirror out at once."""
        state, went_out = after_failure(self._state(outlet, mirror), self.clock(),
                                        self.failure_threshold, self.cooldown, strong, reason)
        self._states[(outlet, mirror)] = state
        if went_out:
            self._changed(outlet, mirror, up=False, reason=reason)

    def record_served(self, outlet: str, mirror: str, kind: str) -> None:
        """The mirror served a page of ``kind`` (an article, a listing) as a working server
        does: the failover waits for such a mirror when it could not answer for a document
        (:meth:`crawler.failover.Failover.serving`)."""
        now = time.time()
        self._served[(outlet, mirror, kind)] = self._served[(outlet, mirror, None)] = now

    def served_at(self, outlet: Outlet, mirror: str, kind: str | None) -> float | None:
        """When the mirror last served a page of ``kind`` (None: of any kind); None: not
        seen to."""
        return self._served.get((outlet.name, mirror, kind))

    def hold(self, outlet: str, mirror: str, seconds: float) -> None:
        """The mirror asked not to be asked for ``seconds`` (a bounded Retry-After)."""
        state, now = self._state(outlet, mirror), self.clock()
        self._states[(outlet, mirror)] = after_retry_after(state, now, seconds)
        if not held(state, now):
            self._held(outlet, mirror, seconds)

    def _held(self, outlet: str, mirror: str, seconds: float) -> None:
        # once per hold: the answers in flight with it may say it again
        logger.info("Mirror %s of %s asked not to be asked for %.0f s (Retry-After)",
                    mirror, outlet, seconds)
        if self.crawler is not None:
            self.crawler.stats.inc_value("mirror/held")

    def _found_out(self, outlet: str, mirror: str, reason: str | None) -> None:
        """A mirror found out of rotation at this process's first look, by others' doing:
        told as a change (mirror checks watch it), not counted as one."""
        logger.info("Mirror %s of %s is out of rotation: %s", mirror, outlet,
                    reason or "seen by another worker")
        if self.crawler is not None:
            self.crawler.signals.send_catch_log(
                signals.mirror_state_changed, outlet=outlet, mirror=mirror, up=False
            )

    def _changed(self, outlet: str, mirror: str, up: bool, reason: str | None = None) -> None:
        # a mirror leaving rotation is what an operator most needs to see, and why
        if up:
            logger.info("Mirror %s of %s back in rotation", mirror, outlet)
        else:
            logger.warning("Mirror %s of %s out of rotation: %s", mirror, outlet,
                           reason or "seen by another worker")
        if self.crawler is not None:
            self.crawler.stats.inc_value("mirror/back" if up else "mirror/went_out")
            self.crawler.signals.send_catch_log(
                signals.mirror_state_changed, outlet=outlet, mirror=mirror, up=up
            )
