"""crawler.ticker: work every few seconds that a failing tick does not end."""

from __future__ import annotations

import logging

from twisted.internet.defer import fail
from twisted.internet.task import Clock

from crawler.ticker import Ticker


def test_a_failing_tick_is_logged_and_the_ticking_goes_on(caplog):
    clock, calls = Clock(), []

    def tick():
        calls.append(clock.seconds())
        if len(calls) == 2:
            raise KeyError("a bug")
        if len(calls) == 3:
            return fail(ConnectionError("later"))
        return None

    ticker = Ticker(tick, 1.0, "The look", clock=clock)
    ticker.start()
    with caplog.at_level(logging.ERROR, logger="crawler.ticker"):
        clock.pump([1.0] * 5)
    assert calls == [1.0, 2.0, 3.0, 4.0, 5.0]
    failed = [r for r in caplog.records if "The look failed" in r.getMessage()]
    assert [r.exc_info[0] for r in failed] == [KeyError, ConnectionError]
    ticker.stop()
    clock.advance(5)
    assert len(calls) == 5 and not ticker.running


def test_start_now_and_twice_is_one_ticking():
    clock, calls = Clock(), []
    ticker = Ticker(lambda: calls.append(1), 2.0, "Heartbeat", clock=clock)
    ticker.start(now=True)
    ticker.start(now=True)
    assert calls == [1]
    clock.advance(2)
    assert calls == [1, 1]
    ticker.stop()
    ticker.stop()
