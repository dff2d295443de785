"""Real PostgreSQL for tests and benchmarks, each run in a database of its own.

``postgres_server()`` gives the machine's server on 127.0.0.1:5432 (trust auth, user
postgres) when it answers, or else a private one started from the installed binaries;
``private_server()`` always starts a private one, for tests that stop and start it (the
shared server is never restarted). ``server.database()`` creates a uniquely named database
and drops it afterwards. Both raise :class:`NoPostgres` with the reason when they cannot.

pytest-postgresql does the work: its ``PostgreSQLExecutor`` (pg_ctl through mirakuru) runs the
private cluster and its ``DatabaseJanitor`` creates and drops the databases. Its fixtures are
not used: they choose one server at configuration time and keep it for the session, while
these tests want the shared server when it answers and else a private one, private servers of
their own to stop and start, and the benchmarks need the same without pytest.

``CRAWLER_TEST_POSTGRES`` overrides the shared server's admin URI; ``CRAWLER_TEST_PG_BIN``
the directory holding pg_ctl (and initdb).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import port_for
import psycopg
from mirakuru.exceptions import AlreadyRunning, ExecutorError
from psycopg.conninfo import conninfo_to_dict
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor

SHARED_ADMIN_URI = "postgresql://postgres@127.0.0.1:5432/postgres"


class NoPostgres(RuntimeError):
    """No PostgreSQL can be used here; the message says why."""


class PostgresServer:
    def __init__(self, host: str, port: int, user: str = "postgres", password: str = "") -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password

    def uri(self, dbname: str = "postgres") -> str:
        auth = f"{self.user}:{self.password}" if self.password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def answers(self) -> bool:
        try:
            psycopg.connect(self.uri(), connect_timeout=2).close()
        except psycopg.Error:
            return False
        return True

    def janitor(self, dbname: str) -> DatabaseJanitor:
        """Creates (``init``) and drops (``drop``, even with clients connected) ``dbname``."""
        return DatabaseJanitor(
            user=self.user, host=self.host, port=self.port, dbname=dbname,
            password=self.password or None, connection_timeout=10,
        )  # fmt: skip

    def create_database(self) -> str:
        name = f"crawler_test_{secrets.token_hex(6)}"
        self.janitor(name).init()
        return name

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database; yields its URI and drops it afterwards."""
        name = f"crawler_test_{secrets.token_hex(6)}"
        with self.janitor(name):
            yield self.uri(name)


class PrivateServer(PostgresServer):
    """A throwaway cluster in a temporary directory, listening on loopback only."""

    def __init__(self, pg_ctl: Path) -> None:
        super().__init__("127.0.0.1", 0)
        self.base = Path(tempfile.mkdtemp(prefix="crawler-pg-"))
        self.pg_ctl = str(pg_ctl)
        if os.geteuid() == 0:
            # initdb and pg_ctl refuse to run as root: the executor runs them as postgres
            self.pg_ctl = str(self.base / "pg_ctl")
            Path(self.pg_ctl).write_text(
                f'#!/bin/sh\nexec runuser -u postgres -- {shlex.quote(str(pg_ctl))} "$@"\n'
            )
            Path(self.pg_ctl).chmod(0o755)
            account = pwd.getpwnam("postgres")
            os.chown(self.base, account.pw_uid, account.pw_gid)
        self.base.chmod(0o700)
        self.executor: PostgreSQLExecutor | None = None

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def start(self) -> None:
        """Start the server (initdb first, at the first start) and wait until it answers."""
        if self.executor is None:
            # the port may be taken between choosing it and binding it: choose another
            for attempt in range(3):
                port = port_for.select_random()
                self.executor = PostgreSQLExecutor(
                    executable=self.pg_ctl, host="127.0.0.1", port=port,
                    datadir=str(self.base / f"data-{port}"), unixsocketdir=str(self.base),
                    logfile=str(self.log), startparams="-w -t 60", dbname="postgres",
                    postgres_options="-c listen_addresses=127.0.0.1",
                )  # fmt: skip
                self.port = port
                try:
                    self._start()
                except NoPostgres:
                    if attempt == 2:
                        raise
                    continue
                return
        self._start()

    def _start(self) -> None:
        try:
            self.executor.start()
        except (AlreadyRunning, ExecutorError, subprocess.CalledProcessError) as exc:
            output = getattr(exc, "output", None) or b""
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise NoPostgres(
                f"PostgreSQL did not start: {exc}\n{output.decode(errors='replace')}{log}"
            ) from None
        # pg_ctl's process may still be waiting while the server already counts as running,
        # and a client then meets "the database system is starting up"
        deadline = time.monotonic() + 60
        while not self.answers():
            if time.monotonic() > deadline:
                raise NoPostgres(f"PostgreSQL started but does not answer: {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected)."""
        self.executor.stop()

    def destroy(self) -> None:
        if self.executor is not None and self.executor.running():
            self.executor.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def find_pg_ctl() -> Path | None:
    """The newest installed PostgreSQL's pg_ctl (with initdb next to it)."""
    candidates = [os.environ.get("CRAWLER_TEST_PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    if found := shutil.which("pg_ctl"):
        candidates.append(str(Path(found).parent))
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path / "pg_ctl"
    return None


def shared_server() -> PostgresServer | None:
    """The machine's server, if it answers."""
    params = conninfo_to_dict(os.environ.get("CRAWLER_TEST_POSTGRES", SHARED_ADMIN_URI))
    server = PostgresServer(
        params.get("host", "127.0.0.1"),
        int(params.get("port", 5432)),
        params.get("user", "postgres"),
        params.get("password", ""),
    )
    return server if server.answers() else None


@contextmanager
def private_server() -> Iterator[PrivateServer]:
    """A private server on a free loopback port, removed afterwards."""
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        raise NoPostgres("no PostgreSQL installed (initdb and pg_ctl not found)")
    if os.geteuid() == 0 and (_no_user("postgres") or not shutil.which("runuser")):
        raise NoPostgres("running as root without a 'postgres' user and runuser for initdb")
    server = PrivateServer(pg_ctl)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The shared server when it answers, else a private one."""
    shared = shared_server()
    if shared is not None:
        yield shared
        return
    with private_server() as server:
        yield server


def _no_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return True
    return False
