"""The PostgreSQL store's connections: its own one to migrate the schema on open, then a
small pool. Work on a pooled connection is retried where a retry is sure to be safe, and
psycopg's errors become one-line store errors, :class:`StoreUnavailable` while the server is
away."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from crawler.core.redact import redact_text
from crawler.storage import StoreError, StoreUnavailable

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
CONNECT_KWARGS = {"autocommit": True, "prepare_threshold": None}


def connect(conninfo: str, where: str) -> psycopg.Connection:
    """A connection of its own, outside the pool (the schema's migration on open): a server
    that refuses it (a bad login, say) is a StoreError, one that is away StoreUnavailable."""
    try:
        return psycopg.connect(conninfo, **CONNECT_KWARGS)
    except psycopg.OperationalError as exc:
        reason = _connect_failure(exc)
        if reason.startswith("FATAL:"):  # the server answered and refused
            reason = reason.removeprefix("FATAL:").strip()
            away = any(state in reason for state in _SERVER_AWAY)
            error = StoreUnavailable if away else StoreError
            raise error(f"PostgreSQL at {where}: {reason}") from None
        raise StoreUnavailable(f"cannot reach PostgreSQL at {where}: {reason}") from None


class Connections:
    """A small pool of connections to the server at ``where``."""

    def __init__(self, conninfo: str, where: str, *, pool_size: int, timeout: float,
                 reconnect_timeout: float) -> None:
        self.where = where
        self.timeout = timeout
        # Opened without waiting: the server answered just now. A short reconnect_timeout
        # keeps the pool's back-off short, so it is back soon after the server is.
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs=CONNECT_KWARGS,
            timeout=timeout,
            reconnect_timeout=reconnect_timeout,
            name=f"store {where}",
            open=False,
        )
        self._pool.open(wait=False)

    def connection(self) -> AbstractContextManager[psycopg.Connection]:
        """A pooled connection, for work that :meth:`run` cannot do (a cursor that streams)."""
        return self._pool.connection()

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` on a pooled connection, retried where a retry is sure to be safe.

        Every statement of the store is idempotent, so a retry never stores anything twice.
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
                    raise self.translate(exc) from exc
                time.sleep(random.uniform(0.01, 0.05) * conflicts)
            except psycopg.OperationalError as exc:
                # A pooled connection may have died while idle (server restarted, backend
                # terminated): drop the dead ones and try once more on a fresh one.
                if conn is not None and conn.broken and not stale_retried:
                    stale_retried = True
                    with suppress(Exception):
                        self._pool.check()
                    continue
                raise self.translate(exc) from exc
            except psycopg.Error as exc:
                raise self.translate(exc) from exc

    def translate(self, exc: psycopg.Error) -> StoreError:
        """psycopg's error as the store's, in one line: StoreUnavailable while it may pass."""
        if isinstance(exc, PoolClosed):
            return StoreError(f"the PostgreSQL store at {self.where} is closed")
        if isinstance(exc, PoolTimeout):
            return StoreUnavailable(
                f"PostgreSQL at {self.where} unavailable: no connection within {self.timeout:g} s"
            )
        if isinstance(exc, psycopg.OperationalError) and not isinstance(
            exc, errors.DeadlockDetected | errors.SerializationFailure
        ):
            return StoreUnavailable(f"PostgreSQL at {self.where} unavailable: {one_line(exc)}")
        return StoreError(f"PostgreSQL at {self.where}: {one_line(exc)}")

    def close(self) -> None:
        self._pool.close()


def server_address(params: dict[str, Any]) -> str:
    """``host:port`` of the connection parameters, to name the server in messages."""
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


def one_line(exc: BaseException) -> str:
    """The first line of an error (libpq appends hints on lines of their own), without a
    password libpq may quote from the connection string."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact_text(lines[0]) if lines else type(exc).__name__
