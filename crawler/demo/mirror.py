"""One mirror of the demo outlet on loopback: a real HTTP server with a failure behaviour.

A :class:`MirrorServer` serves a :class:`~crawler.demo.site.DemoSite` the way one mirror of
a real outlet might: healthy, or failing in one of the ways real mirrors fail
(:mod:`~crawler.demo.behaviours`). Its behaviour can be switched while it runs
(``server.behaviour = "dead"``) so a test can take a mirror down and bring it back. Every
request is logged with its arrival time, so tests can count hits per path and benchmarks can
see the request rate and concurrency the server saw.

It answers as a real server does (nginx serving static files, say): the body gzipped when
the request's Accept-Encoding allows it (``Content-Encoding: gzip``, ``Vary:
Accept-Encoding``), ETag and Last-Modified on every 200 answer, and 304 Not Modified to an
``If-None-Match`` or ``If-Modified-Since`` that matches (:mod:`~crawler.demo.httpd`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate

from crawler.demo.behaviours import (
    DEAD,
    FLAKY,
    FORBIDDEN,
    FORBIDDEN_PAGE,
    GARBAGE,
    HANGING,
    HEALTHY,
    HTML,
    PARKED_PAGE,
    REDIRECT_OFF,
    REDIRECT_PAGE,
    REDIRECT_TARGET,
    SEIZED,
    SEIZED_PAGE,
    UNAVAILABLE_PAGE,
    check_behaviour,
)
from crawler.demo.httpd import (
    GZIP_MIN_LENGTH,
    GZIP_STATUSES,
    GZIP_TYPES,
    Handler,
    Listener,
    Representation,
    accepts_gzip,
    not_modified,
)
from crawler.demo.site import DemoSite


@dataclass
class LoggedRequest:
    """One request as the server saw it; times are ``time.monotonic()``."""

    started: float
    path: str
    behaviour: str
    #: the status sent, or None when nothing was answered (hanging, dropped)
    status: int | None = None
    #: when the answer started going out, or the request was dropped
    finished: float | None = None


class MirrorServer:
    """A real HTTP server on loopback serving ``site`` with a failure ``behaviour``.

    The port is reserved at construction (``base_url`` is known before ``start()``): while
    the mirror is ``dead`` the port is bound but not listening, so connections are refused.
    ``delay`` (seconds) slows every answer, to make concurrency visible to the log.
    """

    def __init__(
        self,
        site: DemoSite,
        behaviour: str = HEALTHY,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
    ) -> None:
        check_behaviour(behaviour)
        self.site = site
        self.host = host
        self.delay = delay
        self._behaviour = behaviour
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._state = threading.RLock()  # behaviour transitions, start/stop
        self._lock = threading.Lock()  # log, counters, connections
        self._log: list[LoggedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._flaky_count = 0
        # the site's files, as if written when the server started
        self.last_modified = int(time.time())
        self._representations: dict[bytes, Representation] = {}
        self._connections: set[socket.socket] = set()
        self._release = threading.Event()
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._reserved: socket.socket | None = self._bind(port)
        self.port: int = self._reserved.getsockname()[1]
        netloc = f"[{host}]" if self._family == socket.AF_INET6 else host
        self.base_url = f"http://{netloc}:{self.port}"

    def __repr__(self) -> str:
        return f"<MirrorServer {self.base_url} {self._behaviour}>"

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> MirrorServer:
        with self._state:
            self._started = True
            if self._behaviour != DEAD:
                self._listen()
        return self

    def stop(self) -> None:
        with self._state:
            self._started = False
            self._release_hanging()
            self._unlisten(reserve=False)
            if self._reserved is not None:
                self._reserved.close()
                self._reserved = None

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def behaviour(self) -> str:
        return self._behaviour

    @behaviour.setter
    def behaviour(self, behaviour: str) -> None:
        check_behaviour(behaviour)
        with self._state:
            previous, self._behaviour = self._behaviour, behaviour
            if previous == HANGING and behaviour != HANGING:
                self._release_hanging()
            if behaviour == FLAKY and previous != FLAKY:
                with self._lock:
                    self._flaky_count = 0
            if not self._started:
                return
            if behaviour == DEAD:
                self._unlisten(reserve=True)
            elif self._listener is None:
                self._listen()

    def _bind(self, port: int) -> socket.socket:
        # the same port comes back after a dead spell: retry briefly if the kernel lags
        for attempt in range(50):
            sock = socket.socket(self._family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or port == 0 or attempt == 49:
                    raise
                time.sleep(0.02)
        raise AssertionError("unreachable")

    def _listen(self) -> None:
        sock = self._reserved if self._reserved is not None else self._bind(self.port)
        self._reserved = None
        self._listener = Listener(sock, self.host, self.port, self._handle,
                                  self._connection_opened, self._connection_closed)
        self._thread = threading.Thread(
            target=self._listener.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"demo-mirror-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def _unlisten(self, reserve: bool) -> None:
        if self._listener is not None:
            self._listener.shutdown()
            self._listener.server_close()
            assert self._thread is not None
            self._thread.join()
            self._listener = self._thread = None
        # kept-alive connections would otherwise go on being served
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if reserve and self._reserved is None:
            self._reserved = self._bind(self.port)

    def _release_hanging(self) -> None:
        self._release.set()
        self._release = threading.Event()

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the log, in arrival order."""
        with self._lock:
            return [dataclasses.replace(entry) for entry in self._log]

    def paths(self) -> list[str]:
        with self._lock:
            return [entry.path for entry in self._log]

    def hits(self, path: str | None = None) -> int:
        """Requests for ``path`` (path and query, as sent), or all requests."""
        with self._lock:
            return sum(1 for entry in self._log if path is None or entry.path == path)

    @property
    def max_in_flight(self) -> int:
        """The most requests this server was answering at one time."""
        with self._lock:
            return self._max_in_flight

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._max_in_flight = self._in_flight

    # -- answering ---------------------------------------------------------------------------

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _handle(self, handler: Handler, head: bool) -> None:
        behaviour = self._behaviour
        entry = LoggedRequest(time.monotonic(), handler.path, behaviour)
        with self._lock:
            self._log.append(entry)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            self._answer(handler, behaviour, entry, head)
        finally:
            with self._lock:
                self._in_flight -= 1
                if entry.finished is None:
                    entry.finished = time.monotonic()

    def _answer(self, handler: Handler, behaviour: str, entry: LoggedRequest, head: bool):
        if behaviour in (DEAD, HANGING):
            if behaviour == HANGING:
                self._release.wait()
            handler.close_connection = True
            return
        if self.delay:
            time.sleep(self.delay)
        if behaviour == FLAKY:
            with self._lock:
                self._flaky_count += 1
                failing = self._flaky_count % 3 == 0
            if failing:
                return self._send(handler, entry, head, 503, HTML, UNAVAILABLE_PAGE)
        if behaviour == SEIZED:
            return self._send(handler, entry, head, 200, HTML, SEIZED_PAGE)
        if behaviour == GARBAGE:
            return self._send(handler, entry, head, 200, HTML, PARKED_PAGE)
        if behaviour == FORBIDDEN:
            return self._send(handler, entry, head, 403, HTML, FORBIDDEN_PAGE)
        if behaviour == REDIRECT_OFF:
            return self._send(
                handler, entry, head, 302, HTML, REDIRECT_PAGE, Location=REDIRECT_TARGET
            )
        page = self.site.page(handler.path, self.base_url)
        self._send(handler, entry, head, page.status, page.content_type, page.body)

    def _send(
        self,
        handler: Handler,
        entry: LoggedRequest,
        head: bool,
        status: int,
        content_type: str,
        body: bytes,
        **headers: str,
    ) -> None:
        compressible = content_type.split(";")[0] in GZIP_TYPES and len(body) >= GZIP_MIN_LENGTH
        compress = (compressible and status in GZIP_STATUSES
                    and accepts_gzip(handler.headers.get("Accept-Encoding")))
        representation = self._representation(body)
        if compressible:
            headers["Vary"] = "Accept-Encoding"
        if status == 200:
            # a compressed body is another byte sequence: nginx weakens the tag likewise
            headers["ETag"] = f"W/{representation.etag}" if compress else representation.etag
            headers["Last-Modified"] = formatdate(self.last_modified, usegmt=True)
            if not_modified(handler.headers, representation.etag, self.last_modified):
                status, body, compress = 304, b"", False
        if compress:
            body = representation.gzipped()
            headers["Content-Encoding"] = "gzip"
        # logged before the bytes go out: a client that has its answer finds it in the log
        entry.status, entry.finished = status, time.monotonic()
        handler.send_response(status)
        if status != 304:
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _representation(self, body: bytes) -> Representation:
        # the site hands out the same bytes objects again: their hash is computed once
        with self._lock:
            representation = self._representations.get(body)
            if representation is None:
                representation = self._representations[body] = Representation(body)
            return representation
