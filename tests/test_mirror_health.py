"""Mirror health, one contract for both backends: in this process (crawler.mirrors, the
rule in Python) and shared through Redis (crawler.distributed.mirrors, the rule in Lua).

One table of failure and recovery cases runs against each, step by step; so do the queries
written once over them (which mirror a request goes to, when a probe is due).
"""

from __future__ import annotations

import time

import pytest
from scrapy.utils.test import get_crawler

from crawler.core import signals
from crawler.core.outlets import Outlet
from crawler.distributed.keys import RedisKeys
from crawler.distributed.mirrors import RedisMirrorHealth
from crawler.mirrors import MirrorHealth, MirrorStates

A, B = "https://www.news.example", "https://news-mirror.example"
OUTLET = Outlet(name="news", mirrors=[A, B], sections={"world": "/world"},
                article_url=r"^/a/\d+")
#: long enough that no step of a case outlasts it on a slow machine; "wait" lets it pass
COOLDOWN = 1.0
THRESHOLD = 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    """(mirror health, another worker's, "wait": let a cool-down pass) for each backend. In
    memory there is one process and so one health; through Redis, each call of ``other()``
    is a worker that has read nothing yet, so what it changes is the Lua rule's doing alone,
    with no local copy to answer first."""
    crawler = get_crawler()
    if request.param == "memory":
        clock = Clock()
        health = MirrorHealth(crawler, failure_threshold=THRESHOLD, cooldown=COOLDOWN,
                              clock=clock)

        def wait() -> None:
            clock.now += COOLDOWN + 0.1

        return health, lambda: health, wait
    client = request.getfixturevalue("redis_server").client()

    def worker() -> RedisMirrorHealth:
        return RedisMirrorHealth(crawler, client, RedisKeys(), failure_threshold=THRESHOLD,
                                 cooldown=COOLDOWN, refresh=0.0)

    def wait() -> None:
        time.sleep(COOLDOWN + 0.1)  # the Redis clock, which the scripts read

    return worker(), worker, wait


def state_of(health: MirrorHealth, mirror: str) -> str:
    if health.is_up(OUTLET, mirror):
        state = "up"
    else:
        state = "checked" if mirror in health.checked_only(OUTLET) else "out"
    return f"{state} held" if mirror in health.held(OUTLET) else state


#: Retry-After events: seconds the mirror asks not to be asked for
HOLDS = {"hold": COOLDOWN, "hold long": 2 * COOLDOWN, "hold short": 0.2}

