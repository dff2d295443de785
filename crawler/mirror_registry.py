"""The mirrors an outlet named that are not in its file: candidates, their verification and
their adoption, kept where the crawl keeps its state.

A standalone crawl keeps them in its store (SQLite: table ``mirror_candidates``), written as
each changes, so an adopted mirror survives a restart and ``crawler mirrors adopt`` (run
beside the crawl) reaches it; a JSON Lines or PostgreSQL store keeps them for the process.
Workers keep them in Redis (:class:`crawler.distributed.candidates.RedisMirrorRegistry`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawler.mirror_verification import ADOPTED, NEW, REJECTED
from crawler.storage import StoreError

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.storage import Store

logger = logging.getLogger(__name__)

def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Candidate:
    outlet: str
    #: scheme://host[:port]
    base: str
    #: how the outlet named it (:mod:`crawler.core.mirror_notices`): notice, canonical, ...
    source: str
    #: the page that named it first
    found_on: str
    first_seen: str
    #: :data:`crawler.mirror_verification.STATES`
    state: str = NEW
    #: what the last verification found, or who adopted or rejected it
    evidence: str = ""
    checked_at: str | None = None
    #: requests the last verification sent
    requests: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)




class MirrorRegistry:
    """In memory, for the life of the process; the base of the others."""

    def __init__(self, crawler: Crawler | None = None) -> None:
        self.crawler = crawler
        self._candidates: dict[tuple[str, str], Candidate] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorRegistry:
        return cls(crawler)

    def candidates(self, outlet: str | None = None) -> list[Candidate]:
        return [c for (name, _), c in self._candidates.items() if outlet in (None, name)]

    def get(self, outlet: str, base: str) -> Candidate | None:
        return self._candidates.get((outlet, base))

    def note(self, outlet: str, base: str, source: str, found_on: str) -> Candidate:
        """The candidate ``base`` of ``outlet``, recorded now if it is new."""
        candidate = self.get(outlet, base)
        if candidate is None:
            candidate = Candidate(outlet, base, source, found_on, utc_now())
            self.save(candidate)
        return candidate

    def save(self, candidate: Candidate) -> None:
        self._candidates[(candidate.outlet, candidate.base)] = candidate

    def adopted(self, outlet: str) -> list[str]:
        """The outlet's adopted mirrors, in the order first seen."""
        return [c.base for c in sorted(self.candidates(outlet), key=lambda c: c.first_seen)
                if c.state == ADOPTED]

    def refresh(self) -> None:
        """Read what others changed (a person adopting a mirror, another worker)."""

    def claim(self, outlet: str, base: str) -> bool:
        """Win the right to verify ``base`` now: one process in all (workers: a lease)."""
        return True

    def release(self, outlet: str, base: str) -> None:
        """Give the right to verify back."""


class StoreMirrorRegistry(MirrorRegistry):
    """The mirror registry of a standalone crawl (and of the CLI): in the crawl's store,
    written as each candidate changes."""

    def __init__(self, store: Store, crawler: Crawler | None = None) -> None:
        super().__init__(crawler)
        self.store = store
        try:
            self.refresh()
        except StoreError as exc:  # the crawl goes on, and its store says what is wrong
            logger.warning("Cannot read the mirror candidates: %s", exc)

    @classmethod
    def from_store(cls, crawler: Crawler, store: Store) -> StoreMirrorRegistry:
        return cls(store, crawler)

    def refresh(self) -> None:
        """Raises :class:`StoreError` if the store cannot be read."""
        self._candidates = {(c["outlet"], c["base"]): Candidate(**c)
                            for c in self.store.mirror_candidates()}

    def save(self, candidate: Candidate) -> None:
        super().save(candidate)
        try:
            self.store.keep_mirror_candidate(candidate.to_dict())
        except StoreError as exc:
            logger.warning("Cannot keep mirror candidate %s of %s: %s", candidate.base,
                           candidate.outlet, exc)


def decide(registry: MirrorRegistry, outlet: str, base: str, adopt: bool) -> Candidate:
    """A person adopts or rejects ``base``: it need not have been named or verified (a
    person may know better), and a rejection holds until a person changes it."""
    candidate = registry.get(outlet, base) or Candidate(outlet, base, "person", "",
                                                       utc_now())
    candidate.state = ADOPTED if adopt else REJECTED
    candidate.evidence = f"by a person at {utc_now()}" + (
        f"; verification: {candidate.evidence}" if candidate.evidence
        and not candidate.evidence.startswith("by ") else "")
    registry.save(candidate)
    return candidate
