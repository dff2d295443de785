"""SQLite store: the embedded default. WAL mode, so several processes can write one file.

The schema version is ``PRAGMA user_version``: 0 is the first schema, whose keys were raw
canonical URLs; 1 keys articles by identity URL (see :func:`crawler.storage.rekeyed`); 2
keeps every earlier version of an article (``article_revisions``), when it was first and
last seen, its removal, its validators and its WARC record.

The store owns every table of its file: beside the articles, the crawl's own state (the
listings' ``validators``, the ``mirror_candidates``), which the other parts reach through its
methods.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from crawler.core.revisions import is_revision, revision_hash
from crawler.items import ARTICLE_FIELDS, EXPORT_FIELDS, VALIDATOR_FIELDS
from crawler.storage import (
    CANDIDATE_FIELDS,
    DUE_FIELDS,
    Removal,
    StoreError,
    StoreUnavailable,
    Written,
    least_recently_checked,
    path_from_uri,
    rekeyed,
)

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    canonical_url TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    mirror TEXT NOT NULL,
    outlet TEXT NOT NULL,
    section TEXT,
    title TEXT,
    author TEXT,
    published TEXT,
    language TEXT,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    fetched_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_outlet_fetched ON articles (outlet, fetched_at);
CREATE INDEX IF NOT EXISTS articles_fetched ON articles (fetched_at);
-- the crawl's own state, kept for the next crawl (no schema version: never changed yet)
CREATE TABLE IF NOT EXISTS validators (
    outlet TEXT NOT NULL,
    path TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    PRIMARY KEY (outlet, path)
);
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
);
"""

# version 2: the article's life beside its latest version, and the earlier versions
VERSION_2 = """
ALTER TABLE articles ADD COLUMN warc_file TEXT;
ALTER TABLE articles ADD COLUMN warc_record_id TEXT;
ALTER TABLE articles ADD COLUMN etag TEXT;
ALTER TABLE articles ADD COLUMN last_modified TEXT;
ALTER TABLE articles ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE articles ADD COLUMN revision_hash TEXT;
ALTER TABLE articles ADD COLUMN first_seen TEXT;
ALTER TABLE articles ADD COLUMN last_seen TEXT;
ALTER TABLE articles ADD COLUMN checked_at TEXT;
ALTER TABLE articles ADD COLUMN removed_at TEXT;
ALTER TABLE articles ADD COLUMN removal_checks INTEGER NOT NULL DEFAULT 0;
UPDATE articles SET first_seen = fetched_at, last_seen = fetched_at, checked_at = fetched_at;
-- the articles due for a revisit: the recent ones, and the removed ones (a few)
CREATE INDEX articles_outlet_born ON articles (outlet, coalesce(published, first_seen));
CREATE INDEX articles_outlet_removed ON articles (outlet, checked_at)
    WHERE removed_at IS NOT NULL;
CREATE TABLE article_revisions (
    id INTEGER PRIMARY KEY,
    canonical_url TEXT NOT NULL,
    revision INTEGER NOT NULL,
    url TEXT NOT NULL,
    mirror TEXT NOT NULL,
    outlet TEXT NOT NULL,
    section TEXT,
    title TEXT,
    author TEXT,
    published TEXT,
    language TEXT,
    text TEXT,
    content_hash TEXT,
    fetched_at TEXT NOT NULL,
    warc_file TEXT,
    warc_record_id TEXT,
    replaced_at TEXT NOT NULL
);
CREATE INDEX article_revisions_canonical_url ON article_revisions (canonical_url, revision);
"""

_STORED = ARTICLE_FIELDS + VALIDATOR_FIELDS
_VERSION_FIELDS = ", ".join(ARTICLE_FIELDS[1:])
_INSERT = f"""
INSERT INTO articles ({", ".join(_STORED)}, revision_hash, first_seen, last_seen, checked_at)
VALUES ({", ".join(f":{f}" for f in _STORED)}, :revision_hash, :fetched_at, :fetched_at,
        :fetched_at)
"""
# The earlier version goes to article_revisions; the section stays the one it was first
# found in.
_KEEP_REVISION = f"""
INSERT INTO article_revisions (canonical_url, revision, {_VERSION_FIELDS}, replaced_at)
SELECT canonical_url, revision, {_VERSION_FIELDS}, :fetched_at FROM articles
WHERE canonical_url = :canonical_url
"""
_REVISE = f"""
UPDATE articles SET {", ".join(f"{f} = :{f}" for f in _STORED if f not in ("canonical_url",
                                                                         "section"))},
    revision = revision + 1, revision_hash = :revision_hash, last_seen = :fetched_at,
    checked_at = :fetched_at, removed_at = NULL, removal_checks = 0
WHERE canonical_url = :canonical_url
"""
# Seen again as it was: only its life changes (and the hash, for rows stored before there
# was one).
_SEEN = """
UPDATE articles SET last_seen = :fetched_at, checked_at = :fetched_at, removed_at = NULL,
    removal_checks = 0, revision_hash = :revision_hash,
    etag = coalesce(:etag, etag), last_modified = coalesce(:last_modified, last_modified)
WHERE canonical_url = :canonical_url
"""
# SQLite limits bound parameters per statement (32766 since 3.32); stay far below.
_LOOKUP_CHUNK = 500

