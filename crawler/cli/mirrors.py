"""`crawler mirrors`: an outlet's mirrors and the candidates it named; adopt or reject one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crawler import settings as defaults
from crawler.cli.common import (
    OutletsDirOpt,
    StoreOpt,
    build_settings,
    connect_redis,
    fail,
    load_outlet,
    one_line_errors,
    redis_errors,
)
from crawler.storage import StoreError, open_store


def mirrors(
    words: Annotated[list[str], typer.Argument(
        help="OUTLET: its mirrors and candidates; adopt OUTLET URL: put a candidate in "
        "rotation; reject OUTLET URL: keep it out.", metavar="[adopt|reject] OUTLET [URL]")],
    store: StoreOpt = defaults.STORE_URI,
    outlets_dir: OutletsDirOpt = None,
    redis: Annotated[str | None, typer.Option(
        "--redis", envvar="CRAWLER_REDIS_URL", help="Redis URL (distributed mode): the "
        "workers' candidates and the mirrors' shared health.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The outlet file's mirrors with their health, and the mirrors the outlet named: adopted
    ones and candidates, with how they were found, when, and what verification found."""
    if words and words[0] in ("adopt", "reject"):
        if len(words) != 3:
            raise fail(f"usage: crawler mirrors {words[0]} OUTLET URL")
        action, name, url = words
    elif len(words) == 1:
        action, name, url = None, words[0], None
    else:
        raise fail("usage: crawler mirrors OUTLET | crawler mirrors adopt|reject OUTLET URL")
    outlet = load_outlet(outlets_dir, name, [])
    if redis:  # the workers' candidates
        from crawler.distributed.candidates import RedisMirrorRegistry
        from crawler.distributed.keys import RedisKeys

        settings = build_settings(None, REDIS_URL=redis)
        with redis_errors(settings):
            server = connect_redis(settings)
            registry = RedisMirrorRegistry(server, RedisKeys.from_settings(settings), "cli",
                                           settings.getfloat("MIRROR_DISCOVERY_LEASE"))
    else:
        from crawler.mirror_registry import MirrorRegistry, StoreMirrorRegistry
        from crawler.storage import path_from_uri

        with one_line_errors(StoreError):
            if (action is None and store.startswith("sqlite:")
                    and not Path(path_from_uri(store)).exists()):
                registry = MirrorRegistry()  # nothing crawled there: nothing to show or make
            else:
                registry = StoreMirrorRegistry(open_store(store))
    if action is not None:
        from crawler.core.mirror_notices import base_of
        from crawler.mirror_registry import decide

        base = base_of(url or "")
        if base is None:
            raise fail(f"not an http(s) URL: {url}")
        if base in outlet.mirrors:
            raise fail(f"{base} is in the outlet file already")
        candidate = decide(registry, name, base, adopt=action == "adopt")
        typer.echo(f"{base}: {candidate.state}" + (
            " (a running crawl puts it in rotation within seconds)"
            if action == "adopt" else ""))
        return
    health: dict[str, dict] = {}
    if redis:
        from crawler.distributed.keys import RedisKeys
        from crawler.distributed.status import read_status

        with redis_errors(settings):
            state = read_status(server, RedisKeys.from_settings(settings),
                                settings.getfloat("WORKER_TIMEOUT"))
        health = state["outlets"].get(name, {}).get("mirrors", {})
    document = {
        "outlet": name,
        "mirrors": [{"mirror": m, "canonical": m == outlet.canonical,
                     "up": health[m]["up"] if m in health else None,
                     "last_failure": (health.get(m) or {}).get("last_failure")}
                    for m in outlet.mirrors],
        "candidates": [c.to_dict() for c in sorted(registry.candidates(name),
                                                    key=lambda c: c.first_seen)],
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    out = Console()
    table = Table("mirror", "health", title=f"Mirrors of {name} (outlet file)",
                  title_justify="left")
    for m in document["mirrors"]:
        up = {True: "[green]up[/green]", False: "[red]out[/red]", None: "not known"}[m["up"]]
        table.add_row(escape(m["mirror"]) + (" (canonical)" if m["canonical"] else ""), up)
    out.print(table)
    named = Table("mirror", "state", "source", "first seen", "evidence",
                  title="Named by the outlet", title_justify="left")
    for c in document["candidates"]:
        named.add_row(escape(c["base"]), c["state"], c["source"], c["first_seen"],
                      escape(c["evidence"] or "-"))
    out.print(named)
