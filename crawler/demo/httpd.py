"""The HTTP under a demo mirror: a listener on the socket the mirror bound, one thread per
connection, and what nginx serving static files does that the mirror does too: gzip where
the request allows it, validators, 304 Not Modified."""

from __future__ import annotations

import gzip
import hashlib
import socket
import socketserver
from collections.abc import Callable
from email.message import Message
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

#: what nginx's gzip filter compresses: these types, these statuses, bodies this long
GZIP_TYPES = ("text/html", "text/plain", "text/xml", "application/xml", "application/rss+xml")
GZIP_STATUSES = (200, 403, 404)
GZIP_MIN_LENGTH = 20
GZIP_LEVEL = 5


class Representation:
    """A body's strong validator and, once asked for, its gzipped form."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.etag = f'"{hashlib.blake2b(body, digest_size=8).hexdigest()}"'
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
        return self._gzipped


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip: ``gzip`` (or ``x-gzip``, or ``*``
    when gzip is not named) with a quality above 0."""
    qualities: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding:
            qualities[coding.lower()] = quality
    for coding in ("gzip", "x-gzip", "*"):
        if coding in qualities:
            return qualities[coding] > 0
    return False


def not_modified(request: Message, etag: str, last_modified: float) -> bool:
    """Whether the request's validators (its headers) match a representation's: its
    ``etag``, and its ``last_modified`` time (If-None-Match first, as RFC 9110 says)."""
    if_none_match = request.get("If-None-Match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = request.get("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError):
        return False
    return last_modified <= since


class Handler(BaseHTTPRequestHandler):
    """One connection's requests, each answered by the listener's ``answer_request``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    server_version = "nginx"
    sys_version = ""
    server: Listener

    def setup(self) -> None:
        super().setup()
        self.server.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.connection_closed(self.connection)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.answer_request(self, False)

    def do_HEAD(self) -> None:  # noqa: N802
        self.server.answer_request(self, True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the mirror keeps its own log


class Listener(socketserver.ThreadingMixIn, HTTPServer):
    """An HTTP server around an already-bound socket, one thread per connection, handing
    each request to ``answer_request`` (with whether it is a HEAD request) and telling
    ``connection_opened`` and ``connection_closed`` of each connection."""

    daemon_threads = True
    block_on_close = False  # a hanging request must not hold up the mirror's stop()
    request_queue_size = 128

    def __init__(
        self,
        sock: socket.socket,
        host: str,
        port: int,
        answer_request: Callable[[Handler, bool], None],
        connection_opened: Callable[[socket.socket], None],
        connection_closed: Callable[[socket.socket], None],
    ) -> None:
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.server_name, self.server_port = host, port
        self.answer_request = answer_request
        self.connection_opened = connection_opened
        self.connection_closed = connection_closed
        self.server_activate()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients hang up mid-answer all the time (timeouts, failover); that is not news
        pass