# primary result codes (sqlite3.h) that need a person, each named for the user
_READONLY, _CANTOPEN, _FULL, _CORRUPT, _NOTADB = 8, 14, 13, 11, 26


class SQLiteStore:
    def __init__(self, path: str, busy_timeout: float = 30.0) -> None:
        self.path = path
        #: how the user names it: the store's URI
        self.name = f"sqlite:///{path}"
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            hint = " (an absolute path takes four slashes: sqlite:////abs/path.db)"
            raise StoreError(f"cannot open SQLite store {path}: {parent} does not exist"
                             + (hint if not Path(path).is_absolute() else ""))
        # one connection for the crawl's threads (the stored-article check, the writer): one
        # of them at a time
        self._lock = threading.RLock()
        try:
            self.db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.Error as exc:
            raise self._translate(exc, "open") from None

    def _migrate(self) -> None:
        if self.db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            # read again under the write lock: another process may have migrated meanwhile
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"SQLite store {self.path} has schema version {version}, "
                                 f"newer than this crawler knows ({SCHEMA_VERSION})")
            if version < 1:
                self._rekey()
            if version < 2:
                for statement in VERSION_2.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite rolls back by itself on some errors (a full disk): a ROLLBACK then would
        # fail and hide the cause
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def _rekey(self) -> None:
        """Version 1: keys become identity URLs; of duplicates the latest fetched stays."""
        self._apply(rekeyed(self.db.execute("SELECT canonical_url, fetched_at FROM articles")))

    def _apply(self, plan: list[tuple[str, str, str]]) -> None:
        # the merged rows go first: a row moving to a key may find one of them there; their
        # versions become the revisions of the one that stays
        merged = [(old, stays) for old, stays, _ in plan if old != stays]
        if self._has_revisions():
            self.db.executemany(
                f"INSERT INTO article_revisions (canonical_url, revision, {_VERSION_FIELDS},"
                f" replaced_at) SELECT ?, 0, {_VERSION_FIELDS}, fetched_at FROM articles"
                " WHERE canonical_url = ?", [(stays, old) for old, stays in merged])
            self.db.executemany(
                "UPDATE article_revisions SET canonical_url = ? WHERE canonical_url = ?",
                [(stays, old) for old, stays in merged]
                + [(new, old) for old, stays, new in plan if old == stays and old != new])
        self.db.executemany("DELETE FROM articles WHERE canonical_url = ?",
                            [(old,) for old, _ in merged])
        self.db.executemany("UPDATE articles SET canonical_url = ? WHERE canonical_url = ?",
                            [(new, old) for old, stays, new in plan if old == stays])

    def rekey(self, outlet: str, identity: Callable[[str], str]) -> int:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                plan = rekeyed(self.db.execute(
                    "SELECT canonical_url, fetched_at FROM articles WHERE outlet = ?", (outlet,)
                ), identity)
                self._apply(plan)
                self.db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        except sqlite3.Error as exc:
            raise self._translate(exc, "rekey") from None
        return len(plan)

    def _has_revisions(self) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                               " AND name = 'article_revisions'").fetchone() is not None

    @classmethod
    def from_uri(cls, uri: str) -> SQLiteStore:
        return cls(path_from_uri(uri))

    def write(self, records: list[dict[str, Any]]) -> Written:
        with self._lock:
            return self._transaction("write to", self._write, _latest_copies(records))

    def _write(self, records: list[dict[str, Any]]) -> Written:
        stored = self._rows([r["canonical_url"] for r in records],
                            "canonical_url, revision_hash, content_hash")
        new, revised = 0, []
        for record in records:
            row = {**record, "revision_hash": revision_hash(record)}
            old = stored.get(record["canonical_url"])
            if old is None:
                self.db.execute(_INSERT, row)
                new += 1
            elif is_revision(old, record):
                self.db.execute(_KEEP_REVISION, row)
                self.db.execute(_REVISE, row)
                revised.append(record["canonical_url"])
            else:
                self.db.execute(_SEEN, row)
        return Written(new, revised)

    def _rows(self, keys: list[str], columns: str) -> dict[str, dict[str, Any]]:
        found = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            cursor = self.db.execute(
                f"SELECT {columns} FROM articles WHERE canonical_url IN"
                f" ({','.join('?' * len(chunk))})", chunk)
            names = [d[0] for d in cursor.description]
            for row in cursor:
                found[row[0]] = dict(zip(names, row, strict=True))
        return found

    def _transaction(self, doing: str, work: Callable[..., Any], *args: Any) -> Any:
        try:
            # IMMEDIATE takes the write lock up front, so concurrent writers queue on
            # busy_timeout instead of failing mid-transaction
            self.db.execute("BEGIN IMMEDIATE")
            try:
                result = work(*args)
                self.db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return result
        except sqlite3.Error as exc:
            raise self._translate(exc, doing) from None

    # -- revisits ------------------------------------------------------------------------------

    def due_for_revisit(self, outlet: str, *, published_after: str, checked_before: str,
                        removal_checks: int, limit: int, now: str | None = None,
                        backoff: float = 0.0) -> list[dict[str, Any]]:
        # ages in days (julianday); a publication date after the check counts as age 0
        recent = f"""
            SELECT {_DUE_COLUMNS}, 0, checked_at
            FROM articles INDEXED BY articles_outlet_born
            WHERE outlet = ? AND coalesce(published, first_seen) >= ? AND removed_at IS NULL
                AND checked_at <= ?
                AND julianday(checked_at) + ? * max(0, julianday(checked_at) - coalesce(
                    julianday(published), julianday(first_seen), julianday(checked_at)))
                    <= julianday(?)
            ORDER BY checked_at LIMIT ?
        """
        removed = f"""
            SELECT {_DUE_COLUMNS}, 1, checked_at
            FROM articles INDEXED BY articles_outlet_removed
            WHERE outlet = ? AND removed_at IS NOT NULL AND removal_checks < ?
                AND checked_at <= ?
            ORDER BY checked_at LIMIT ?
        """
        with self._lock:
            try:
                return least_recently_checked(
                    self.db.execute(recent, (outlet, published_after, checked_before, backoff,
                                             now or checked_before, limit)).fetchall(),
                    self.db.execute(removed, (outlet, removal_checks, checked_before,
                                              limit)).fetchall(),
                    limit=limit)
            except sqlite3.Error as exc:
                raise self._translate(exc, "read") from None

    def seen_unchanged(self, canonical_urls: list[str], when: str) -> None:
        with self._lock:
            self._transaction("write to", lambda: self.db.executemany(
                "UPDATE articles SET last_seen = ?, checked_at = ?, removed_at = NULL,"
                " removal_checks = 0 WHERE canonical_url = ?",
                [(when, when, url) for url in canonical_urls]))

    def mark_removed(self, canonical_urls: list[str], when: str) -> list[Removal]:
        def work() -> list[Removal]:
            stored = self._rows(canonical_urls, "canonical_url, removed_at, removal_checks")
            self.db.executemany(
                "UPDATE articles SET removed_at = coalesce(removed_at, ?), checked_at = ?,"
                " removal_checks = removal_checks + 1 WHERE canonical_url = ?",
                [(when, when, url) for url in stored])
            return [Removal(url, row["removed_at"] or when, row["removal_checks"] + 1)
                    for url, row in stored.items()]

        with self._lock:
            return self._transaction("write to", work)

    def history(self, canonical_url: str) -> list[dict[str, Any]]:
        columns = f"revision, {_VERSION_FIELDS}"
        with self._lock:
            try:
                current = self.db.execute(
                    f"SELECT {columns}, first_seen, last_seen, removed_at, removal_checks"
                    " FROM articles WHERE canonical_url = ?", (canonical_url,)).fetchone()
                if current is None:
                    return []
                earlier = self.db.execute(
                    f"SELECT {columns}, replaced_at FROM article_revisions"
                    " WHERE canonical_url = ? ORDER BY fetched_at, id", (canonical_url,)
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc, "read") from None
        names = columns.split(", ")
        versions = [dict(zip([*names, "replaced_at"], row, strict=True)) for row in earlier]
        versions.append(dict(zip([*names, "first_seen", "last_seen", "removed_at",
                                  "removal_checks"], current, strict=True)))
        for version in versions:
            version["canonical_url"] = canonical_url
        return versions

    def existing(self, canonical_urls: Iterable[str]) -> set[str]:
        with self._lock:
            return self._existing(list(canonical_urls))

    def _existing(self, urls: list[str]) -> set[str]:
        found: set[str] = set()
        try:
            for start in range(0, len(urls), _LOOKUP_CHUNK):
                chunk = urls[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self.db.execute(
                    f"SELECT canonical_url FROM articles WHERE canonical_url IN ({marks})", chunk
                )
                found.update(row[0] for row in rows)
        except sqlite3.Error as exc:
            raise self._translate(exc, "read") from None
        return found

    def read(self, outlet: str | None = None,
             changed_since: str | None = None) -> Iterator[dict[str, Any]]:
        query = f"SELECT {', '.join(EXPORT_FIELDS)} FROM articles WHERE 1 = 1"
        params: tuple[str, ...] = ()
        if outlet is not None:
            query += " AND outlet = ?"
            params += (outlet,)
        if changed_since is not None:
            query += " AND (fetched_at >= ? OR removed_at >= ?)"
            params += (changed_since, changed_since)
        try:
            cursor = self.db.execute(query + " ORDER BY fetched_at, canonical_url", params)
            for row in cursor:
                yield dict(zip(EXPORT_FIELDS, row, strict=True))
        except sqlite3.Error as exc:
            raise self._translate(exc, "read") from None

    def count(self, outlet: str | None = None) -> int:
        try:
            if outlet is None:
                return self.db.execute("SELECT count(*) FROM articles").fetchone()[0]
            return self.db.execute(
                "SELECT count(*) FROM articles WHERE outlet = ?", (outlet,)
            ).fetchone()[0]
        except sqlite3.Error as exc:
            raise self._translate(exc, "read") from None

    def check_writable(self) -> None:
        # a write that is never committed: SQLite opens a file it may not write read-only,
        # and says so at the first write
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                finally:
                    self._rollback()
            except sqlite3.Error as exc:
                raise self._translate(exc, "write to") from None

    # -- the crawl's own state ------------------------------------------------------------------

    def validators(self) -> dict[tuple[str, str], dict[str, str]]:
        rows = self._select("SELECT outlet, path, etag, last_modified FROM validators")
        return {(outlet, path): {k: v for k, v in (("ETag", etag),
                                                   ("Last-Modified", modified)) if v}
                for outlet, path, etag, modified in rows}

    def keep_validators(self, found: dict[tuple[str, str], dict[str, str]]) -> None:
        rows = [(outlet, path, v.get("ETag"), v.get("Last-Modified"))
                for (outlet, path), v in found.items()]
        with self._lock:
            self._transaction("write to", self.db.executemany,
                              "INSERT OR REPLACE INTO validators VALUES (?, ?, ?, ?)", rows)

    def mirror_candidates(self) -> list[dict[str, Any]]:
        rows = self._select(f"SELECT {', '.join(CANDIDATE_FIELDS)} FROM mirror_candidates")
        return [dict(zip(CANDIDATE_FIELDS, row, strict=True)) for row in rows]

    def keep_mirror_candidate(self, candidate: dict[str, Any]) -> None:
        with self._lock:
            self._transaction(
                "write to", self.db.execute,
                f"INSERT OR REPLACE INTO mirror_candidates ({', '.join(CANDIDATE_FIELDS)})"
                f" VALUES ({', '.join('?' * len(CANDIDATE_FIELDS))})",
                [candidate.get(name) for name in CANDIDATE_FIELDS])

    def _select(self, query: str) -> list[tuple]:
        with self._lock:
            try:
                return self.db.execute(query).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc, "read") from None

    def close(self) -> None:
        self.db.close()

    def _translate(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """Locked or busy (another process holds the lock past busy_timeout): retry later.
        Anything else (a corrupt file, a full disk, no permission) needs a person: one line
        naming the cause."""
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        ):
            return StoreUnavailable(f"SQLite store {self.path} is busy: {exc}")
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code
        if code == _READONLY or (code == _CANTOPEN and self._read_only()):
            return StoreError(f"the store {self.name} is read-only")
        if code == _FULL:
            return StoreError(f"the disk holding the store {self.name} is full")
        if code == _NOTADB:
            return StoreError(f"the store {self.name} is not a SQLite database (corrupt?)")
        if code == _CORRUPT:
            return StoreError(f"the store {self.name} is corrupt ({exc})")
        return StoreError(f"cannot {doing} the store {self.name}: {exc}")

    def _read_only(self) -> bool:
        """The file, or the directory its journal goes to, cannot be written (a read-only
        mount, an immutable file: what binds root too)."""
        path = Path(self.path)
        return not os.access(path.resolve().parent, os.W_OK) or (
            path.exists() and not os.access(path, os.W_OK))


_DUE_COLUMNS = ", ".join(DUE_FIELDS[:-1])


def _latest_copies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per article, the later copy in the section seen first."""
    batch: dict[str, dict[str, Any]] = {}
    for record in records:
        key = record["canonical_url"]
        if key in batch:
            record = {**record, "section": batch[key]["section"]}
        batch[key] = {name: record.get(name) for name in _STORED}
    return list(batch.values())
