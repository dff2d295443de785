"""Time that leaves out the time the process stood still (SIGSTOP, a paused container, a
machine starved of CPU).

A process cannot see its own pause as it happens, only afterwards: it asked to be woken after
``interval`` seconds (a tick, a wait) and the monotonic clock says it woke far later. The
time past ``interval``, beyond a ``tolerance`` for a busy process, is a **stall**. A limit
measured on the plain clock turns a pause into an overrun; measured with the stalls left out,
it counts only the time the process could work. (``CLOCK_MONOTONIC`` runs on through a
SIGSTOP; comparing CPU time instead would also leave out the time it waited for a worker,
which is the time a limit is for.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: seconds between looks at the clock, and how late a look may be before the time counts
#: as a stall (a busy process is often late by a fraction of a second)
TICK = 0.5
TOLERANCE = 1.0

Stall = tuple[float, float]


def stall_since(last_tick: float, now: float, interval: float, tolerance: float) -> Stall | None:
    """The time the process stood still after its look at the clock at ``last_tick``, if
    longer than ``tolerance``: from when the next look was due until ``now``."""
    due = last_tick + interval
    return (due, now) if now - due > tolerance else None


def stalled_within(start: float, end: float, stalls: Iterable[Stall]) -> float:
    """Seconds of ``stalls`` that fall between ``start`` and ``end``."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in stalls)


def latency_without_stalls(latency: float, now: float, stalls: Iterable[Stall]) -> float:
    """A latency that ended ``now``, less the time the process stood still during it."""
    return max(0.0, latency - stalled_within(now - latency, now, stalls))


def wait_without_stalls(wait: Callable[[float], bool], timeout: float,
                        clock: Callable[[], float], interval: float = TICK,
                        tolerance: float = TOLERANCE) -> bool:
    """``wait(seconds)`` (true once what it waits for is there) in slices of ``interval``,
    until it is there (True) or ``timeout`` seconds have passed on ``clock`` in which the
    process did not stand still (False): a slice that ended far past its due time was a
    stall, and only the slice it asked for counts."""
    counted = 0.0
    while True:
        asked = min(interval, timeout - counted)
        started = clock()
        if wait(asked):
            return True
        now = clock()
        stall = stall_since(started, now, asked, tolerance)
        counted += (now - started) - (stall[1] - stall[0] if stall else 0.0)
        if counted >= timeout:
            return False
