"""The :class:`PostgresStore`: articles written, read and revisited on pooled connections
(why it is built as it is: :mod:`crawler.storage.postgres`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from crawler.core.redact import redact_text
from crawler.items import ARTICLE_FIELDS
from crawler.storage import (
    DUE_FIELDS,
    ProcessState,
    Removal,
    StoreError,
    StoreUnavailable,
    Written,
    least_recently_checked,
    rekeyed,
)
from crawler.storage.postgres.rows import (
    EXPORT_COLUMNS,
    UPSERT,
    article_record,
    as_timestamp,
    iso_times,
    upsert_arrays,
)
from crawler.storage.postgres.schema import MIGRATION_LOCK_KEY, apply_rekey, migrate

T = TypeVar("T")

#: what a server says while it starts, stops or recovers: worth retrying, unlike a bad login
_SERVER_AWAY = ("starting up", "shutting down", "in recovery", "too many clients")

#: times a write is retried after a deadlock or serialization failure before giving up
_CONFLICT_RETRIES = 5

#: every connection: statements are never prepared on the server. Behind a transaction-
#: pooling PgBouncer (before 1.21, or without max_prepared_statements) a statement prepared on
#: one server connection is missing on the next, or clashes with another client's of the same
#: name. Planned each time, 3,000 articles written and checked in batches of 100 take 0.26 s
#: against 0.23 s prepared: about 0.01 ms an article, next to a worker's 11-15 ms of CPU.
_CONNECT_KWARGS = {"autocommit": True, "prepare_threshold": None}


class PostgresStore(ProcessState):
    """Articles in PostgreSQL through a small connection pool (see the package docstring)."""

    def __init__(
        self,
        conninfo: str,
        *,
        pool_size: int = 4,
        timeout: float = 5.0,
        reconnect_timeout: float = 10.0,
    ) -> None:
        params = conninfo_to_dict(conninfo)
        self.where = _where(params)
        self.timeout = timeout
        if "connect_timeout" not in params:
            conninfo = make_conninfo(conninfo, connect_timeout=max(1, round(timeout)))
        self._conninfo = conninfo
        self._migrate_on_open()
        # Opened without waiting: the server answered just now. A short reconnect_timeout
        # keeps the pool's back-off short, so it is back soon after the server is.
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs=_CONNECT_KWARGS,
            timeout=timeout,
            reconnect_timeout=reconnect_timeout,
            name=f"store {self.where}",
            open=False,
        )
        self._pool.open(wait=False)

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> PostgresStore:
        try:
            return cls(uri, **kwargs)
        except (psycopg.ProgrammingError, psycopg.InterfaceError, ValueError) as exc:
            # a malformed URI (ValueError: e.g. a NUL character, or a port out of range)
            raise StoreError(f"bad PostgreSQL URI: {_one_line(exc)}") from None

    # -- the Store interface ---------------------------------------------------------------

    def write(self, records: list[dict[str, Any]]) -> Written:
        columns = upsert_arrays(records)
        if not columns[0]:
            return Written(0, 0)
        new, revised = self._run(lambda conn: conn.execute(UPSERT, columns).fetchone())
        return Written(new, revised or ())

    def existing(self, canonical_urls: Iterable[str]) -> set[str]:
        urls = list(canonical_urls)
        if not urls:
            return set()
        rows = self._run(
            lambda conn: conn.execute(
                "SELECT canonical_url FROM articles WHERE canonical_url = ANY(%s::text[])",
                [urls],
            ).fetchall()
        )
        return {url for (url,) in rows}

    def read(self, outlet: str | None = None,
             changed_since: str | None = None) -> Iterator[dict[str, Any]]:
        where, params = "WHERE true", []
        if outlet is not None:
            where, params = where + " AND outlet = %s", params + [outlet]
        if changed_since is not None:
            since = as_timestamp("changed_since", changed_since, datetime.now(UTC))
            where += " AND (fetched_at >= %s OR removed_at >= %s)"
            params += [since, since]
        query = f"SELECT {EXPORT_COLUMNS} FROM articles {where} ORDER BY fetched_at, canonical_url"
        try:
            # a named cursor streams from the server, itersize rows per round trip
            with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(name="crawler_read_articles") as cursor,
            ):
                cursor.itersize = 500
                cursor.execute(query, params)
                for row in cursor:
                    yield article_record(row)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def count(self, outlet: str | None = None) -> int:
        if outlet is None:
            query, params = "SELECT count(*) FROM articles", []
        else:
            query, params = "SELECT count(*) FROM articles WHERE outlet = %s", [outlet]
        return self._run(lambda conn: conn.execute(query, params).fetchone()[0])

    def check_writable(self) -> None:
        # a hot standby, or a database or role set to read-only transactions
        read_only = self._run(lambda conn: conn.execute(
            "SELECT current_setting('transaction_read_only')").fetchone()[0])
        if read_only == "on":
            raise StoreError(f"the PostgreSQL store at {self.where} is read-only")

    def close(self) -> None:
        self._pool.close()

    # -- extras ------------------------------------------------------------------------------

    def rekey(self, outlet: str, identity: Callable[[str], str]) -> int:
        def work(conn: psycopg.Connection) -> int:
            with conn.transaction():
                # under the migration lock: one rekey at a time, and none during a migration
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
                plan = rekeyed(conn.execute(
                    "SELECT canonical_url, fetched_at FROM articles WHERE outlet = %s", [outlet]
                ), identity)
                apply_rekey(conn, plan)
                return len(plan)

        return self._run(work)

    def revisions(self, canonical_url: str) -> list[dict[str, Any]]:
        """Earlier versions of one article, oldest first."""
        return self.history(canonical_url)[:-1]

    def history(self, canonical_url: str) -> list[dict[str, Any]]:
        version = f"revision, {', '.join(ARTICLE_FIELDS)}"

        def work(conn: psycopg.Connection) -> tuple[list[Any], Any]:
            with conn.transaction():  # one snapshot: no revision between the two reads
                earlier = conn.execute(
                    f"SELECT {version}, replaced_at FROM article_revisions"
                    " WHERE canonical_url = %s ORDER BY fetched_at, id", [canonical_url]
                ).fetchall()
                current = conn.execute(
                    f"SELECT {version}, first_seen, last_seen, removed_at, removal_checks"
                    " FROM articles WHERE canonical_url = %s", [canonical_url]).fetchone()
                return earlier, current

        earlier, current = self._run(work)
        if current is None:
            return []
        names = version.split(", ")
        versions = [iso_times(dict(zip([*names, "replaced_at"], row, strict=True)))
                    for row in earlier]
        versions.append(iso_times(dict(zip(
            [*names, "first_seen", "last_seen", "removed_at", "removal_checks"], current,
            strict=True))))
        return versions

    def due_for_revisit(self, outlet: str, *, published_after: str, checked_before: str,
                        removal_checks: int, limit: int, now: str | None = None,
                        backoff: float = 0.0) -> list[dict[str, Any]]:
        columns = ", ".join(DUE_FIELDS[:-1])

        def select(conn: psycopg.Connection) -> list[dict[str, Any]]:
            # a publication date after the check counts as age 0
            recent = conn.execute(f"""
                SELECT {columns}, false, checked_at FROM articles
                WHERE outlet = %s AND coalesce(published, first_seen) >= %s
                    AND removed_at IS NULL AND checked_at <= %s
                    AND checked_at + %s * greatest(interval '0',
                        checked_at - coalesce(published, first_seen)) <= %s::timestamptz
                ORDER BY checked_at LIMIT %s
                """, [outlet, published_after, checked_before, backoff,
                      now or checked_before, limit]).fetchall()
            removed = conn.execute(f"""
                SELECT {columns}, true, checked_at FROM articles
                WHERE outlet = %s AND removed_at IS NOT NULL AND removal_checks < %s
                    AND checked_at <= %s
                ORDER BY checked_at LIMIT %s
                """, [outlet, removal_checks, checked_before, limit]).fetchall()
            return least_recently_checked(recent, removed, limit=limit)

        return self._run(select)

    def seen_unchanged(self, canonical_urls: list[str], when: str) -> None:
        self._run(lambda conn: conn.execute(
            "UPDATE articles SET last_seen = %s, checked_at = %s, removed_at = NULL,"
            " removal_checks = 0 WHERE canonical_url = ANY(%s::text[])",
            [when, when, sorted(canonical_urls)]))

    def mark_removed(self, canonical_urls: list[str], when: str) -> list[Removal]:
        rows = self._run(lambda conn: conn.execute(
            "UPDATE articles SET removed_at = coalesce(removed_at, %s), checked_at = %s,"
            " removal_checks = removal_checks + 1 WHERE canonical_url = ANY(%s::text[])"
            " RETURNING canonical_url, removed_at, removal_checks",
            [when, when, sorted(canonical_urls)]).fetchall())
        return [Removal(url, removed_at.astimezone(UTC).isoformat(), checks)
                for url, removed_at, checks in rows]

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _migrate_on_open(self) -> None:
        try:
            conn = psycopg.connect(self._conninfo, **_CONNECT_KWARGS)
        except psycopg.OperationalError as exc:
            reason = _connect_failure(exc)
            if reason.startswith("FATAL:"):  # the server answered and refused
                reason = reason.removeprefix("FATAL:").strip()
                away = any(state in reason for state in _SERVER_AWAY)
                error = StoreUnavailable if away else StoreError
                raise error(f"PostgreSQL at {self.where}: {reason}") from None
            raise StoreUnavailable(f"cannot reach PostgreSQL at {self.where}: {reason}") from None
        try:
            with conn:
                migrate(conn)
        except psycopg.Error as exc:
            message = f"cannot migrate the PostgreSQL schema at {self.where}: {_one_line(exc)}"
            raise StoreError(message) from None

    def _run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` on a pooled connection, retried where a retry is sure to be safe.

        Every statement here is idempotent, so a retry never stores anything twice.
        """
        conflicts = 0
        stale_retried = False
        while True:
            conn = None
            try:
                with self._pool.connection() as conn:
                    return work(conn)
            except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
                conflicts += 1
                if conflicts > _CONFLICT_RETRIES:
                    raise self._translate(exc) from exc
                time.sleep(random.uniform(0.01, 0.05) * conflicts)
            except psycopg.OperationalError as exc:
                # A pooled connection may have died while idle (server restarted, backend
                # terminated): drop the dead ones and try once more on a fresh one.
                if conn is not None and conn.broken and not stale_retried:
                    stale_retried = True
                    with suppress(Exception):
                        self._pool.check()
                    continue
                raise self._translate(exc) from exc
            except psycopg.Error as exc:
                raise self._translate(exc) from exc

    def _translate(self, exc: psycopg.Error) -> StoreError:
        if isinstance(exc, PoolClosed):
            return StoreError(f"the PostgreSQL store at {self.where} is closed")
        if isinstance(exc, PoolTimeout):
            return StoreUnavailable(
                f"PostgreSQL at {self.where} unavailable: no connection within {self.timeout:g} s"
            )
        if isinstance(exc, psycopg.OperationalError) and not isinstance(
            exc, errors.DeadlockDetected | errors.SerializationFailure
        ):
            return StoreUnavailable(f"PostgreSQL at {self.where} unavailable: {_one_line(exc)}")
        return StoreError(f"PostgreSQL at {self.where}: {_one_line(exc)}")





def _where(params: dict[str, Any]) -> str:
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return f"{host}:{params.get('port') or 5432}"


def _connect_failure(exc: psycopg.OperationalError) -> str:
    """The reason in libpq's 'connection to server at "h", port p failed: REASON'."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = first.rpartition(" failed: ")[2] if " failed: " in first else first
    reason = redact_text(reason.strip())
    if not reason.startswith("FATAL:"):
        reason = reason[:1].lower() + reason[1:]
    return reason


def _one_line(exc: BaseException) -> str:
    """The first line of an error (libpq appends hints on lines of their own), without a
    password libpq may quote from the connection string."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact_text(lines[0]) if lines else type(exc).__name__
