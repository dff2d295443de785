"""Article stores behind one small interface, chosen by URI.

``sqlite:///path.db`` (embedded default), ``jsonl:///path.jsonl``,
``postgresql://user:pass@host:port/db``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from crawler.core.redact import redact_url


class StoreError(Exception):
    """The store cannot be opened or written; the message is one line for the user."""


class StoreUnavailable(StoreError):
    """The store is away for now (e.g. the database restarts): retry later, lose nothing."""


class Written(int):
    """How many of the records written were new or changed (the int): ``new`` articles,
    and the articles that got a new revision (``revised``, their canonical URLs)."""

    new: int
    revised: tuple[str, ...]

    def __new__(cls, new: int, revised: Iterable[str] = ()) -> Written:
        revised = tuple(revised)
        written = super().__new__(cls, new + len(revised))
        written.new, written.revised = new, revised
        return written


@dataclass(frozen=True)
class Removal:
    """An article its outlet no longer serves: since when, and how many revisits agreed."""

    canonical_url: str
    removed_at: Any
    checks: int


class Store(Protocol):
    def write(self, records: list[dict[str, Any]]) -> Written:
        """Upsert records on ``canonical_url``; durable when it returns.

        Idempotent: writing a record again stores nothing twice. A record whose title, date
        or text differs from the stored one (:func:`crawler.core.revisions.is_revision`) becomes
        the article's latest version, the stored one its revision; any other record only
        says the article was seen (``last_seen``).
        """

    def existing(self, canonical_urls: Iterable[str]) -> set[str]:
        """Which of these articles are stored already."""

    def read(self, outlet: str | None = None,
             changed_since: str | None = None) -> Iterator[dict[str, Any]]:
        """Stored records (:data:`crawler.items.EXPORT_FIELDS`) in ``fetched_at`` order,
        optionally of one outlet, or only those changed or removed since a time."""

    def count(self, outlet: str | None = None) -> int: ...

    def rekey(self, outlet: str, identity: Callable[[str], str]) -> int:
        """Key the outlet's stored articles by ``identity(canonical_url)`` (its rules: see
        ``crawler rekey``), merging those that collapse to one; returns how many changed."""

    def due_for_revisit(self, outlet: str, *, published_after: str, checked_before: str,
                        removal_checks: int, limit: int, now: str | None = None,
                        backoff: float = 0.0) -> list[dict[str, Any]]:
        """Articles to fetch again, least recently checked first: published (or first seen)
        after ``published_after``, not checked since ``checked_before`` and, with a
        ``backoff``, unchecked until ``now`` for at least ``backoff`` times their age when
        last checked; removed ones until ``removal_checks`` revisits agreed (every interval).
        Each: canonical_url, url, section, etag, last_modified, revision_hash (of the stored
        version), removed."""

    def seen_unchanged(self, canonical_urls: list[str], when: str) -> None:
        """A revisit found these as stored (HTTP 304)."""

    def mark_removed(self, canonical_urls: list[str], when: str) -> list[Removal]:
        """Every mirror agreed these are gone: removed since the first such revisit."""

    def history(self, canonical_url: str) -> list[dict[str, Any]]:
        """Every version of one article, oldest first, each with its ``revision``; the last
        is the stored one, with ``first_seen``, ``last_seen``, ``removed_at``; [] if not
        stored."""

    def check_writable(self) -> None:
        """Raise :class:`StoreError` naming the cause (read-only, ...) if the store cannot be
        written now: a crawl asks before it starts, and stops in one line rather than
        fetching what it cannot keep."""

    # The crawl's own state, kept in the store where it keeps any (SQLite: for the next
    # crawl, and for `crawler mirrors adopt` beside a running one), else for the process.

    def validators(self) -> dict[tuple[str, str], dict[str, str]]:
        """The listings' validators kept by earlier crawls, by (outlet, path)."""

    def keep_validators(self, found: dict[tuple[str, str], dict[str, str]]) -> None:
        """Keep these validators (ETag, Last-Modified), replacing those of the same paths."""

    def mirror_candidates(self) -> list[dict[str, Any]]:
        """The mirrors outlets named, each of :data:`CANDIDATE_FIELDS`."""

    def keep_mirror_candidate(self, candidate: dict[str, Any]) -> None:
        """Keep one candidate (:data:`CANDIDATE_FIELDS`), replacing its earlier state."""

    def close(self) -> None: ...


#: a mirror candidate's fields, as the stores keep them (crawler.mirror_registry.Candidate)
CANDIDATE_FIELDS = ("outlet", "base", "source", "found_on", "first_seen", "state", "evidence",
                    "checked_at", "requests")


