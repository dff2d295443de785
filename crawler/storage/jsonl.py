"""JSON Lines store: one record per line, appended. For piping into other tools.

Idempotent within the file: the canonical URLs already in it are read at open, and a record
is appended again only when it is a new version (:func:`crawler.core.revisions.is_revision`):
each line is one version of an article, numbered in ``revision``. Readers take the last
line per identity:
lines written before canonical URLs were identity URLs are read under their identity (the
outlet-independent part, see :func:`crawler.storage.rekeyed`), so variants of one article
that an older crawler appended count once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from crawler.core.identity import identity_url
from crawler.core.revisions import is_revision, revision_hash
from crawler.items import ARTICLE_FIELDS, EXPORT_FIELDS
from crawler.storage import ProcessState, Removal, StoreError, Written, path_from_uri


class JSONLStore(ProcessState):
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        #: per article: its latest version's hashes and revision number
        self._latest: dict[str, dict[str, Any]] = {}
        try:
            if self.path.exists():
                for record in self._records():
                    self._remember(record)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot open JSONL store {path}: {exc.strerror}") from None
        except (ValueError, TypeError, KeyError, AttributeError):  # not UTF-8, not JSON records
            raise StoreError(f"cannot open JSONL store {path}: not a JSON Lines file of "
                             "articles") from None

    @classmethod
    def from_uri(cls, uri: str) -> JSONLStore:
        return cls(path_from_uri(uri))

    def check_writable(self) -> None:
        """Opened for appending already: a file that cannot be written did not open."""

    def _records(self) -> Iterator[dict[str, Any]]:
        """The file's records, each under its identity URL."""
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    record = json.loads(line)
                    record["canonical_url"] = identity_url(record["canonical_url"])
                    yield record

    def _remember(self, record: dict[str, Any]) -> None:
        known = self._latest.get(record["canonical_url"])
        self._latest[record["canonical_url"]] = {
            "content_hash": record.get("content_hash") or "",
            "revision_hash": revision_hash(record),
            "revision": record.get("revision") or (known["revision"] + 1 if known else 1),
            "first_seen": known["first_seen"] if known else record["fetched_at"],
        }

    def write(self, records: list[dict[str, Any]]) -> Written:
        lines = []
        new, revised = 0, []
        for record in records:
            known = self._latest.get(record["canonical_url"])
            if known is not None and not is_revision(known, record):
                continue
            line = {name: record.get(name) for name in ARTICLE_FIELDS}
            line["revision"] = known["revision"] + 1 if known else 1
            self._remember(line)
            if known is None:
                new += 1
            else:
                revised.append(record["canonical_url"])
            lines.append(json.dumps(line, ensure_ascii=False) + "\n")
        try:
            self._file.write("".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise StoreError(f"cannot write to JSONL store {self.path}: {exc.strerror}") from None
        return Written(new, revised)

    def existing(self, canonical_urls: Iterable[str]) -> set[str]:
        return {url for url in canonical_urls if url in self._latest}

    def read(self, outlet: str | None = None,
             changed_since: str | None = None) -> Iterator[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for record in self._records():
            if outlet is None or record.get("outlet") == outlet:
                latest[record["canonical_url"]] = record
        for record in sorted(latest.values(),
                             key=lambda r: (r["fetched_at"], r["canonical_url"])):
            if changed_since is not None and record["fetched_at"] < changed_since:
                continue
            known = self._latest[record["canonical_url"]]
            yield {name: record.get(name) for name in EXPORT_FIELDS} | {
                "revision": known["revision"], "first_seen": known["first_seen"],
                "last_seen": record["fetched_at"]}

    def history(self, canonical_url: str) -> list[dict[str, Any]]:
        versions = [r for r in self._records() if r["canonical_url"] == canonical_url]
        for number, version in enumerate(versions, 1):
            version.setdefault("revision", number)
        return versions

    def due_for_revisit(self, outlet: str, **_: Any) -> list[dict[str, Any]]:
        raise StoreError(_NO_REVISITS)

    def seen_unchanged(self, canonical_urls: list[str], when: str) -> None:
        raise StoreError(_NO_REVISITS)

    def mark_removed(self, canonical_urls: list[str], when: str) -> list[Removal]:
        raise StoreError(_NO_REVISITS)

    def count(self, outlet: str | None = None) -> int:
        return sum(1 for _ in self.read(outlet))

    def rekey(self, outlet: str, identity: Callable[[str], str]) -> int:
        """Rewrite the file with the outlet's records under ``identity``, the last line of
        each article kept (written to a new file that then replaces this one)."""
        records: dict[str, dict[str, Any]] = {}
        changed = 0
        try:
            for record in self._records():
                if record.get("outlet") == outlet:
                    key = identity(record["canonical_url"])
                    changed += key != record["canonical_url"]
                    record["canonical_url"] = key
                else:
                    key = record["canonical_url"]
                records.pop(key, None)  # the last line wins, in the place it was written
                records[key] = record
            if not changed:
                return 0
            fresh = self.path.with_name(self.path.name + ".rekey")
            with fresh.open("w", encoding="utf-8") as out:
                out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values())
                out.flush()
                os.fsync(out.fileno())
            self._file.close()
            os.replace(fresh, self.path)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot rekey JSONL store {self.path}: {exc.strerror}") from None
        self._latest = {}
        for record in records.values():
            self._remember(record)
        return changed

    def close(self) -> None:
        self._file.close()


_NO_REVISITS = "revisits need a SQLite or PostgreSQL store (a JSON Lines file only appends)"
