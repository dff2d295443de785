"""Whether a host an outlet names serves the outlet: pure judgments over its answers.

A candidate mirror (:mod:`crawler.core.mirror_notices`) is asked for articles already stored
(their paths on the candidate) and a section's first page: probes whose healthy answer is
known, as a mirror check's is (:func:`crawler.core.judging.judge_check`). It is *verified* when at
least :data:`MIN_SAME_ARTICLES` of them extract to the stored version (the comparison
revisits use: :func:`crawler.core.revisions.revision_hash`) and the listing links articles under
``article_url``; otherwise *rejected*, with the reason kept.

Before anything is asked, the host must be one that may be fetched at all
(:func:`address_refusal`): a name that resolves to a private, loopback, link-local or
otherwise non-public address is never fetched unless it is declared
(``MIRROR_DISCOVERY_PRIVATE_HOSTS``), since a page could otherwise point the crawler at the
machines around it, as a redirect could (and a redirect off the outlet is refused too).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from crawler.core.revisions import revision_hash

#: states of a candidate
NEW = "new"
VERIFYING = "verifying"
VERIFIED = "verified"
REJECTED = "rejected"
ADOPTED = "adopted"
STATES = (NEW, VERIFYING, VERIFIED, REJECTED, ADOPTED)

#: stored articles a candidate must serve alike
MIN_SAME_ARTICLES = 3

#: what one article probe found
SAME = "same"
OTHER_TEXT = "other_text"
FAILED = "failed"
BLOCKED = "blocked"


@dataclass(frozen=True)
class ArticleProbe:
    path: str
    #: SAME, OTHER_TEXT, FAILED (no answer, an error status, no text) or BLOCKED
    found: str
    #: for people: "HTTP 404", "block page ('This domain has been seized')", ...
    detail: str = ""


@dataclass(frozen=True)
class ListingProbe:
    path: str
    #: article links under ``article_url`` it holds (0 when it failed)
    articles: int
    detail: str = ""


@dataclass(frozen=True)
class Judgement:
    state: str
    #: why, for ``crawler mirrors``: what matched, or what did not
    evidence: str


def compare_article(stored: Mapping[str, Any], extracted: Mapping[str, Any] | None) -> str:
    """SAME when the candidate's page extracts to the stored version (title, date and text,
    whitespace aside), OTHER_TEXT when it extracts to something else, FAILED with no text."""
    if extracted is None or not extracted.get("text"):
        return FAILED
    return SAME if revision_hash(stored) == revision_hash(extracted) else OTHER_TEXT


def judge_candidate(articles: Sequence[ArticleProbe], listing: ListingProbe | None,
                    needed: int = MIN_SAME_ARTICLES) -> Judgement:
    """Verified or rejected, on the probes' answers."""
    blocked = [a for a in articles if a.found == BLOCKED]
    if blocked:
        return Judgement(REJECTED, f"a block page for {blocked[0].path}: {blocked[0].detail}")
    same = [a for a in articles if a.found == SAME]
    other = [a for a in articles if a.found == OTHER_TEXT]
    failed = [a for a in articles if a.found == FAILED]
    tally = f"{len(same)} of {len(articles)} stored articles served alike"
    if len(same) < needed:
        if other:
            return Judgement(REJECTED, f"other text than stored for {other[0].path} ({tally})")
        if failed:
            return Judgement(REJECTED, f"{failed[0].path}: {failed[0].detail} ({tally})")
        return Judgement(REJECTED, f"too few stored articles to compare ({tally})")
    if listing is None or listing.articles <= 0:
        where = f"{listing.path}: {listing.detail or 'no article links'}" if listing else "none"
        return Judgement(REJECTED, f"{tally}, but its listing lists no articles ({where})")
    return Judgement(VERIFIED, f"{tally}; {listing.path} lists {listing.articles} articles")


def choose_articles(stored: Iterable[Mapping[str, Any]], count: int,
                    min_length: int = 0) -> list[Mapping[str, Any]]:
    """Stored articles a candidate is asked for: in rows' order, served (not removed), with
    text long enough to tell two articles apart."""
    chosen = []
    for record in stored:
        if record.get("removed_at") or len(record.get("text") or "") < max(min_length, 1):
            continue
        chosen.append(record)
        if len(chosen) >= count:
            break
    return chosen


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_refusal(base: str, resolve: Callable[[str], Collection[str]],
                    declared: Collection[str] = ()) -> str | None:
    """Why the candidate at ``base`` may not be fetched; None when it may.

    Every address its host resolves to must be public (global unicast), unless its
    ``host[:port]`` is ``declared``: a name that resolves to a private, loopback, link-local,
    shared or reserved address is never fetched on a page's word. An ``.onion`` host is not
    fetched (it needs Tor). ``resolve`` gives the host's addresses (empty: it does not
    resolve)."""
    parts = urlsplit(base)
    host = (parts.hostname or "").lower()
    if not host:
        return "no host"
    if parts.netloc.lower() in {d.lower() for d in declared}:
        return None
    if host.endswith(".onion"):
        return "an .onion address (not fetched without Tor)"
    literal = _address(host)
    addresses = [host] if literal is not None else list(resolve(host))
    if not addresses:
        return f"{host} does not resolve"
    for address in addresses:
        ip = _address(address)
        if ip is None or not ip.is_global or ip.is_multicast:
            return (f"{host} resolves to a non-public address ({address}) and is not "
                    "declared in MIRROR_DISCOVERY_PRIVATE_HOSTS")
    return None