#: (case, steps); a step is (event, what follows): "up", "out" (probed by a document once
#: cooled down) or "checked" (out on content evidence: only a mirror check probes it), each
#: "... held" under a Retry-After, or for "claim" whether this caller won the probe
CASES = [
    ("failures in a row take a mirror out on service evidence",
     [("fail", "up"), ("fail", "up"), ("fail", "out")]),
    ("a success between failures starts the count again",
     [("fail", "up"), ("fail", "up"), ("ok", "up"), ("fail", "up"), ("fail", "up"),
      ("fail", "out")]),
    ("strong evidence takes it out at once, on content evidence",
     [("strong", "checked")]),
    ("a success brings back a mirror out on service evidence",
     [("fail", "up"), ("fail", "up"), ("fail", "out"), ("ok", "up"), ("fail", "up")]),
    ("only a check that finds the outlet brings back one out on content evidence",
     [("strong", "checked"), ("ok", "checked"), ("serves", "up"), ("fail", "up")]),
    ("content evidence outweighs service evidence, and stays",
     [("fail", "up"), ("fail", "up"), ("fail", "out"), ("strong", "checked"),
      ("fail", "checked"), ("ok", "checked")]),
    ("no probe before the cool-down is over",
     [("fail", "up"), ("fail", "up"), ("fail", "out"), ("claim", False)]),
    ("one probe per cool-down",
     [("fail", "up"), ("fail", "up"), ("fail", "out"), ("wait", "out"), ("claim", True),
      ("claim", False), ("wait", "out"), ("claim", True), ("ok", "up")]),
    ("a failure while out starts the cool-down again",
     [("strong", "checked"), ("wait", "checked"), ("fail", "checked"), ("claim", False),
      ("wait", "checked"), ("claim", True)]),
    ("a mirror in rotation has no probe to win",
     [("claim", False), ("fail", "up"), ("claim", False)]),
    ("a Retry-After holds a mirror without taking it out, until it passes",
     [("hold", "up held"), ("wait", "up"), ("fail", "up"), ("fail", "up"), ("fail", "out")]),
    ("neither a success nor a failure ends a hold",
     [("hold", "up held"), ("ok", "up held"), ("fail", "up held"), ("ok", "up held"),
      ("wait", "up")]),
    ("a shorter Retry-After never shortens a hold",
     [("hold long", "up held"), ("hold short", "up held"), ("wait", "up held"),
      ("wait", "up")]),
    ("no probe of a held mirror, though its cool-down is over",
     [("fail", "up"), ("fail", "up"), ("fail", "out"), ("wait", "out"), ("hold", "out held"),
      ("claim", False), ("wait", "out"), ("claim", True), ("ok", "up")]),
    ("a mirror out on content evidence keeps its evidence under a hold",
     [("strong", "checked"), ("hold", "checked held"), ("ok", "checked held"),
      ("serves", "up held"), ("wait", "up")]),
]


@pytest.mark.parametrize("steps", [steps for _, steps in CASES],
                         ids=[case for case, _ in CASES])
def test_mirror_failure_and_recovery(backend, steps):
    health, other, wait = backend
    for n, (event, expected) in enumerate(steps, 1):
        if event == "claim":
            assert other().claim_probe(OUTLET.name, A) is expected, f"step {n}: {event}"
            continue
        if event == "wait":
            wait()
        elif event in HOLDS:
            other().hold(OUTLET.name, A, HOLDS[event])
        elif event in ("fail", "strong"):
            other().record_failure(OUTLET.name, A, "connection refused",
                                   strong=event == "strong")
        else:
            other().record_success(OUTLET.name, A, serves_outlet=event == "serves")
        assert state_of(health, A) == expected, f"step {n}: {event}"
    assert state_of(health, B) == "up"  # one mirror's state is its own


def test_both_backends_are_mirror_states(backend):
    assert isinstance(backend[0], MirrorStates)


def test_leaving_and_coming_back_is_told_once(backend):
    health, _, _ = backend
    stats = health.crawler.stats
    for _ in range(THRESHOLD + 2):
        health.record_failure(OUTLET.name, A, "timeout")
    health.record_success(OUTLET.name, A)
    health.record_success(OUTLET.name, A)
    assert (stats.get_value("mirror/went_out"), stats.get_value("mirror/back")) == (1, 1)


def test_requests_go_to_the_best_mirror_and_one_probes_a_cooled_down_one(backend):
    health, _, wait = backend
    assert health.choose(OUTLET) == A
    assert health.choose(OUTLET, exclude={A}) == B
    for _ in range(THRESHOLD):
        health.record_failure(OUTLET.name, A, "timeout")
    assert health.states(OUTLET) == {A: False, B: True}
    assert health.choose(OUTLET) == B
    assert 0 < health.next_probe_in(OUTLET) <= COOLDOWN
    wait()
    assert health.next_probe_in(OUTLET) == 0
    # the preferred mirror, cooled down, is probed before the working secondary one
    assert health.choose(OUTLET) == A
    assert health.choose(OUTLET) == B  # its one probe is out
    assert health.due_checks(OUTLET) == []  # a document probes it, not a check


