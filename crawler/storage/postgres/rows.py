"""How articles go into the PostgreSQL store and come back: a batch as the arrays of one
upsert statement, and stored rows as records with ISO 8601 times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crawler.core.revisions import moment, revision_hash
from crawler.items import ARTICLE_FIELDS, EXPORT_FIELDS, VALIDATOR_FIELDS
from crawler.storage import StoreError

_TIMESTAMP_FIELDS = frozenset({"published", "fetched_at", "first_seen", "last_seen",
                               "removed_at"})
_REQUIRED_FIELDS = ("canonical_url", "url", "mirror", "outlet")
#: what a write sends: the record and its revision hash
_WRITTEN = ARTICLE_FIELDS + VALIDATOR_FIELDS + ("revision_hash",)
EXPORT_COLUMNS = ", ".join(EXPORT_FIELDS)

# Arrays go in binary (%b): the server then neither unescapes nor parses a batch's text
# (about 3x faster than text arrays for 100 articles of a few KB each; see benchmarks/).
_UNNEST_ARGS = ", ".join(
    "%b::timestamptz[]" if name in _TIMESTAMP_FIELDS else "%b::text[]" for name in _WRITTEN
)
# A new version: its title, date or text changed (rows stored before there were revision
# hashes compare by content hash).
_CHANGED = """(CASE WHEN a.revision_hash IS NULL
    THEN a.content_hash IS DISTINCT FROM excluded.content_hash
    ELSE a.revision_hash IS DISTINCT FROM excluded.revision_hash END)"""
# outlet and section stay as first stored (section: where the article was first found); a
# version's fields change only with a new revision, which the trigger keeps; seeing the
# article again changes only when it was last seen.
_VERSION_UPDATES = ", ".join(
    f"{name} = CASE WHEN {_CHANGED} THEN excluded.{name} ELSE a.{name} END"
    for name in ARTICLE_FIELDS
    if name not in ("canonical_url", "outlet", "section")
)
UPSERT = f"""
    WITH incoming AS (
        SELECT * FROM unnest({_UNNEST_ARGS}) AS t({", ".join(_WRITTEN)})
    ), stored AS (
        SELECT canonical_url, revision FROM articles
        WHERE canonical_url IN (SELECT canonical_url FROM incoming)
    ), written AS (
        INSERT INTO articles AS a ({", ".join(_WRITTEN)}, first_seen, last_seen, checked_at)
        SELECT *, fetched_at, fetched_at, fetched_at FROM incoming
        ON CONFLICT (canonical_url) DO UPDATE SET {_VERSION_UPDATES},
            revision = a.revision + CASE WHEN {_CHANGED} THEN 1 ELSE 0 END,
            revision_hash = excluded.revision_hash,
            etag = coalesce(excluded.etag, a.etag),
            last_modified = coalesce(excluded.last_modified, a.last_modified),
            last_seen = excluded.fetched_at, checked_at = excluded.fetched_at,
            removed_at = NULL, removal_checks = 0
        RETURNING canonical_url, revision, xmax = 0 AS inserted
    )
    -- xmax is 0 only on a row this statement inserted, also when a concurrent writer
    -- inserted the article after this statement's snapshot
    SELECT count(*) FILTER (WHERE w.inserted),
           array_agg(canonical_url)
               FILTER (WHERE NOT w.inserted AND w.revision > coalesce(s.revision, 1))
    FROM written w LEFT JOIN stored s USING (canonical_url)
"""


def upsert_arrays(records: list[dict[str, Any]]) -> list[list[Any]]:
    """The batch as one array per field: deduplicated on canonical_url, sorted by it."""
    now = datetime.now(UTC)
    batch: dict[str, dict[str, Any]] = {}
    for record in records:
        row = {name: _clean(name, record.get(name), now) for name in _WRITTEN
               if name != "revision_hash"}
        row["revision_hash"] = revision_hash(record)
        for name in _REQUIRED_FIELDS:
            if not row[name]:
                raise StoreError(f"article {row['canonical_url']!r} has no {name}")
        key = row["canonical_url"]
        if key in batch:  # the later copy wins, found in the section seen first
            row["section"] = batch[key]["section"]
        batch[key] = row
    rows = [batch[key] for key in sorted(batch)]
    return [[row[name] for row in rows] for name in _WRITTEN]


def _clean(name: str, value: Any, now: datetime) -> Any:
    if name in _TIMESTAMP_FIELDS:
        return as_timestamp(name, value, now)
    if value is None:
        return None
    # PostgreSQL text cannot hold NUL, and scraped pages sometimes do
    return str(value).replace("\x00", "")


def as_timestamp(name: str, value: Any, now: datetime) -> datetime | None:
    """A field's time, ``now`` for a missing fetched_at; an unreadable one is dropped, unless
    it is fetched_at."""
    try:
        parsed = moment(value)
    except ValueError:
        if name == "fetched_at":
            raise StoreError(f"fetched_at {value!r} is not an ISO-8601 time") from None
        return None  # a date the page got wrong is no reason to lose the article
    if parsed is None:
        return now if name == "fetched_at" else None
    return parsed


def article_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of :data:`EXPORT_COLUMNS` as the record the Store interface reads."""
    return iso_times(dict(zip(EXPORT_FIELDS, row, strict=True)))


def iso_times(record: dict[str, Any]) -> dict[str, Any]:
    """Timestamps as ISO 8601 in UTC, as the other stores give them."""
    for name, value in record.items():
        if isinstance(value, datetime):
            record[name] = value.astimezone(UTC).isoformat()
    return record
