"""The stored article record (its fields: README.md, "What it does")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: the record fields, in export order
ARTICLE_FIELDS = (
    "canonical_url",
    "url",
    "mirror",
    "outlet",
    "section",
    "title",
    "author",
    "published",
    "language",
    "text",
    "content_hash",
    "fetched_at",
    "warc_file",
    "warc_record_id",
)
#: the page's validators (ETag, Last-Modified), stored so a revisit asks conditionally;
#: not exported
VALIDATOR_FIELDS = ("etag", "last_modified")
#: what the store keeps of an article's life: how many versions it had, when it was first
#: and last seen on a mirror, when the outlet stopped serving it
TRACKED_FIELDS = ("revision", "first_seen", "last_seen", "removed_at")
#: a stored record as read back and exported
EXPORT_FIELDS = ARTICLE_FIELDS + TRACKED_FIELDS


@dataclass
class ArticleItem:
    canonical_url: str
    url: str
    mirror: str
    outlet: str
    section: str | None
    title: str | None = None
    author: str | None = None
    published: str | None = None
    language: str | None = None
    text: str | None = None
    content_hash: str | None = None
    fetched_at: str | None = None
    #: with WARC_DIR: the WARC file holding the page as sent (its name, under WARC_DIR), and
    #: its response record's WARC-Record-ID (crawler/warc.py)
    warc_file: str | None = None
    warc_record_id: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    #: title and published from the feed that listed it: used when the page has none
    hints: dict[str, str] = field(default_factory=dict, repr=False)
    #: the fetched page, for extraction; never stored
    body: bytes = field(default=b"", repr=False)
    encoding: str = field(default="utf-8", repr=False)
    #: the page's Onion-Location header: a mirror the outlet names
    #: (crawler.extensions.mirror_discovery)
    onion_location: str | None = field(default=None, repr=False)
    #: whether its mirror was in rotation when the page arrived: only such a page's word on
    #: other mirrors is heard (a mirror may leave rotation while the page is extracted)
    in_rotation: bool = field(default=False, repr=False)
    #: the request that fetched it, so later stages can fail over or acknowledge it
    request: Any = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The fields the store writes."""
        return {name: getattr(self, name) for name in ARTICLE_FIELDS + VALIDATOR_FIELDS}


assert {f.name for f in dataclasses.fields(ArticleItem)} >= set(ARTICLE_FIELDS + VALIDATOR_FIELDS)


@dataclass
class FinishedRequest:
    """Not an article: the spider yields it after everything a listing produced, so that the
    request is reported finished (``signals.request_finished``) only once its follow-up
    requests have been scheduled ahead of it."""

    request: Any
    outcome: str = "listing_handled"
