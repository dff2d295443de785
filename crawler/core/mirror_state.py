"""A mirror's state in rotation, and which mirrors a request may go to (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass


@dataclass
class MirrorState:
    consecutive_failures: int = 0
    #: time (the health's clock) until which the mirror is out of rotation; None while it is up
    down_until: float | None = None
    last_reason: str | None = None
    #: why it is out (CONTENT or SERVICE, :mod:`crawler.core.judging`); None while it is up
    evidence: str | None = None


def mirror_candidates(
    mirrors: Sequence[str], down_until: Mapping[str, float | None], now: float,
    exclude: Collection[str] = (), checked_only: Collection[str] = (),
) -> Iterator[tuple[str, bool]]:
    """The mirrors a request may go to, best first, as (mirror, is_probe).

    In preference order: a mirror in rotation, or one out of rotation whose cool-down is over
    (the request would probe it: the caller must win the probe first, one per cool-down). A
    cooled-down preferred mirror comes before a working secondary one, so that the preferred
    mirror carries the crawl again as soon as it recovers. Mirrors in ``checked_only`` (out
    on content evidence) are probed by a mirror check, never by a document
    (:func:`crawler.core.judging.may_probe`).
    """
    for mirror in mirrors:
        if mirror in exclude:
            continue
        down = down_until.get(mirror)
        if not down:
            yield mirror, False
        elif down <= now and mirror not in checked_only:
            yield mirror, True
