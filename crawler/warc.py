"""Raw article pages as WARC (``WARC_DIR``; off by default).

Each stored article's response is written as a WARC ``response`` record holding what the
mirror sent (status line, headers, and the body as sent: still gzip-compressed when the
server compressed it), with the ``request`` record that asked for it (``WARC-Concurrent-To``
links them), to rotating ``.warc.gz`` files of one gzip member per record, each file opening
with a ``warcinfo`` record.

Two components and one rule, so that only what is stored is written and memory stays
bounded:

- :class:`RawResponseMiddleware` (downloader, 595: between ``RedirectMiddleware`` (600) and
  ``HttpCompressionMiddleware`` (590)) keeps an article's final answer before it is
  decompressed, as a :class:`RawResponse`, in :class:`WarcWriter` under its request object.
  Nothing goes into ``Request.meta``: meta follows a request to other mirrors and into Redis.
- :class:`WarcPipeline` (700: after extraction, before the store) takes the item's capture
  and has it written, then sets ``warc_file`` and ``warc_record_id`` on the item. A page
  judged a failure, failed over, or giving no article text is never written. The record is
  written before the article is stored: every stored article has its record, and a store
  that then fails leaves a record the store lacks, never the reverse.
- A capture is held only while its request is alive and not ended: it is dropped when taken,
  when the ledger ends the request (``signals.request_finished``), or with the request (weak
  keys). So at most the raw bodies of the article pages in flight are held (each at most
  ``DOWNLOAD_MAXSIZE``).

Files are written by one thread, named ``<WARC_PREFIX>-<worker>-<UTC time>-<serial>.warc.gz``
(unique per process) and written as ``<name>.open``, renamed once closed: at
``WARC_MAX_SIZE``, once ``WARC_MAX_AGE`` old (a timer closes an idle one) and when the crawl
stops (SIGTERM included). Each record pair is flushed to the operating system as it is
written, so a killed process leaves an ``.open`` file whose records all read back but for the
one being written.

What Scrapy keeps of the answer is what is recorded: the body byte for byte; the headers
with names as Scrapy spells them, and without the connection-level ones the HTTP client
consumes (``Transfer-Encoding``, ``Connection``, ``Keep-Alive``: the body is already
de-chunked); warcio percent-encodes a header value that is not ASCII. The request record
holds the headers Scrapy sent and the ``Host`` the HTTP client adds.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from io import BytesIO
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from scrapy import signals as scrapy_signals
from scrapy.exceptions import NotConfigured
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

from crawler.core import signals

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

WARC_VERSION = "WARC/1.1"
CONFORMS_TO = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
SUFFIX = ".warc.gz"
OPEN_SUFFIX = ".open"


@dataclass(frozen=True)
class RawResponse:
    """An answer as it came off the wire (what Scrapy keeps of it), and its request."""

    url: str
    method: str
    request_headers: list[tuple[str, str]]
    protocol: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    fetched_at: datetime
    ip_address: str | None


def header_list(headers: Any) -> list[tuple[str, str]]:
    """Scrapy's headers as (name, value) pairs, every value of a repeated header kept.
    Latin-1 maps each byte to one character, so the bytes come back unchanged."""
    return [(name.decode("latin-1"), value.decode("latin-1"))
            for name, values in headers.items() for value in values]


def capture(request: Request, response: Response, now: datetime) -> RawResponse:
    request_headers = header_list(request.headers)
    if not any(name.lower() == "host" for name, _ in request_headers):
        # the HTTP client adds it: host[:port] as in the URL
        request_headers.insert(0, ("Host", urlsplit(response.url).netloc))
    return RawResponse(
        url=response.url,
        method=request.method,
        request_headers=request_headers,
        protocol=response.protocol or "HTTP/1.1",
        status=response.status,
        headers=header_list(response.headers),
        body=response.body,
        fetched_at=now,
        ip_address=str(response.ip_address) if response.ip_address is not None else None,
    )


def request_target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:  # a status with no standard phrase
        return str(status)


def file_name(prefix: str, worker: str, opened: datetime, serial: int) -> str:
    """``<prefix>-<worker>-<UTC time to the millisecond>-<serial>.warc.gz``; the worker's
    name is kept to characters safe in any file system."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", worker).strip("._-") or "worker"
    stamp = opened.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")[:17]
    return f"{prefix}-{safe}-{stamp}-{serial:05d}{SUFFIX}"


def seconds_or_none(value: Any) -> float | None:
    """A setting in seconds that may be off (None, also as given with -s)."""
    return None if value is None or str(value).strip() in ("", "None") else float(value)


def software() -> str:
    import scrapy
    import warcio

    try:
        ours = version("news-crawler")
    except PackageNotFoundError:
        ours = "unknown"
    warcio_version = getattr(warcio, "__version__", None) or version("warcio")
    return f"news-crawler/{ours} (Scrapy {scrapy.__version__}, warcio {warcio_version})"


class WarcWrite(NamedTuple):
    """One article's records written: the file's name (relative to the directory, as it is
    once closed), the response record's id, and the bytes both records took (compressed)."""

    file: str
    record_id: str
    size: int