def test_a_mirror_out_on_content_evidence_wants_a_check_not_a_document(backend):
    health, _, wait = backend
    health.record_failure(OUTLET.name, A, "seizure notice", strong=True)
    wait()
    assert health.next_probe_in(OUTLET) is None  # no document probes it
    assert health.choose(OUTLET) == B
    assert health.due_checks(OUTLET) == [A]
    for _ in range(THRESHOLD):
        health.record_failure(OUTLET.name, B, "timeout")
    assert health.choose(OUTLET) is None  # every mirror out, none a document may probe


def test_a_held_mirror_gets_no_request_and_holds_no_other_back(backend):
    health, other, wait = backend
    other().hold(OUTLET.name, A, COOLDOWN)
    assert health.choose(OUTLET) == B
    assert health.states(OUTLET) == {A: True, B: True}  # held is not out
    assert health.available(OUTLET) == {A: False, B: True}
    assert 0 < health.held(OUTLET)[A] <= COOLDOWN
    assert not health.may_send(OUTLET, A) and not health.may_send(OUTLET, A, probe=True)
    assert health.may_send(OUTLET, B)
    wait()
    assert health.choose(OUTLET) == A and health.may_send(OUTLET, A)
    assert health.held(OUTLET) == {}


def test_a_request_may_leave_for_a_mirror_out_of_rotation_only_as_its_probe(backend):
    health, _, _ = backend
    for _ in range(THRESHOLD):
        health.record_failure(OUTLET.name, A, "timeout")
    assert not health.may_send(OUTLET, A) and health.may_send(OUTLET, A, probe=True)


def test_no_check_and_no_probe_is_due_while_a_mirror_is_held(backend):
    health, _, wait = backend
    health.record_failure(OUTLET.name, A, "seizure notice", strong=True)
    for _ in range(THRESHOLD):
        health.record_failure(OUTLET.name, B, "timeout")
    wait()
    health.hold(OUTLET.name, A, COOLDOWN)
    health.hold(OUTLET.name, B, COOLDOWN)
    assert health.due_checks(OUTLET) == [] and health.choose(OUTLET) is None
    assert 0 < health.next_probe_in(OUTLET) <= COOLDOWN  # when B's hold ends
    wait()
    assert health.due_checks(OUTLET) == [A] and health.next_probe_in(OUTLET) == 0


def test_which_mirrors_served_lately_is_shared_by_the_workers(backend):
    health, other, _ = backend
    assert other().served_at(OUTLET, A, "article") is None
    health.record_served(OUTLET.name, A, "listing")
    # another worker (one started after) knows A served a listing, and a page of any kind
    # (None), but no article yet
    seen = other()
    assert seen.served_at(OUTLET, A, "listing") is not None
    assert seen.served_at(OUTLET, A, None) == seen.served_at(OUTLET, A, "listing")
    assert seen.served_at(OUTLET, A, "article") is None
    assert seen.served_at(OUTLET, B, None) is None


def test_a_worker_started_mid_outage_hears_of_the_mirrors_out(redis_server):
    # what acts on a mirror out (mirror checks, the metrics) hears of one taken out before
    # this worker first looked, as a change, though it is not counted as one
    client = redis_server.client()
    first = RedisMirrorHealth(get_crawler(), client, RedisKeys(), failure_threshold=THRESHOLD,
                              cooldown=COOLDOWN, refresh=0.0)
    first.record_failure(OUTLET.name, A, "block page", strong=True)
    crawler = get_crawler()
    heard = []
    crawler.signals.connect(lambda outlet, mirror, up: heard.append((outlet, mirror, up)),
                            signal=signals.mirror_state_changed, weak=False)
    later = RedisMirrorHealth(crawler, client, RedisKeys(), failure_threshold=THRESHOLD,
                              cooldown=COOLDOWN, refresh=0.0)
    assert later.states(OUTLET) == {A: False, B: True}
    assert heard == [(OUTLET.name, A, False)]
    assert crawler.stats.get_value("mirror/went_out") is None
