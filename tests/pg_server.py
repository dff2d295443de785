"""Real PostgreSQL for tests and benchmarks, each run in a database of its own.

``postgres_server()`` gives the machine's server on 127.0.0.1:5432 (trust auth, user
postgres) when it answers, or else a private one started from the installed binaries;
``private_server()`` always starts a private one, for tests that stop and start it (the
shared server is never restarted). ``server.database()`` creates a uniquely named database
and drops it afterwards. Both raise :class:`NoPostgres` with the reason when they cannot.

``CRAWLER_TEST_POSTGRES`` overrides the shared server's admin URI; ``CRAWLER_TEST_PG_BIN``
the directory holding initdb and pg_ctl.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

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

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.uri(), autocommit=True, connect_timeout=5)

    def create_database(self) -> str:
        name = f"crawler_test_{secrets.token_hex(6)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a store a test left open must not keep its database alive
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database; yields its URI and drops it afterwards."""
        name = self.create_database()
        try:
            yield self.uri(name)
        finally:
            self.drop_database(name)


class PrivateServer(PostgresServer):
    """A throwaway cluster in a temporary directory, listening on loopback only."""

    def __init__(self, bin_dir: Path, port: int) -> None:
        super().__init__("127.0.0.1", port)
        self.bin_dir = bin_dir
        # initdb refuses to run as root: run the server as the postgres user then
        self.run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self.base = Path(tempfile.mkdtemp(prefix="crawler-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            os.chown(self.base, account.pw_uid, account.pw_gid)
        self.base.chmod(0o700)

    def initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base}"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.base, ignore_errors=True)

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", self.run_as, "--", *command] if self.run_as else command

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            self._command(program, *args), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise NoPostgres(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log}"
            )


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries (with initdb and pg_ctl)."""
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
            return path
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
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise NoPostgres("no PostgreSQL installed (initdb and pg_ctl not found)")
    if os.geteuid() == 0 and (_unprivileged_user() is None or not shutil.which("runuser")):
        raise NoPostgres("running as root without a 'postgres' user and runuser for initdb")
    server = PrivateServer(bin_dir, _free_port())
    try:
        server.initdb()
        for attempt in range(3):  # the free port may be taken before the server binds it
            try:
                server.start()
                break
            except NoPostgres:
                if attempt == 2:
                    raise
                server.port = _free_port()
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


def _unprivileged_user() -> str | None:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
