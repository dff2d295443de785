"""JSON Lines store: one record per line, appended. For piping into other tools.

Idempotent within the file: the canonical URLs already in it are read at open, and a record
is appended again only when its content changed. Readers take the last line per identity:
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

from crawler.identity import identity_url
from crawler.storage import StoreError, path_from_uri


class JSONLStore:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._hashes: dict[str, str] = {}
        try:
            if self.path.exists():
                for record in self._records():
                    self._hashes[record["canonical_url"]] = record.get("content_hash") or ""
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot open JSONL store {path}: {exc.strerror}") from None
        except (ValueError, TypeError, KeyError, AttributeError):  # not UTF-8, not JSON records
            raise StoreError(f"cannot open JSONL store {path}: not a JSON Lines file of "
                             "articles") from None

    @classmethod
    def from_uri(cls, uri: str) -> JSONLStore:
        return cls(path_from_uri(uri))

    def _records(self) -> Iterator[dict[str, Any]]:
        """The file's records, each under its identity URL."""
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    record = json.loads(line)
                    record["canonical_url"] = identity_url(record["canonical_url"])
                    yield record

    def write(self, records: list[dict[str, Any]]) -> int:
        lines = []
        for record in records:
            url = record["canonical_url"]
            if self._hashes.get(url) == record["content_hash"]:
                continue
            self._hashes[url] = record["content_hash"]
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        try:
            self._file.write("".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise StoreError(f"cannot write to JSONL store {self.path}: {exc.strerror}") from None
        return len(lines)

    def existing(self, canonical_urls: Iterable[str]) -> set[str]:
        return {url for url in canonical_urls if url in self._hashes}

    def read(self, outlet: str | None = None) -> Iterator[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for record in self._records():
            if outlet is None or record.get("outlet") == outlet:
                latest[record["canonical_url"]] = record
        yield from sorted(latest.values(), key=lambda r: (r["fetched_at"], r["canonical_url"]))

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
        self._hashes = {key: r.get("content_hash") or "" for key, r in records.items()}
        return changed

    def close(self) -> None:
        self._file.close()