class WarcWriter:
    """Writes record pairs to rotating WARC files in ``WARC_DIR``, owning their names.

    :meth:`write` and :meth:`close` are called from one thread at a time (the pipeline's
    writer thread, then the crawl's end); the captures are kept on the event loop's side.
    """

    def __init__(self, directory: Path, worker: str, *, max_size: int,
                 max_age: float | None = None, prefix: str = "crawler",
                 info: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.worker = worker
        self.max_size = max_size
        self.max_age = max_age
        self._opened_at = 0.0
        self.prefix = prefix
        self.info = dict(info or {})
        self.serial = 0
        self.records = 0
        self._captures: WeakKeyDictionary[Any, RawResponse] = WeakKeyDictionary()
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._warc: WARCWriter | None = None
        self._name: str | None = None
        #: the names of the files closed so far, in order
        self.closed: list[str] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler, worker_id: str) -> WarcWriter:
        settings = crawler.settings
        directory = settings.get("WARC_DIR")
        if not directory:
            raise NotConfigured("WARC_DIR is not set")
        info = {
            "hostname": socket.gethostname(),
            "http-header-user-agent": settings.get("USER_AGENT"),
            "robots": "obey" if settings.getbool("ROBOTSTXT_OBEY") else "ignore",
            **{str(k): str(v) for k, v in settings.getdict("WARC_INFO").items()},
        }
        writer = cls(Path(directory), worker_id,
                     max_size=settings.getint("WARC_MAX_SIZE"),
                     max_age=seconds_or_none(settings.get("WARC_MAX_AGE")),
                     prefix=settings.get("WARC_PREFIX"), info=info)
        writer.directory.mkdir(parents=True, exist_ok=True)
        # a request that ended some other way leaves no record: its capture goes now
        crawler.signals.connect(writer.forget, signal=signals.request_finished, weak=False)
        crawler.signals.connect(writer.close, signal=scrapy_signals.engine_stopped, weak=False)
        return writer

    # -- captures (event loop) --------------------------------------------------------------------

    def keep(self, request: Request, raw: RawResponse) -> None:
        self._captures[request] = raw

    def take(self, request: Request) -> RawResponse | None:
        return self._captures.pop(request, None) if request is not None else None

    def forget(self, request: Request, **_: Any) -> None:
        self._captures.pop(request, None)

    @property
    def held(self) -> int:
        """Captures waiting for their article (a gauge for tests and metrics)."""
        return len(self._captures)

    # -- files (writer thread) --------------------------------------------------------------------

    @property
    def current(self) -> str | None:
        """The name of the file being written (it is ``<name>.open`` until closed)."""
        return self._name

    def write(self, raw: RawResponse) -> WarcWrite:
        """Write the response record and its request record: where they went, and how many
        bytes of file they took."""
        with self._lock:
            if self._warc is not None and self._too_old():
                self._close_file()
            if self._warc is None:
                self._open()
            warc, name = self._warc, self._name
            response, request = self._records(warc, raw)
            start = self._file.tell()
            warc.write_request_response_pair(request, response)
            self._file.flush()  # a killed process loses at most the record being written
            size = self._file.tell() - start
            self.records += 1
            if self._file.tell() >= self.max_size:
                self._close_file()
        return WarcWrite(name, response.rec_headers.get_header("WARC-Record-ID"), size)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._close_file()

    def close_if_old(self) -> None:
        """Close the file once it is ``max_age`` old, also while nothing is written to it, so
        that a quiet worker's records do not stay in an ``.open`` file."""
        with self._lock:
            if self._file is not None and self._too_old():
                self._close_file()

    def _too_old(self) -> bool:
        return self.max_age is not None and time.monotonic() - self._opened_at >= self.max_age

    def _records(self, warc: WARCWriter, raw: RawResponse):
        date = datetime_to_iso_date(raw.fetched_at.astimezone(UTC).replace(tzinfo=None),
                                    use_micros=True)
        fields = {"WARC-Date": date}
        if raw.ip_address:
            fields["WARC-IP-Address"] = raw.ip_address
        response = warc.create_warc_record(
            raw.url, "response", payload=BytesIO(raw.body), length=len(raw.body),
            http_headers=StatusAndHeaders(status_line(raw.status), raw.headers,
                                          protocol=raw.protocol),
            warc_headers_dict=fields,
        )
        request = warc.create_warc_record(
            raw.url, "request",
            http_headers=StatusAndHeaders(
                f"{raw.method} {request_target(raw.url)} {raw.protocol}", raw.request_headers,
                is_http_request=True),
            warc_headers_dict=dict(fields),
        )
        return response, request

    def _open(self) -> None:
        while True:
            name = file_name(self.prefix, self.worker, datetime.now(UTC), self.serial)
            self.serial += 1
            final = self.directory / name
            if final.exists():
                continue
            try:
                # exclusive: two processes given the same WORKER_ID never share a file
                self._file = open(self.directory / (name + OPEN_SUFFIX), "xb")  # noqa: SIM115
            except FileExistsError:
                continue
            break
        self._name = name
        self._opened_at = time.monotonic()
        self._warc = WARCWriter(self._file, gzip=True, warc_version=WARC_VERSION)
        info = {"software": software(), "format": "WARC File Format 1.1",
                "conformsTo": CONFORMS_TO, **self.info}
        self._warc.write_record(self._warc.create_warcinfo_record(name, info))
        self._file.flush()

    def _close_file(self) -> None:
        name, handle = self._name, self._file
        self._file = self._warc = self._name = None
        try:
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            handle.close()
        os.replace(self.directory / (name + OPEN_SUFFIX), self.directory / name)
        self.closed.append(name)
        logger.info("WARC file closed: %s", self.directory / name)
