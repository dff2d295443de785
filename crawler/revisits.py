"""Fetching stored articles again: which are due, and what their revisits found.

An article published (or first seen) within its outlet's ``revisit.window`` is fetched again
at most every ``revisit.interval`` and, as it ages, once it has gone unchecked
``revisit.backoff`` times its age at the last check (edits come early: a 6 h interval over
3 days is 12 revisits, with a backoff of 1 about 4), asking conditionally with the validators
of its last answer. What a revisit finds:

- a new version (title, date or text changed): the store pipeline stores a revision;
- the same version, or HTTP 304: the article was seen (``last_seen``);
- gone: every mirror in rotation answered 404/410 or redirected to the home page or a
  section (the failover's agreement, outcome ``not_found``): the article is marked removed,
  and revisited until ``revisit.removal_checks`` revisits agreed; one that comes back is
  no longer removed.

Standalone, ``crawler crawl --revisit`` adds the due articles to the crawl; in distributed
mode the beat queues them (:mod:`crawler.distributed.revisits`), below new articles.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from crawler.core.discovery import conditional_headers

if TYPE_CHECKING:

    from crawler.core.outlets import Outlet
    from crawler.storage import Store

logger = logging.getLogger(__name__)

#: revisits after everything else: new articles first, then the listings that lead to them
REVISIT_PRIORITY = -1


def revisit_cutoffs(outlet: Outlet, now: datetime) -> tuple[str, str]:
    """(published after, last checked before) for the outlet's due articles, ISO 8601 UTC."""
    published_after = now - timedelta(seconds=outlet.revisit.window_seconds)
    checked_before = now - timedelta(seconds=outlet.revisit.interval_seconds)
    return published_after.isoformat(timespec="seconds"), checked_before.isoformat(
        timespec="seconds")


def due_revisits(store: Store, outlet: Outlet, limit: int,
                 now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    published_after, checked_before = revisit_cutoffs(outlet, now)
    return store.due_for_revisit(
        outlet.name, published_after=published_after, checked_before=checked_before,
        removal_checks=outlet.revisit.removal_checks, limit=limit,
        now=now.isoformat(timespec="seconds"), backoff=outlet.revisit.backoff)


def revisit_headers(due: dict[str, Any]) -> dict[str, str]:
    """Ask for the page only if it changed since the stored version was fetched."""
    return conditional_headers({"ETag": due.get("etag"),
                                "Last-Modified": due.get("last_modified")})
