"""A private ``redis-server`` for tests and benchmarks.

Each :class:`RedisServer` runs its own ``redis-server`` (through pytest-redis's
:class:`RedisExecutor`, a mirakuru executor) on a free loopback port, with its data directory
in a temporary folder, so tests never touch a Redis shared with anything else (in particular
not the one on 6379). By default nothing is persisted (``--save ""``, no AOF);
``appendonly=True`` turns AOF on, so data survives a :meth:`RedisServer.restart`, even one
that kills the server without warning.

pytest-redis's own ``redis_proc`` fixtures are session-wide and cannot turn AOF on, while
these tests need a server of their own to kill and restart: hence this small wrapper. Use it
directly (``with RedisServer() as server: ...``) or through the fixtures below; a conftest
makes them available to every test module with::

    from redis_server import redis_server, redis_server_factory, redis_url  # noqa: F401
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import port_for
import pytest
import redis
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError
from pytest_redis.executor import RedisExecutor

START_TIMEOUT = 10


class RedisServerUnavailable(RuntimeError):
    """No ``redis-server`` binary can be found."""


def find_redis_server() -> str:
    """Path of the ``redis-server`` binary: $REDIS_SERVER, then $PATH, then /usr/bin."""
    candidates = [os.environ.get("REDIS_SERVER"), shutil.which("redis-server")]
    candidates.append("/usr/bin/redis-server")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RedisServerUnavailable(
        "no redis-server binary (install Debian's redis-server package or set $REDIS_SERVER)"
    )


def free_loopback_port() -> int:
    """A free TCP port on 127.0.0.1, outside the IANA-registered ones (so never 6379, 5432 or
    9090, where the machine's own servers listen)."""
    return port_for.select_random()


class _Executor(RedisExecutor):
    """RedisExecutor with the options it has no parameter for, started once PING answers
    (a server reading its AOF accepts connections but answers LOADING)."""

    def __init__(self, extra_args: list[str], **options) -> None:
        super().__init__(**options)
        self.command_parts = [*self.command_parts, *extra_args]
        self.command = shlex.join(self.command_parts)

    def after_start_check(self) -> bool:
        with (
            contextlib.suppress(redis.ConnectionError, redis.TimeoutError),
            redis.Redis(host=self.host, port=self.port, socket_timeout=1.0) as client,
        ):
            return bool(client.ping())
        return False


class RedisServer:
    """One private ``redis-server`` process on 127.0.0.1.

    ``appendonly`` turns AOF on (``appendfsync always`` by default, so every acknowledged
    write survives even a killed server); ``extra_args`` are passed on to redis-server
    (e.g. ``["--maxmemory", "10mb"]``).
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: str = "always",
        extra_args: list[str] | tuple[str, ...] = (),
        binary: str | None = None,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.appendonly = appendonly
        self.extra_args = ["--save", "", "--appendfsync", appendfsync, *extra_args]
        self.executor: _Executor | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="redis-server-")
        self.dir = Path(self._tmp.name)

    # -- addresses ------------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        return self.executor.port if self.executor else None

    @property
    def process(self):
        """The running server's :class:`subprocess.Popen`, or None."""
        return self.executor.process if self.executor else None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def logfile(self) -> Path:
        return self._logfile(self.port)

    def _logfile(self, port: int | None) -> Path:
        return self.dir / f"redis-server.{port}.log"  # where RedisExecutor has it write

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING.

        The first start takes a free port; later starts (see :meth:`restart`) reuse it, so
        URLs handed out before stay valid.
        """
        if self.executor is not None:
            self._start(self.executor)
            return self
        # A free port can be taken between choosing it and binding it: choose again.
        for _ in range(5):
            executor = self._executor(free_loopback_port())
            if self._start(executor, first=True):
                self.executor = executor
                return self
        raise RuntimeError("redis-server found no free port")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM and wait, or SIGKILL (a crash) if ``kill``."""
        if self.executor is None:
            return
        if kill:
            self.executor.kill()
        else:
            self.executor.stop()

    def restart(self, *, keep_data: bool = True, kill: bool = False) -> None:
        """Stop and start again on the same port.

        With ``keep_data`` the data directory is kept: with AOF on, everything written
        survives (even with ``kill``); without AOF a snapshot is taken first unless ``kill``
        (a crash loses it all). Without ``keep_data`` the server starts empty.
        """
        if keep_data and not kill and not self.appendonly and self.executor.running():
            with self.client() as client:
                client.save()
        self.stop(kill=kill)
        if not keep_data:
            for path in self.dir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path != self.logfile:
                    path.unlink()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------
    def _executor(self, port: int) -> _Executor:
        return _Executor(
            self.extra_args, executable=self.binary, databases=16, redis_timeout=0,
            loglevel="notice", host="127.0.0.1", port=port, startup_timeout=START_TIMEOUT,
            appendonly="yes" if self.appendonly else "no", datadir=self.dir,
        )  # fmt: skip

    def _start(self, executor: _Executor, *, first: bool = False) -> bool:
        """Start ``executor``; False if this is the first start and its port was taken."""
        try:
            executor.start()
        except (AlreadyRunning, ProcessExitedWithError) as exc:
            log_file = self._logfile(executor.port)
            log = log_file.read_text(errors="replace") if log_file.exists() else ""
            if first and (isinstance(exc, AlreadyRunning) or "Address already in use" in log):
                return False
            raise RuntimeError(
                f"redis-server did not start on 127.0.0.1:{executor.port}\n{log}".rstrip()
            ) from None
        return True


# -- pytest fixtures -----------------------------------------------------------------------
def _skip_without_binary() -> None:
    try:
        find_redis_server()
    except RedisServerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def redis_server_factory() -> Iterator:
    """Call it (with :class:`RedisServer`'s options) to get started servers; all are killed
    at teardown."""
    _skip_without_binary()
    servers: list[RedisServer] = []

    def start(**options) -> RedisServer:
        server = RedisServer(**options)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def redis_server(redis_server_factory) -> RedisServer:
    """A running private redis-server (no persistence), new for each test."""
    return redis_server_factory()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a private redis-server: redis://127.0.0.1:PORT/0."""
    return redis_server.url
