"""A mirror's state in rotation, and which mirrors a request may go to (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from crawler.core.judging import CONTENT, SERVICE


@dataclass
class MirrorState:
    consecutive_failures: int = 0
    #: time (the health's clock) until which the mirror is out of rotation; None while it is up
    down_until: float | None = None
    last_reason: str | None = None
    #: why it is out (CONTENT or SERVICE, :mod:`crawler.core.judging`); None while it is up
    evidence: str | None = None
    #: time before which no request may go to it (its Retry-After), in rotation or not;
    #: None when it never asked. Neither a failure nor a success touches it: it just passes
    not_before: float | None = None


def held(state: MirrorState, now: float) -> bool:
    """Whether the mirror asked (Retry-After) not to be asked before a time still ahead."""
    return state.not_before is not None and state.not_before > now


def mirror_candidates(
    mirrors: Sequence[str], down_until: Mapping[str, float | None], now: float,
    exclude: Collection[str] = (), checked_only: Collection[str] = (),
    held: Collection[str] = (),
) -> Iterator[tuple[str, bool]]:
    """The mirrors a request may go to, best first, as (mirror, is_probe).

    In preference order: a mirror in rotation, or one out of rotation whose cool-down is over
    (the request would probe it: the caller must win the probe first, one per cool-down). A
    cooled-down preferred mirror comes before a working secondary one, so that the preferred
    mirror carries the crawl again as soon as it recovers. Mirrors in ``checked_only`` (out
    on content evidence) are probed by a mirror check, never by a document
    (:func:`crawler.core.judging.may_probe`). Mirrors in ``held`` (under a Retry-After) get
    no request at all, in rotation or not.
    """
    for mirror in mirrors:
        if mirror in exclude or mirror in held:
            continue
        down = down_until.get(mirror)
        if not down:
            yield mirror, False
        elif down <= now and mirror not in checked_only:
            yield mirror, True


# -- the rule that takes a mirror out and brings it back -------------------------------------------
# Written once here for one process; the distributed mirror health runs the same rule in Lua,
# atomically in Redis, and one table of cases checks both (tests/test_mirror_health.py).


def after_failure(state: MirrorState, now: float, threshold: int, cooldown: float,
                  strong: bool, reason: str) -> tuple[MirrorState, bool]:
    """The state after a failure, and whether the mirror left rotation with it. A mirror
    goes out after ``threshold`` failures in a row, at once on ``strong`` (content)
    evidence; one already out has its cool-down start again. Content evidence, once there,
    stays until a mirror check finds the mirror serving the outlet."""
    failures = state.consecutive_failures + 1
    was_up = state.down_until is None
    down_until, evidence = state.down_until, state.evidence
    if strong or failures >= threshold or not was_up:
        down_until = now + cooldown
        if strong or evidence is None:
            evidence = CONTENT if strong else SERVICE
    return (MirrorState(failures, down_until, reason, evidence, state.not_before),
            was_up and down_until is not None)


def after_success(state: MirrorState, serves_outlet: bool) -> tuple[MirrorState, bool]:
    """The state after the mirror answered as a server does, and whether it came back.
    ``serves_outlet`` (a mirror check found it serving the outlet) alone brings back a
    mirror out on content evidence."""
    if state.consecutive_failures == 0 and state.down_until is None:
        return state, False
    if state.evidence == CONTENT and not serves_outlet:
        return state, False
    return MirrorState(not_before=state.not_before), state.down_until is not None


def after_probe_claim(state: MirrorState, now: float,
                      cooldown: float) -> tuple[MirrorState, bool]:
    """Whether a caller wins the one probe of a mirror whose cool-down is over: the winner
    pushes the next probe a cool-down back. None is won while the mirror is held."""
    if state.down_until is None or state.down_until > now or held(state, now):
        return state, False
    return replace(state, down_until=now + cooldown), True


def after_retry_after(state: MirrorState, now: float, seconds: float) -> MirrorState:
    """The state after the mirror answered "retry after ``seconds``" (already bounded,
    :func:`crawler.core.judging.retry_after_seconds`): no request before then. A shorter
    Retry-After never shortens a hold already there (answers may arrive out of order)."""
    until = now + max(0.0, seconds)
    if state.not_before is not None and state.not_before >= until:
        return state
    return replace(state, not_before=until)
