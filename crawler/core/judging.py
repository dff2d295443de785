"""What one answer of a mirror says, and about whom: the mirror, or the document.

Pure functions over a response and its outlet; :mod:`crawler.failover` acts on their verdicts.

- Evidence about the **mirror**: it cannot serve now (a connection error, a timeout, a status
  in ``MIRROR_FAILOVER_HTTP_CODES``), or it serves something other than the outlet (a redirect
  off the outlet, a page carrying one of the outlet's ``blocked_markers`` or an anti-bot
  service's challenge, the same page for different documents). Strong evidence takes the
  mirror out of rotation at once; weak evidence counts toward ``MIRROR_FAILURE_THRESHOLD``.
- Evidence about the **document**: 404/410, not HTML, no article text, text shorter than the
  outlet's ``min_text_length``, a section page listing no articles. The document is asked of
  another mirror; when two mirrors give the same answer, that answer is the document's.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    ResponseDataLossError,
)
from scrapy.http import HtmlResponse, TextResponse
from scrapy.utils.response import get_meta_refresh
from twisted.internet import error as net_error

from crawler.core.bot_checks import bot_check
from crawler.core.compression import incomplete_body
from crawler.core.links import page_links, page_tree
from crawler.core.redact import redact_url

if TYPE_CHECKING:
    from scrapy.http import Response

    from crawler.core.outlets import Outlet

MIRROR = "mirror"
DOCUMENT = "document"

#: why a mirror is out of rotation: it served something other than the outlet (strong
#: evidence: a block page, one page for every document), or it could not serve
CONTENT = "content"
SERVICE = "service"

#: document answers that are not text (a text answer is "text:<hash>")
NOT_FOUND = "not_found"
NOT_HTML = "not_html"
NO_TEXT = "no_text"
NO_ARTICLES = "no_articles"
#: redirects that go round in circles (past REDIRECT_MAX_TIMES)
REDIRECT_LOOP = "redirect_loop"
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
    #: mirror evidence the outlet file declared (a ``blocked_markers`` text): no guess
    declared: bool = False
    #: mirror evidence that it could not answer *now* (a timeout, a lost connection, a 5xx,
    #: 408 or 429, a body cut short): asked later, it may serve the document. Not so a
    #: redirect off the outlet, a block page, a 403 or a 451: those are its answer
    passing: bool = False


def mirror_failure(reason: str, outcome: str, strong: bool = False,
                   passing: bool = False) -> Verdict:
    return Verdict(MIRROR, reason, outcome, strong=strong, passing=passing)


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
        return mirror_failure(reason, "timeout", passing=True)
    if isinstance(exception, CONNECTION_ERRORS):
        return mirror_failure(reason, "connection_error", passing=True)
    return None


# -- the raw answer: status and redirects (before Scrapy follows or decodes them) ---------------


#: statuses whose Retry-After says when the mirror may be asked again (RFC 9110, 10.2.3)
RETRY_AFTER_STATUSES = frozenset({429, 503})


def retry_after_seconds(status: int, value: bytes | str | None, now: float,
                        maximum: float) -> float | None:
    """Seconds a mirror asked not to be asked for, from a 429 or 503 answer's Retry-After
    (delay-seconds, or an HTTP-date against ``now``, Unix time), at most ``maximum``: a
    longer one is cut to it, so that a header never keeps a mirror silent for long. None
    when there is none to honour (another status, no header, one that does not parse, or
    no time ahead): the answer is then judged as any other of its status."""
    if status not in RETRY_AFTER_STATUSES or not value:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            date = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if date.tzinfo is None:  # "-0000": HTTP-dates are in GMT all the same
            date = date.replace(tzinfo=UTC)
        seconds = date.timestamp() - now
    return min(seconds, maximum) if seconds > 0 else None


def judge_status(status: int, failover_codes: frozenset[int]) -> Verdict | None:
    if status in failover_codes:
        return mirror_failure(f"HTTP {status}", "http_error",
                              passing=status >= 500 or status in (408, 429))
    if status in (404, 410):
        return document_answer(NOT_FOUND, f"HTTP {status}", "http_error")
    return None


def judge_redirect(url: str, status: int, location: bytes | None, outlet: Outlet,
                   article: bool = False) -> Verdict | None:
    """A redirect off the outlet's mirrors and aliases: the mirror serves something else.
    An article redirected to the home page or a section: the outlet took it down."""
    if not 300 <= status < 400 or not location:
        return None
    return judge_redirect_target(url, location.decode("latin-1"), outlet, article)


def judge_redirect_target(url: str, location: str, outlet: Outlet,
                          article: bool = False) -> Verdict | None:
    target = urljoin(url, location.strip())
    if outlet.owns(target):
        if article and outlet.is_landing_page(target):
            return document_answer(NOT_FOUND, f"redirected to {urlsplit(target).path or '/'}",
                                   "http_error")
        return None
    # the target comes from the web: it may carry a user and password
    return mirror_failure(f"redirect off the outlet to {redact_url(target)}", "blocked")


def judge_body(status: int, body: bytes, content_encoding: list[bytes]) -> Verdict | None:
    """A 2xx body as sent, before it is decompressed: one whose compressed stream does not
    end was cut short on its way (Scrapy would decode the part that came, and the page's
    first lines would pass for the document), as a body shorter than its Content-Length is
    (``ResponseDataLossError``): another mirror may serve it whole."""
    if not 200 <= status < 300:
        return None
    reason = incomplete_body(body, content_encoding)
    return None if reason is None else mirror_failure(reason, "connection_error", passing=True)


# -- the decoded page ----------------------------------------------------------------------------


def judge_page(response: Response, outlet: Outlet, html: bool = True) -> Verdict | None:
    """A 2xx page after decompression: a block page (mirror: one with the outlet's
    ``blocked_markers``, or an anti-bot service's challenge, :func:`bot_check`), or not HTML
    (document) where ``html`` is expected (a feed or a sitemap is XML, and read by its own
    parser)."""
    if not 200 <= response.status < 300:
        return None
    if isinstance(response, TextResponse) and outlet.blocked_markers:
        # the markers in the page's encoding: no need to decode a whole page to look
        body, encoding = response.body, response.encoding
        for marker in outlet.blocked_markers:
            if marker.encode(encoding, "ignore") in body:
                return Verdict(MIRROR, f"block page ({marker!r})", "blocked", strong=True,
                               declared=True)
    if isinstance(response, HtmlResponse):
        service = bot_check(response.body)
        if service is not None:
            return Verdict(MIRROR, f"a bot check ({service})", "blocked", strong=True)
    if html and not isinstance(response, HtmlResponse):
        kind = response.headers.get(b"Content-Type", b"").decode("latin-1") or "no type"
        return document_answer(NOT_HTML, f"not HTML ({kind})")
    return None


def may_probe(evidence: str | None, known_good: bool) -> bool:
    """Whether a request may probe a mirror out of rotation for ``evidence``.

    Any answer tells whether a mirror that could not serve serves again. Whether a mirror
    that served something else serves the outlet again, only a document whose healthy answer
    is known can tell (a listing that listed articles): a document that fails on every
    mirror would fail the same way there, and keep a healthy mirror out for good.
    """
    return evidence != CONTENT or known_good


def judge_check(verdict: Verdict | None, articles_listed: int) -> bool:
    """Whether a mirror check (a known-good listing asked of a mirror out of rotation) found
    the mirror serving the outlet: its answer passed the page checks and lists articles."""
    return verdict is None and articles_listed > 0


def judge_refresh(response: Response, outlet: Outlet, article: bool,
                  ignore_tags: list[str], max_delay: float) -> Verdict | None:
    """A meta refresh that Scrapy's ``MetaRefreshMiddleware`` would follow, judged as the
    redirect it is, before it is followed (a refresh to one page for every document would
    otherwise meet the dupefilter, and the documents end nowhere). ``ignore_tags`` and
    ``max_delay`` are that middleware's settings, so the parse it caches is the one it uses."""
    if not isinstance(response, HtmlResponse) or not 200 <= response.status < 300:
        return None
    delay, target = get_meta_refresh(response, ignore_tags)
    if target is None or delay >= max_delay:
        return None
    return judge_redirect_target(response.url, target, outlet, article)


def judge_text(text: str | None, outlet: Outlet,
               error_page: str | None = None) -> Verdict | None:
    """Extracted article text: none, an error page's (its ``error_page`` heading: no article
    either), or too short to be taken on one mirror's word."""
    if not text:
        return document_answer(NO_TEXT, "no article text")
    if error_page:
        return document_answer(NO_TEXT, f"an error page ({error_page!r}), no article text")
    if len(text) < outlet.min_text_length:
        return document_answer(text_answer(text), f"text of {len(text)} characters only")
    return None


def text_answer(text: str) -> str:
    return TEXT_PREFIX + hashlib.sha1(" ".join(text.split()).encode()).hexdigest()


# -- one page for every document -----------------------------------------------------------------

# What varies between two answers of one notice, and never tells two articles apart:
# - long hex runs (request ids, hashes) and long letter-digit tokens (challenge tokens, base64):
#   words of an article are neither;
# - digit runs of five or more, with a decimal tail (timestamps, ray ids, counters): the
#   numbers that tell two articles apart in their text (prices, scores, years, dates) are
#   shorter, and they are kept;
# - clock times (a notice stamped with the time it was served).
_VOLATILE = re.compile(
    rb"[0-9A-Fa-f]{16,}|(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{20,}|\d{5,}(?:[.,]\d+)?"
    rb"|\b\d{1,2}:\d{2}(?::\d{2})?\b"
)


def page_fingerprint(body: bytes, path: str) -> str:
    """What stays the same when a mirror answers every path with one page (a seizure notice,
    a bot check, a parked domain's advertising): the page without the path it was asked for
    (as sent, percent-decoded and HTML-escaped: a notice may echo it) and without the tokens
    that vary between answers (:data:`_VOLATILE`). Everything else, the text included, is
    kept: two different pages never share a fingerprint."""
    if path and path != "/":
        for form in {path, unquote(path), html.escape(unquote(path))}:
            body = body.replace(form.encode("utf-8", "replace"), b"")
    return hashlib.sha1(_VOLATILE.sub(b"", body)).hexdigest()


def links_into_outlet(body: bytes, url: str, outlet: Outlet) -> bool:
    """Whether a page links to one of the outlet's articles or sections (on any mirror or
    alias): the outlet's own pages do, a notice served in its place does not (its links go
    elsewhere, or to the host's root with a challenge token)."""
    tree = page_tree(body)
    if tree is None:
        return False
    own = urlsplit(url).path
    for link in page_links(tree, url):
        if not outlet.owns(link.url):
            continue
        path = urlsplit(link.url).path
        if path != own and (outlet.article_pattern.search(path)
                            or (path.strip("/") and outlet.is_landing_page(link.url))):
            return True
    return False


class SamePageDetector:
    """Remembers, per mirror, which documents got which suspect page; a page seen for
    ``documents`` different documents is the mirror's answer to everything.

    Suspect pages are those that failed a document check (no text, too short, no articles,
    not readable) and carry no link into the outlet: an outlet's own short page (a brief, its
    "not found" page) links to its articles and sections; a real article served under two
    paths passes the checks. A page that passed may still :meth:`join` a suspect already
    seen (a notice long enough to pass for an article), never start one. A page that two
    mirrors agreed on is the outlet's own answer: :meth:`acquit` forgets it for good.
    """

    def __init__(self, documents: int = 2, memory: int = 64) -> None:
        self.documents = documents
        self.memory = memory
        # (outlet, mirror) -> fingerprint -> documents seen with it
        self._seen: dict[tuple[str, str], dict[str, set[str]]] = {}
        # outlet -> fingerprints two mirrors agreed on
        self._acquitted: dict[str, set[str]] = {}

    def suspect(self, outlet: str, mirror: str, document: str, fingerprint: str) -> bool:
        """A page that failed a check: whether the mirror served it for other documents too."""
        if fingerprint in self._acquitted.get(outlet, ()):
            return False
        pages = self._seen.setdefault((outlet, mirror), {})
        documents = pages.get(fingerprint)
        if documents is None:
            if len(pages) >= self.memory:
                del pages[next(iter(pages))]  # the oldest
            documents = pages[fingerprint] = set()
        return self._add(documents, document)

    def join(self, outlet: str, mirror: str, document: str, fingerprint: str) -> bool:
        """A page that passed the checks: whether it is a suspect page served again."""
        documents = self._seen.get((outlet, mirror), {}).get(fingerprint)
        return documents is not None and self._add(documents, document)

    def acquitted(self, outlet: str, fingerprint: str) -> bool:
        return fingerprint in self._acquitted.get(outlet, ())

    def has_suspects(self, outlet: str, mirror: str) -> bool:
        """Whether :meth:`join` can say yes (the hot path asks this first)."""
        return bool(self._seen.get((outlet, mirror)))

    def acquit(self, outlet: str, document: str) -> None:
        """Two mirrors agreed on the document's answer: its page is the outlet's own."""
        acquitted = self._acquitted.setdefault(outlet, set())
        for (name, _), pages in self._seen.items():
            if name != outlet:
                continue
            for fingerprint in [f for f, documents in pages.items() if document in documents]:
                acquitted.add(fingerprint)
                del pages[fingerprint]
        if len(acquitted) > self.memory:
            acquitted.pop()

    def _add(self, documents: set[str], document: str) -> bool:
        if len(documents) < self.documents:
            documents.add(document)
        return len(documents) >= self.documents
