"""What makes a new version of an article, and how two versions differ.

An outlet may edit an article after publishing it; a revisit that finds a different title,
publication date or text stores a new revision. Whitespace is not an edit (a template that
re-indents its markup changes nothing a reader sees), so the comparison is on a hash of the
three with runs of whitespace collapsed (:func:`revision_hash`); every store uses it.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

#: the fields whose change makes a revision, in the order a diff shows them
REVISED_FIELDS = ("title", "published", "text")


def moment(value: Any) -> datetime | None:
    """A time as pages and stores write it (ISO 8601, a date, a datetime), zone-aware: a
    date alone is its midnight, a time without zone is UTC. None for nothing; ValueError for
    what does not parse."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        parsed = datetime.fromisoformat(str(value).strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalize_published(value: Any) -> str:
    """A publication date in one spelling, whatever the page or store wrote: ISO 8601 in UTC;
    what does not parse, as written."""
    try:
        parsed = moment(value)
    except ValueError:
        return " ".join(str(value).split())
    return parsed.astimezone(UTC).isoformat() if parsed else ""


def revision_hash(record: Mapping[str, Any]) -> str:
    """The hash two versions of an article share unless a reader would see an edit."""
    parts = (
        " ".join((record.get("title") or "").split()),
        normalize_published(record.get("published")),
        " ".join((record.get("text") or "").split()),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def is_revision(stored: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether ``record`` is a new version of the ``stored`` row. Rows stored before there
    were revision hashes compare by their text's content hash."""
    if stored.get("revision_hash"):
        return stored["revision_hash"] != revision_hash(record)
    return stored.get("content_hash") != record.get("content_hash")


def version_diff(before: Mapping[str, Any], after: Mapping[str, Any],
                 context: int = 2) -> str:
    """A unified diff of title, date and text (the text one sentence-ish line per line)."""
    return "".join(_field_diffs(before, after, context))


def _field_diffs(before: Mapping[str, Any], after: Mapping[str, Any],
                 context: int) -> Iterator[str]:
    for name in REVISED_FIELDS:
        old, new = _lines(name, before.get(name)), _lines(name, after.get(name))
        if old != new:
            yield from difflib.unified_diff(old, new, f"{name} (revision "
                                            f"{before.get('revision', '?')})",
                                            f"{name} (revision {after.get('revision', '?')})",
                                            n=context)


def _lines(name: str, value: Any) -> list[str]:
    if name == "published":
        value = normalize_published(value)
    if not value:
        return []
    lines: Iterable[str] = str(value).splitlines() if name == "text" else [str(value)]
    return [" ".join(line.split()) + "\n" for line in lines if line.strip()]