class ProcessState:
    """The crawl's own state for the life of the process: for the stores that keep none of
    it (JSON Lines, PostgreSQL; workers keep theirs in Redis)."""

    def validators(self) -> dict[tuple[str, str], dict[str, str]]:
        return dict(self._kept("validators"))

    def keep_validators(self, found: dict[tuple[str, str], dict[str, str]]) -> None:
        self._kept("validators").update(found)

    def mirror_candidates(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self._kept("candidates").values()]

    def keep_mirror_candidate(self, candidate: dict[str, Any]) -> None:
        self._kept("candidates")[(candidate["outlet"], candidate["base"])] = dict(candidate)

    def _kept(self, part: str) -> dict[tuple[str, str], dict[str, Any]]:
        return self.__dict__.setdefault(f"_process_{part}", {})


#: the fields of a due article (Store.due_for_revisit), in the order the stores select them
DUE_FIELDS = ("canonical_url", "url", "section", "etag", "last_modified", "revision_hash",
              "removed")


def least_recently_checked(*selections: list[tuple], limit: int) -> list[dict[str, Any]]:
    """The due articles of the stores' selections (each a list of rows of ``DUE_FIELDS``
    and then checked_at, each in that order), least recently checked first, ``limit`` of
    them. A store selects recent and removed articles apart, each by its own index."""
    rows = sorted((row for rows in selections for row in rows), key=lambda row: row[-1])
    return [{**dict(zip(DUE_FIELDS, row[:-1], strict=True)), "removed": bool(row[-2])}
            for row in rows[:limit]]


def open_store(uri: str, *, pool_size: int | None = None) -> Store:
    """The store ``uri`` names; :class:`StoreError` (one line, no password) if it cannot be
    opened. ``pool_size``: at most this many connections (PostgreSQL)."""
    try:
        scheme = urlsplit(uri).scheme
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
        raise StoreError(f"bad store URI {redact_url(uri)!r}: {exc}") from None
    if scheme == "sqlite":
        from crawler.storage.sqlite import SQLiteStore

        return SQLiteStore.from_uri(uri)
    if scheme == "jsonl":
        from crawler.storage.jsonl import JSONLStore

        return JSONLStore.from_uri(uri)
    if scheme in ("postgresql", "postgres"):
        from crawler.storage.postgres import PostgresStore

        return PostgresStore.from_uri(uri, **({"pool_size": pool_size} if pool_size else {}))
    raise StoreError(
        f"unsupported store URI {redact_url(uri)!r}: use sqlite:///path.db, "
        "jsonl:///path.jsonl or postgresql://user:pass@host:port/db"
    )


def rekeyed(
    rows: Iterable[tuple[str, Any]], identity: Callable[[str], str] | None = None
) -> list[tuple[str, str, str]]:
    """Plan the move of stored ``(canonical_url, fetched_at)`` rows to identity URLs.

    The migrations cannot see the outlets' rules, so by default this applies the part of the
    identity that does not depend on them (:func:`crawler.core.identity.identity_url` keeping
    every non-tracking query parameter); ``identity`` gives an outlet's own
    (:meth:`crawler.core.outlets.Outlet.canonical_url`). Of the rows that collapse to one
    identity the one fetched last stays.
    Returns (old key, old key of the row that stays, new key) for each row that changes: one
    merged away (old != the one that stays) or one whose key changes.
    """
    if identity is None:
        from crawler.core.identity import identity_url as identity

    groups: dict[str, list[tuple[Any, str]]] = {}
    for key, fetched_at in rows:
        groups.setdefault(identity(key), []).append((fetched_at, key))
    plan = []
    for new, members in groups.items():
        members.sort()
        winner = members[-1][1]
        plan += [(key, winner, new) for _, key in members if key != winner or key != new]
    return plan


def path_from_uri(uri: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    parts = urlsplit(uri)
    if parts.netloc:
        raise StoreError(f"{redact_url(uri)!r}: expected {parts.scheme}:///path (three slashes)")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise StoreError(f"{redact_url(uri)!r}: no file path")
    if "\0" in path:  # no file system takes it; open() would raise ValueError
        raise StoreError(f"{redact_url(uri)!r}: the path contains a NUL character")
    try:
        os.fsencode(path)
    except UnicodeError:  # e.g. a lone surrogate: no file name can hold it
        raise StoreError(f"{redact_url(uri)!r}: the path is not a valid file name") from None
    return path
