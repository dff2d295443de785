"""Work done every few seconds while a crawl runs, on the reactor."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

logger = logging.getLogger(__name__)


class Ticker:
    """Calls ``tick`` every ``interval`` seconds from :meth:`start` to :meth:`stop`.

    Unlike a bare ``LoopingCall``, a tick that raises (or whose Deferred fails) is logged
    and the ticking goes on: one bad tick must not silently end a heartbeat or the looks at
    the waiting room for the rest of the crawl.
    """

    def __init__(self, tick: Callable[[], Any], interval: float, what: str,
                 clock: IReactorTime | None = None) -> None:
        self.tick = tick
        self.interval = interval
        self.what = what
        self.clock = clock  # None: the reactor's
        self._loop: LoopingCall | None = None  # made at start: it needs the reactor installed

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.running

    def start(self, now: bool = False) -> None:
        if not self.running:
            self._loop = LoopingCall(self._tick)
            if self.clock is not None:
                self._loop.clock = self.clock
            self._loop.start(self.interval, now=now)

    def stop(self) -> None:
        if self.running:
            self._loop.stop()

    def _tick(self) -> Any:
        try:
            result = self.tick()
        except Exception:
            self._failed()
            return None
        if isinstance(result, Deferred):
            return result.addErrback(lambda failure: self._failed(failure.value))
        return None

    def _failed(self, error: BaseException | None = None) -> None:
        logger.error("%s failed; again in %g s", self.what, self.interval,
                     exc_info=error if error is not None else True)
