"""What one answer of a mirror says, and about whom: the mirror, or the document.

Pure functions over a response and its outlet; :mod:`crawler.failover` acts on their verdicts.

- Evidence about the **mirror**: it cannot serve now (a connection error, a timeout, a status
  in ``MIRROR_FAILOVER_HTTP_CODES``), or it serves something other than the outlet (a redirect
  off the outlet, a page carrying one of the outlet's ``blocked_markers``, the same page for
  different documents). Strong evidence takes the mirror out of rotation at once; weak
  evidence counts toward ``MIRROR_FAILURE_THRESHOLD``.
- Evidence about the **document**: 404/410, not HTML, no article text, text shorter than the
  outlet's ``min_text_length``, a section page listing no articles. The document is asked of
  another mirror; when two mirrors give the same answer, that answer is the document's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    ResponseDataLossError,
)
from scrapy.http import HtmlResponse, TextResponse
from twisted.internet import error as net_error

from crawler.redact import redact_url

if TYPE_CHECKING:
    from scrapy.http import Response

    from crawler.outlets import Outlet

MIRROR = "mirror"
DOCUMENT = "document"

#: document answers that are not text (a text answer is "text:<hash>")
NOT_FOUND = "not_found"
NOT_HTML = "not_html"
NO_TEXT = "no_text"
NO_ARTICLES = "no_articles"
TEXT_PREFIX = "text:"


@dataclass(frozen=True)
class Verdict:
    #: MIRROR or DOCUMENT
    about: str
    #: for people: logs, failure reasons in the shared mirror health
    reason: str
    #: the download outcome counted in ``crawler_requests_total``
    outcome: str
    #: mirror evidence: take the mirror out of rotation at once
    strong: bool = False
    #: document evidence: the answer, comparable across mirrors
    answer: str | None = None


def mirror_failure(reason: str, outcome: str, strong: bool = False) -> Verdict:
    return Verdict(MIRROR, reason, outcome, strong=strong)


def document_answer(answer: str, reason: str, outcome: str = "ok") -> Verdict:
    return Verdict(DOCUMENT, reason, outcome, answer=answer)


# -- downloads that failed -----------------------------------------------------------------------

TIMEOUT_ERRORS = (DownloadTimeoutError, net_error.TimeoutError, TimeoutError)
CONNECTION_ERRORS = (
    DownloadConnectionRefusedError,
    CannotResolveHostError,
    DownloadFailedError,
    ResponseDataLossError,
    net_error.ConnectError,
    net_error.ConnectionLost,
    net_error.ConnectionDone,
    OSError,
)


def judge_exception(exception: BaseException) -> Verdict | None:
    """A download error that says the mirror cannot serve now; None for anything else."""
    reason = f"{type(exception).__name__}: {exception}".strip().rstrip(":")
    if isinstance(exception, TIMEOUT_ERRORS):
        return mirror_failure(reason, "timeout")
    if isinstance(exception, CONNECTION_ERRORS):
        return mirror_failure(reason, "connection_error")
    return None


# -- the raw answer: status and redirects (before Scrapy follows or decodes them) ---------------


def judge_status(status: int, failover_codes: frozenset[int]) -> Verdict | None:
    if status in failover_codes:
        return mirror_failure(f"HTTP {status}", "http_error")
    if status in (404, 410):
        return document_answer(NOT_FOUND, f"HTTP {status}", "http_error")
    return None


def judge_redirect(url: str, status: int, location: bytes | None, outlet: Outlet,
                   article: bool = False) -> Verdict | None:
    """A redirect off the outlet's mirrors and aliases: the mirror serves something else.
    An article redirected to the home page or a section: the outlet took it down."""
    if not 300 <= status < 400 or not location:
        return None
    target = urljoin(url, location.decode("latin-1").strip())
    if outlet.owns(target):
        if article and outlet.is_landing_page(target):
            return document_answer(NOT_FOUND, f"redirected to {urlsplit(target).path or '/'}",
                                   "http_error")
        return None
    # the target comes from the web: it may carry a user and password
    return mirror_failure(f"redirect off the outlet to {redact_url(target)}", "blocked")


# -- the decoded page ----------------------------------------------------------------------------


def judge_page(response: Response, outlet: Outlet, html: bool = True) -> Verdict | None:
    """A 2xx page after decompression: a block page (mirror), or not HTML (document) where
    ``html`` is expected (a feed or a sitemap is XML, and read by its own parser)."""
    if not 200 <= response.status < 300:
        return None
    if isinstance(response, TextResponse) and outlet.blocked_markers:
        # the markers in the page's encoding: no need to decode a whole page to look
        body, encoding = response.body, response.encoding
        for marker in outlet.blocked_markers:
            if marker.encode(encoding, "ignore") in body:
                return mirror_failure(f"block page ({marker!r})", "blocked", strong=True)
    if html and not isinstance(response, HtmlResponse):
        kind = response.headers.get(b"Content-Type", b"").decode("latin-1") or "no type"
        return document_answer(NOT_HTML, f"not HTML ({kind})")
    return None


def judge_text(text: str | None, outlet: Outlet) -> Verdict | None:
    """Extracted article text: none, or too short to be taken on one mirror's word."""
    if not text:
        return document_answer(NO_TEXT, "no article text")
    if len(text) < outlet.min_text_length:
        return document_answer(text_answer(text), f"text of {len(text)} characters only")
    return None


def text_answer(text: str) -> str:
    return TEXT_PREFIX + hashlib.sha1(" ".join(text.split()).encode()).hexdigest()


# -- one page for every document -----------------------------------------------------------------

# tokens that change from one answer to the next on the same notice: numbers, request ids,
# challenge tokens
_VOLATILE = re.compile(rb"[0-9A-Fa-f]{8,}|\d+|[A-Za-z0-9_-]{24,}")


def page_fingerprint(body: bytes, path: str) -> str:
    """What stays the same when a mirror answers every path with one page (a seizure notice,
    a bot check, a parked domain's advertising): the body without the path it was asked
    for and without the tokens that vary between answers."""
    if path and path != "/":
        body = body.replace(path.encode("utf-8", "replace"), b"")
    return hashlib.sha1(_VOLATILE.sub(b"", body)).hexdigest()


class SamePageDetector:
    """Remembers, per mirror, which documents got which suspect page; a page (or redirect
    target) seen for ``documents`` different documents is the mirror's answer to everything.

    Only pages that already failed a document check are fed here: a healthy site's own
    pages differ, and a real article served under two paths must not count.
    """

    def __init__(self, documents: int = 2, memory: int = 64) -> None:
        self.documents = documents
        self.memory = memory
        # (outlet, mirror) -> fingerprint -> documents seen with it
        self._seen: dict[tuple[str, str], dict[str, set[str]]] = {}

    def same_for_every_document(self, outlet: str, mirror: str, document: str,
                                fingerprint: str) -> bool:
        pages = self._seen.setdefault((outlet, mirror), {})
        documents = pages.get(fingerprint)
        if documents is None:
            if len(pages) >= self.memory:
                del pages[next(iter(pages))]  # the oldest
            documents = pages[fingerprint] = set()
        if len(documents) < self.documents:
            documents.add(document)
        return len(documents) >= self.documents
