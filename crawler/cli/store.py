"""The commands that read or rework the store: `crawler export`, `history` and `rekey`."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from crawler import settings as defaults
from crawler.cli.common import (
    OutletsDirOpt,
    StoreOpt,
    fail,
    load_outlet,
    one_line_errors,
    opened_store,
)
from crawler.core.outlets import OutletCatalog, OutletError
from crawler.items import EXPORT_FIELDS


def export(
    store: StoreOpt = defaults.STORE_URI,
    format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    outlet: Annotated[str | None, typer.Option("--outlet", help="Only this outlet.")] = None,
    changed_since: Annotated[str | None, typer.Option(
        "--changed-since", help="Only articles new, edited or removed since this time "
        "(ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00+00:00).")] = None,
) -> None:
    """Write the stored articles to stdout, one record per line."""
    if format not in ("jsonl", "csv"):
        raise fail(f"unknown format {format!r}: use jsonl or csv")
    since = None
    if changed_since is not None:
        since = iso_time(changed_since, "--changed-since")
    out = sys.stdout
    # a store that fails while being read (busy, corrupt, gone) is one line too
    with opened_store(store) as db:
        try:
            records = db.read(outlet, changed_since=since)
            if format == "csv":
                writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
                writer.writeheader()
                writer.writerows(records)
            else:
                for record in records:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
        except BrokenPipeError:  # `crawler export | head`
            sys.stderr.close()


def iso_time(text: str, option: str) -> str:
    """An ISO 8601 time or date as stored: UTC, seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"{option}: not an ISO 8601 time: {text!r} (e.g. 2026-11-01 or "
                   "2026-11-01T12:00:00+00:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def article_key(url: str, outlets_dir: Path | None) -> str:
    """The identity the store keys ``url`` by: its outlet's rules where an outlet owns it."""
    from crawler.core.identity import identity_url

    with one_line_errors(OutletError):
        catalog = OutletCatalog.from_setting(outlets_dir)
        for name in catalog.names():
            try:
                outlet = catalog.get(name)
            except OutletError:
                continue
            if outlet.owns(url):
                return outlet.canonical_url(url)
    return identity_url(url)


def history(
    url: Annotated[str, typer.Argument(help="The article's URL, on any mirror.")],
    store: StoreOpt = defaults.STORE_URI,
    outlets_dir: OutletsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document, for "
                                          "scripts.")] = False,
) -> None:
    """The versions of one article, each with when it was fetched and a diff against the
    one before (title, date, text), and its removal if the outlet took it down."""
    from crawler.core.revisions import version_diff

    key = article_key(url, outlets_dir)
    with opened_store(store) as db:
        versions = db.history(key)
    if not versions:
        raise fail(f"not stored: {key}", code=1)
    diffs = [None] + [version_diff(a, b) for a, b in zip(versions, versions[1:], strict=False)]
    latest = versions[-1]
    if as_json:
        document = {
            "canonical_url": key,
            "first_seen": latest.get("first_seen"), "last_seen": latest.get("last_seen"),
            "removed_at": latest.get("removed_at"),
            "versions": [{**{k: v for k, v in version.items() if k != "canonical_url"},
                          "diff": diff} for version, diff in zip(versions, diffs, strict=True)],
        }
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    # Text, never markup: titles and diffs come from the web
    out = Console()
    plural = "s" if len(versions) != 1 else ""
    out.print(Text.assemble(
        (key, "bold"), f": {len(versions)} version{plural}, first seen "
        f"{latest.get('first_seen')}, last seen {latest.get('last_seen')}"), highlight=False)
    for version, diff in zip(versions, diffs, strict=True):
        out.print(Text.assemble(
            "\n", (f"revision {version.get('revision')}", "bold"),
            f" fetched {version['fetched_at']} from {version['url']}: "
            f"{version.get('title') or '(no title)'}"), highlight=False)
        if diff:
            out.print(Text(diff), highlight=False, soft_wrap=True)
    if latest.get("removed_at"):
        checks = latest.get("removal_checks") or 0
        out.print(Text.assemble(
            "\n", ("removed", "bold red"), f" since {latest['removed_at']} ({checks} "
            f"revisit{'s' if checks != 1 else ''} agreed)"), highlight=False)


def rekey(
    outlet: Annotated[str, typer.Argument(help="Outlet name (its file's name).")],
    store: StoreOpt = defaults.STORE_URI,
    outlets_dir: OutletsDirOpt = None,
) -> None:
    """Key an outlet's stored articles by its identity rules (identity_params), merging
    duplicates. Opening a store migrates it without the outlet files: run this after
    that, or after changing an outlet's identity_params."""
    spec = load_outlet(outlets_dir, outlet, [])
    with opened_store(store) as db:
        changed = db.rekey(spec.name, spec.canonical_url)
    typer.echo(f"{changed} stored articles of {spec.name} rekeyed or merged")
