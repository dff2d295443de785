"""The mirrors an outlet named that are not in its file: candidates, their verification and
their adoption, kept where the crawl keeps its state.

A standalone crawl keeps them beside its SQLite store (table ``mirror_candidates``), written
as each changes, so an adopted mirror survives a restart and ``crawler mirrors adopt`` (run
beside the crawl) reaches it; with any other store they last for the process. Workers keep
them in Redis (:class:`crawler.distributed.candidates.RedisMirrorRegistry`).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawler.mirror_verification import ADOPTED, NEW, REJECTED
from crawler.storage import StoreError, path_from_uri

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS mirror_candidates (
    outlet TEXT NOT NULL,
    base TEXT NOT NULL,
    source TEXT NOT NULL,
    found_on TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    state TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '',
    checked_at TEXT,
    requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (outlet, base)
)
"""


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


_COLUMNS = tuple(f.name for f in fields(Candidate))


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


class SqliteMirrorRegistry(MirrorRegistry):
    """In a table of a SQLite file, written as each candidate changes."""

    def __init__(self, path: str, crawler: Crawler | None = None) -> None:
        super().__init__(crawler)
        self.path = path
        self.refresh()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0)
        db.execute(SCHEMA)
        return db

    def refresh(self) -> None:
        try:
            db = self._connect()
            try:
                rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM mirror_candidates")
                self._candidates = {(r[0], r[1]): Candidate(*r) for r in rows}
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the mirror candidates: {exc}") from None

    def save(self, candidate: Candidate) -> None:
        super().save(candidate)
        row = tuple(getattr(candidate, name) for name in _COLUMNS)
        try:
            with self._connect() as db:
                db.execute(f"INSERT OR REPLACE INTO mirror_candidates ({', '.join(_COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(_COLUMNS))})", row)
        except sqlite3.Error as exc:
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


class StoreMirrorRegistry:
    """The mirror registry of a standalone crawl: beside a SQLite store, else in
    memory."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorRegistry:
        return open_registry(crawler.settings.get("STORE_URI") or "", crawler)


def open_registry(store_uri: str, crawler: Crawler | None = None) -> MirrorRegistry:
    if store_uri.startswith("sqlite:"):
        return SqliteMirrorRegistry(path_from_uri(store_uri), crawler)
    return MirrorRegistry(crawler)
