"""The :class:`PostgresStore`: articles written, read and revisited on pooled connections
(why it is built as it is: :mod:`crawler.storage.postgres`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from crawler.items import ARTICLE_FIELDS
from crawler.storage import (
    DUE_FIELDS,
    ProcessState,
    Removal,
    StoreError,
    Written,
    least_recently_checked,
    rekeyed,
)
from crawler.storage.postgres.connections import (
    Connections,
    connect,
    one_line,
    server_address,
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
        self.where = server_address(params)
        self.timeout = timeout
        if "connect_timeout" not in params:
            conninfo = make_conninfo(conninfo, connect_timeout=max(1, round(timeout)))
        self._conninfo = conninfo
        self._migrate_on_open()
        self._connections = Connections(conninfo, self.where, pool_size=pool_size,
                                        timeout=timeout, reconnect_timeout=reconnect_timeout)

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> PostgresStore:
        try:
            return cls(uri, **kwargs)
        except (psycopg.ProgrammingError, psycopg.InterfaceError, ValueError) as exc:
            # a malformed URI (ValueError: e.g. a NUL character, or a port out of range)
            raise StoreError(f"bad PostgreSQL URI: {one_line(exc)}") from None

    # -- the Store interface ---------------------------------------------------------------

    def write(self, records: list[dict[str, Any]]) -> Written:
        columns = upsert_arrays(records)
        if not columns[0]:
            return Written(0)
        new, revised = self._connections.run(lambda conn: conn.execute(UPSERT, columns).fetchone())
        return Written(new, revised or ())

    def existing(self, canonical_urls: Iterable[str]) -> set[str]:
        urls = list(canonical_urls)
        if not urls:
            return set()
        rows = self._connections.run(
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
                self._connections.connection() as conn,
                conn.transaction(),
                conn.cursor(name="crawler_read_articles") as cursor,
            ):
                cursor.itersize = 500
                cursor.execute(query, params)
                for row in cursor:
                    yield article_record(row)
        except psycopg.Error as exc:
            raise self._connections.translate(exc) from exc

    def count(self, outlet: str | None = None) -> int:
        if outlet is None:
            query, params = "SELECT count(*) FROM articles", []
        else:
            query, params = "SELECT count(*) FROM articles WHERE outlet = %s", [outlet]
        return self._connections.run(lambda conn: conn.execute(query, params).fetchone()[0])

    def check_writable(self) -> None:
        # a hot standby, or a database or role set to read-only transactions
        read_only = self._connections.run(lambda conn: conn.execute(
            "SELECT current_setting('transaction_read_only')").fetchone()[0])
        if read_only == "on":
            raise StoreError(f"the PostgreSQL store at {self.where} is read-only")

    def close(self) -> None:
        self._connections.close()

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

        return self._connections.run(work)

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

        earlier, current = self._connections.run(work)
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

        return self._connections.run(select)

    def seen_unchanged(self, canonical_urls: list[str], when: str) -> None:
        self._connections.run(lambda conn: conn.execute(
            "UPDATE articles SET last_seen = %s, checked_at = %s, removed_at = NULL,"
            " removal_checks = 0 WHERE canonical_url = ANY(%s::text[])",
            [when, when, sorted(canonical_urls)]))

    def mark_removed(self, canonical_urls: list[str], when: str) -> list[Removal]:
        rows = self._connections.run(lambda conn: conn.execute(
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
        conn = connect(self._conninfo, self.where)
        try:
            with conn:
                migrate(conn)
        except psycopg.Error as exc:
            message = f"cannot migrate the PostgreSQL schema at {self.where}: {one_line(exc)}"
            raise StoreError(message) from None
