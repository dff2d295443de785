"""SQLite store: the embedded default. WAL mode, so several processes can write one file.

The schema version is ``PRAGMA user_version``: 0 is the first schema, whose keys were raw
canonical URLs; 1 keys articles by identity URL (see :func:`crawler.storage.rekeyed`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from crawler.items import ARTICLE_FIELDS
from crawler.storage import StoreError, StoreUnavailable, path_from_uri, rekeyed

SCHEMA_VERSION = 1

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
"""

_COLUMNS = ", ".join(ARTICLE_FIELDS)
_PLACEHOLDERS = ", ".join(f":{f}" for f in ARTICLE_FIELDS)
# An unchanged article is left alone; a changed one takes the new text but keeps the section
# it was first found in.
UPSERT = f"""
INSERT INTO articles ({_COLUMNS}) VALUES ({_PLACEHOLDERS})
ON CONFLICT (canonical_url) DO UPDATE SET
    url = excluded.url, mirror = excluded.mirror, title = excluded.title,
    author = excluded.author, published = excluded.published, language = excluded.language,
    text = excluded.text, content_hash = excluded.content_hash, fetched_at = excluded.fetched_at
WHERE articles.content_hash != excluded.content_hash
"""
# SQLite limits bound parameters per statement (32766 since 3.32); stay far below.
_LOOKUP_CHUNK = 500


class SQLiteStore:
    def __init__(self, path: str, busy_timeout: float = 30.0) -> None:
        self.path = path
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
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from None

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
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _rekey(self) -> None:
        """Version 1: keys become identity URLs; of duplicates the latest fetched stays."""
        self._apply(rekeyed(self.db.execute("SELECT canonical_url, fetched_at FROM articles")))

    def _apply(self, plan: list[tuple[str, str, str]]) -> None:
        # the merged rows go first: a row moving to a key may find one of them there
        self.db.executemany("DELETE FROM articles WHERE canonical_url = ?",
                            [(old,) for old, stays, _ in plan if old != stays])
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
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._translate(exc, "rekey") from None
        return len(plan)

    @classmethod
    def from_uri(cls, uri: str) -> SQLiteStore:
        return cls(path_from_uri(uri))

    def write(self, records: list[dict[str, Any]]) -> int:
        with self._lock:
            return self._write(records)

    def _write(self, records: list[dict[str, Any]]) -> int:
        try:
            before = self.db.total_changes
            # IMMEDIATE takes the write lock up front, so concurrent writers queue on
            # busy_timeout instead of failing mid-transaction
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(UPSERT, records)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return self.db.total_changes - before
        except sqlite3.Error as exc:
            raise self._translate(exc, "write to") from None

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

    def read(self, outlet: str | None = None) -> Iterator[dict[str, Any]]:
        query = f"SELECT {_COLUMNS} FROM articles"
        params: tuple[str, ...] = ()
        if outlet is not None:
            query += " WHERE outlet = ?"
            params = (outlet,)
        try:
            cursor = self.db.execute(query + " ORDER BY fetched_at, canonical_url", params)
            for row in cursor:
                yield dict(zip(ARTICLE_FIELDS, row, strict=True))
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

    def close(self) -> None:
        self.db.close()

    def _translate(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """Locked or busy (another process holds the lock past busy_timeout): retry later.
        Anything else (a corrupt file, a full disk, no permission) needs a person."""
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        ):
            return StoreUnavailable(f"SQLite store {self.path} is busy: {exc}")
        return StoreError(f"cannot {doing} SQLite store {self.path}: {exc}")
