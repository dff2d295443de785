"""A document's identity URL: the one string that names it in the dupefilter, the stored-article
filter and the store.

Identity is w3lib's :func:`~w3lib.url.canonicalize_url` (query arguments sorted, percent-escapes
normalised: ``%c3%a9`` is ``%C3%A9``, ``%7E`` is ``~``; fragment dropped) of the URL without its
tracking parameters. Which of the other query parameters count is the caller's rule (an outlet
keeps none for its articles unless its file declares them); what is *fetched* keeps them all,
since the server may need them.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

#: query parameters that say how a reader came, never which document: never part of identity,
#: and not sent to the server either (a mirror serves the same page without them)
TRACKING_PARAMS: frozenset[str] = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
    "igshid", "igsh", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok",
    "li_fat_id", "oly_anon_id", "oly_enc_id", "vero_id", "rb_clickid", "s_cid", "wt_mc",
    "at_medium", "at_campaign", "ref_src",
})
#: and every parameter whose name starts with one of these (utm_source, utm_medium, ...)
TRACKING_PREFIXES: tuple[str, ...] = ("utm_",)


def is_tracking(name: str) -> bool:
    """Whether a query parameter (its decoded name) is a tracking parameter."""
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _query_name(pair: str) -> str:
    return unquote_plus(pair.partition("=")[0])


def _kept_query(query: str, keep: Callable[[str], bool] | None) -> str:
    return "&".join(
        pair for pair in query.split("&")
        if pair and not is_tracking(name := _query_name(pair)) and (keep is None or keep(name))
    )


def without_tracking(url: str) -> str:
    """``url`` without tracking parameters and fragment, otherwise as given: what is fetched."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=_kept_query(parts.query, None), fragment=""))


def identity_url(url: str, keep: Callable[[str], bool] | None = None) -> str:
    """The identity of the document at ``url``: canonicalized, tracking parameters dropped,
    and of the other query parameters those ``keep(name)`` accepts (None: all of them)."""
    parts = urlsplit(url)
    return canonicalize_url(urlunsplit(parts._replace(query=_kept_query(parts.query, keep),
                                                      fragment="")))
