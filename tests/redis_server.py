"""A private ``redis-server`` for tests and benchmarks.

Each :class:`RedisServer` runs its own ``redis-server`` process on a free loopback port, with
its data directory in a temporary folder, so tests never touch a Redis shared with anything
else (in particular not the one on 6379). By default nothing is persisted
(``--save "" --appendonly no``); ``appendonly=True`` turns AOF on, so data survives a
:meth:`RedisServer.restart`, even one that kills the server without warning.

Use it directly (``with RedisServer() as server: ...``) or through the fixtures below; a
conftest makes them available to every test module with::

    from redis_server import redis_server, redis_server_factory, redis_url  # noqa: F401
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

#: the port of the machine's shared Redis, which a private server must never take
SHARED_REDIS_PORT = 6379
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


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
    """A TCP port on 127.0.0.1 that nothing listens on right now (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != SHARED_REDIS_PORT:
            return port


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
        self.appendfsync = appendfsync
        self.extra_args = list(extra_args)
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="redis-server-")
        self.dir = Path(self._tmp.name)

    # -- addresses ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def logfile(self) -> Path:
        return self.dir / "redis.log"

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING.

        The first start takes a free port; later starts (see :meth:`restart`) reuse it, so
        URLs handed out before stay valid.
        """
        if self.process is not None:
            raise RuntimeError("the server is already running")
        if self.port is not None:
            self._spawn(self.port)
            return self
        # A free port can be taken between choosing it and binding it: choose again.
        for _ in range(5):
            port = free_loopback_port()
            if self._spawn(port, give_up_if_taken=False):
                return self
        raise RuntimeError(f"redis-server found no free port; see {self.logfile}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM and wait, or SIGKILL (a crash) if ``kill``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, *, keep_data: bool = True, kill: bool = False) -> None:
        """Stop and start again on the same port.

        With ``keep_data`` the data directory is kept: with AOF on, everything written
        survives (even with ``kill``); without AOF a snapshot is taken first unless ``kill``
        (a crash loses it all). Without ``keep_data`` the server starts empty.
        """
        if keep_data and not kill and not self.appendonly and self.process is not None:
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
    def _command(self, port: int) -> list[str]:
        command = [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.logfile),
            "--save", "",
            "--dbfilename", "dump.rdb",
        ]  # fmt: skip
        if self.appendonly:
            command += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        else:
            command += ["--appendonly", "no"]
        return command + self.extra_args

    def _spawn(self, port: int, *, give_up_if_taken: bool = True) -> bool:
        """Start redis-server on ``port``; False if the port was taken (and may be retried)."""
        log_start = self.logfile.stat().st_size if self.logfile.exists() else 0
        process = subprocess.Popen(
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    # Refused until it listens, LOADING while it reads the AOF: poll.
                    if client.ping():
                        self.process, self.port = process, port
                        return True
                time.sleep(0.02)
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        log = self._log_since(log_start)
        if not give_up_if_taken and "Address already in use" in log + stderr:
            return False
        raise RuntimeError(
            f"redis-server did not answer PING on 127.0.0.1:{port}\n{stderr}{log}".rstrip()
        )

    def _log_since(self, offset: int) -> str:
        if not self.logfile.exists():
            return ""
        with self.logfile.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


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
