"""The `crawler` command (see README.md: "Commands")."""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from crawler.cli.common import (
    DEFAULT_REDIS,
    DEFAULT_STORE,
    MetricsPortOpt,
    OutletsDirOpt,
    RedisOpt,
    SectionOpt,
    SettingOpt,
    StoreOpt,
    WarcOpt,
    build_settings,
    check_store,
    check_warc_dir,
    connect_redis,
    console,
    fail,
    in_mode,
    load_outlet,
    redis_errors,
)
from crawler.core.outlets import OutletCatalog, OutletError
from crawler.core.redact import install_log_redaction
from crawler.items import EXPORT_FIELDS
from crawler.storage import StoreError, open_store

app = typer.Typer(
    help="Crawl news outlets' sections into clean articles, across mirror domains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def crawl(
    outlet: Annotated[str, typer.Argument(help="Outlet name (its file's name).")],
    section: SectionOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    outlets_dir: OutletsDirOpt = None,
    metrics_port: MetricsPortOpt = None,
    max_wait: Annotated[
        str, typer.Option("--max-wait", help="While every mirror is out, wait this long for "
                          "one to come back (30s, 15m, 1h) before giving documents up.")
    ] = "15m",
    full: Annotated[
        bool, typer.Option("--full", help="Walk every section to max_section_pages and fetch "
                           "every listing, feed and sitemap in full, changed or not.")
    ] = False,
    revisit: Annotated[
        bool, typer.Option("--revisit", help="Also fetch again the stored articles due for a "
                           "revisit (outlet file: revisit), storing edits as revisions and "
                           "marking removals.")
    ] = False,
    warc: WarcOpt = None,
    setting: SettingOpt = None,
) -> None:
    """Crawl one outlet's sections, feeds and sitemaps in this process (no Redis) and store
    the articles."""
    from crawler.core.durations import parse_interval
    from crawler.mode import STANDALONE
    from crawler.runner import run_crawl

    sections = section or []
    load_outlet(outlets_dir, outlet, sections)
    try:
        give_up_after = parse_interval(max_wait)
    except ValueError as exc:
        raise fail(f"--max-wait: {exc}") from None
    settings = build_settings(
        setting, STORE_URI=store, OUTLETS_DIR=outlets_dir, METRICS_PORT=metrics_port,
        DOCUMENT_GIVE_UP_AFTER=give_up_after, DISCOVERY_FULL=True if full else None,
        REVISIT=True if revisit else None, WARC_DIR=warc,
    )
    in_mode(settings, STANDALONE)  # workers: `crawler worker`
    check_store(settings["STORE_URI"])  # -s STORE_URI=... wins over --store
    check_warc_dir(settings.get("WARC_DIR"))
    summary = run_crawl(settings, outlet, sections, console)
    console.print(summary.table(f"{outlet}: crawl finished ({summary.finish_reason})"))
    problem = summary.problem()
    if summary.finish_reason != "finished":
        raise fail(f"crawl ended early: {summary.finish_reason}"
                   + (f"; {problem}" if problem else ""), code=1)
    if problem is not None:
        raise fail(problem, code=1)


@app.command()
def schedule(
    outlet: Annotated[str, typer.Argument(help="Outlet name (its file's name).")],
    section: SectionOpt = None,
    redis: RedisOpt = DEFAULT_REDIS,
    outlets_dir: OutletsDirOpt = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Repeat at this interval: 30s, 15m, 1h, 1d.")
    ] = None,
    setting: SettingOpt = None,
) -> None:
    """Queue an outlet's sections for the workers, now or (--every) on a schedule."""
    from crawler.core.durations import parse_interval
    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.schedules import Schedules
    from crawler.distributed.worker import queue_sections

    sections = section or []
    spec = load_outlet(outlets_dir, outlet, sections)
    settings = build_settings(setting, REDIS_URL=redis)
    if every is not None:
        try:
            seconds = parse_interval(every)
        except ValueError as exc:
            raise fail(str(exc)) from None
    server = connect_redis(settings)
    with redis_errors(settings):
        if every is None:
            for url in queue_sections(server, settings, spec, sections):
                typer.echo(f"queued {url}")
            return
        schedules = Schedules(server, RedisKeys.from_settings(settings))
        for added in schedules.add(spec.name, sections or list(spec.sections), seconds):
            typer.echo(f"scheduled {added.outlet} {added.section} every {every} "
                       "(run by `crawler beat`)")


@app.command()
def unschedule(
    outlet: Annotated[str, typer.Argument(help="Outlet name.")],
    section: SectionOpt = None,
    redis: RedisOpt = DEFAULT_REDIS,
    setting: SettingOpt = None,
) -> None:
    """Remove an outlet's recurring schedules (all its sections unless --section)."""
    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.schedules import Schedules

    settings = build_settings(setting, REDIS_URL=redis)
    schedules = Schedules(connect_redis(settings), RedisKeys.from_settings(settings))
    with redis_errors(settings):
        removed = schedules.remove(outlet, section)
    if not removed:
        raise fail(f"no schedule for {outlet}" + (f" {', '.join(section)}" if section else ""))
    for field in removed:
        typer.echo(f"unscheduled {field.replace('|', ' ')}")


@app.command()
def beat(
    redis: RedisOpt = DEFAULT_REDIS,
    outlets_dir: OutletsDirOpt = None,
    tick: Annotated[float, typer.Option(help="Seconds between looks at the schedules.")] = 1.0,
    store: Annotated[str | None, typer.Option(
        "--store", envvar="CRAWLER_STORE",
        help="Store URI: with it, the stored articles of scheduled outlets are revisited "
             "when due (outlet files: revisit).")] = None,
    setting: SettingOpt = None,
) -> None:
    """Queue the sections of recurring schedules when due, and the revisits of stored
    articles, until SIGTERM/SIGINT. Several beats may run: one leads, the others stand by."""
    import logging
    import signal

    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.schedules import Beat

    try:
        catalog = OutletCatalog.from_setting(outlets_dir)
    except OutletError as exc:
        raise fail(str(exc)) from None
    settings = build_settings(setting, REDIS_URL=redis)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    # a long-running service: its client retries, and Beat rides out Redis errors itself
    server = connect_redis(settings, retry=True)
    db = None
    if store:
        try:
            db = open_store(store, pool_size=1)
        except StoreError as exc:
            raise fail(str(exc)) from None
    service = Beat(server, RedisKeys.from_settings(settings), catalog, tick=tick, store=db,
                   revisit_every=settings.getfloat("REVISIT_CHECK_SECONDS"),
                   revisit_batch=settings.getint("REVISIT_BATCH"))
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    try:
        service.run()
    finally:
        if db is not None:
            db.close()


@app.command()
def worker(
    redis: RedisOpt = DEFAULT_REDIS,
    store: StoreOpt = DEFAULT_STORE,
    outlets_dir: OutletsDirOpt = None,
    metrics_port: MetricsPortOpt = None,
    warc: WarcOpt = None,
    setting: SettingOpt = None,
) -> None:
    """Take work from Redis until SIGTERM/SIGINT, then drain and stop."""
    from crawler.mode import DISTRIBUTED
    from crawler.runner import run_worker

    try:
        OutletCatalog.from_setting(outlets_dir)
    except OutletError as exc:
        raise fail(str(exc)) from None
    settings = build_settings(
        setting, REDIS_URL=redis, STORE_URI=store, OUTLETS_DIR=outlets_dir,
        METRICS_PORT=metrics_port, WARC_DIR=warc,
    )
    # a worker is distributed, whatever -s says: its state is the other workers' too
    in_mode(settings, DISTRIBUTED)
    connect_redis(settings)
    check_store(settings["STORE_URI"])  # -s STORE_URI=... wins over --store
    check_warc_dir(settings.get("WARC_DIR"))
    reason = run_worker(settings)
    if reason not in ("shutdown", "finished"):
        raise fail(f"worker stopped: {reason}", code=1)


@app.command()
def status(
    redis: RedisOpt = DEFAULT_REDIS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    setting: SettingOpt = None,
) -> None:
    """Queue depth per outlet, in-flight requests, live workers, mirror health, documents
    a worker has held for long."""
    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.status import read_status

    settings = build_settings(setting, REDIS_URL=redis)
    server = connect_redis(settings)
    with redis_errors(settings):
        state = read_status(server, RedisKeys.from_settings(settings),
                            settings.getfloat("WORKER_TIMEOUT"))
    if as_json:
        typer.echo(json.dumps(state, indent=2, sort_keys=True))
        return
    out = Console()
    outlets = Table("outlet", "queued", "in flight", "waiting", "mirrors", title="Outlets",
                    title_justify="left")
    for name, info in state["outlets"].items():
        mirrors = "\n".join(
            f"{escape(m)} " + (
                "[green]up[/green]" if h["up"] else
                f"[red]out {h['out_for_seconds']:.0f}s[/red] ({escape(str(h['last_failure']))})"
            )
            for m, h in info["mirrors"].items()
        ) or "-"
        outlets.add_row(escape(name), str(info["queued"]), str(info["in_flight"]),
                        str(info.get("waiting", 0)), mirrors)
    out.print(outlets)
    workers = Table("worker", "last heartbeat", "state", title="Workers", title_justify="left")
    for w in state["workers"]:
        workers.add_row(escape(w["worker"]), f"{w['seconds_since_heartbeat']:.0f}s ago",
                        "[green]live[/green]" if w["alive"] else "[red]silent[/red]")
    out.print(workers)
    if state["open_documents"]:
        stuck = Table("document", "worker", "open for", "held by",
                      title="Documents open longer than DOCUMENT_OPEN_WARN",
                      title_justify="left")
        for doc in state["open_documents"]:
            stuck.add_row(escape(doc["url"]), escape(doc["worker"]), f"{doc['seconds']:.0f}s",
                          escape(doc["holder"] or "the crawl"))
        out.print(stuck)
    schedules = Table("outlet", "section", "every", "last run", "next run", "runs",
                      title="Schedules", title_justify="left")
    for sch in state["schedules"]:
        schedules.add_row(escape(sch["outlet"]), escape(sch["section"]),
                          f"{sch['every']:.0f}s", _when(sch["last_run"], state["time"]),
                          _when(sch["next_run"], state["time"]), str(sch["runs"]))
    out.print(schedules)


def _when(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    delta = timestamp - now
    return f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"


@app.command()
def export(
    store: StoreOpt = DEFAULT_STORE,
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
    try:
        db = open_store(store)
    except StoreError as exc:
        raise fail(str(exc)) from None
    out = sys.stdout
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
    except StoreError as exc:  # the store failed while being read (busy, corrupt, gone)
        raise fail(str(exc)) from None
    finally:
        db.close()


def iso_time(text: str, option: str) -> str:
    """An ISO 8601 time or date as stored: UTC, seconds."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"{option}: not an ISO 8601 time: {text!r} (e.g. 2026-11-01 or "
                   "2026-11-01T12:00:00+00:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@app.command()
def history(
    url: Annotated[str, typer.Argument(help="The article's URL, on any mirror.")],
    store: StoreOpt = DEFAULT_STORE,
    outlets_dir: OutletsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document, for "
                                          "scripts.")] = False,
) -> None:
    """The versions of one article, each with when it was fetched and a diff against the
    one before (title, date, text), and its removal if the outlet took it down."""
    from crawler.core.revisions import version_diff

    key = article_key(url, outlets_dir)
    try:
        db = open_store(store)
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        versions = db.history(key)
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        db.close()
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


@app.command()
def mirrors(
    words: Annotated[list[str], typer.Argument(
        help="OUTLET: its mirrors and candidates; adopt OUTLET URL: put a candidate in "
        "rotation; reject OUTLET URL: keep it out.", metavar="[adopt|reject] OUTLET [URL]")],
    store: StoreOpt = DEFAULT_STORE,
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

        try:
            if (action is None and store.startswith("sqlite:")
                    and not Path(path_from_uri(store)).exists()):
                registry = MirrorRegistry()  # nothing crawled there: nothing to show or make
            else:
                registry = StoreMirrorRegistry(open_store(store))
        except StoreError as exc:
            raise fail(str(exc)) from None
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


def article_key(url: str, outlets_dir: Path | None) -> str:
    """The identity the store keys ``url`` by: its outlet's rules where an outlet owns it."""
    from crawler.core.identity import identity_url

    try:
        catalog = OutletCatalog.from_setting(outlets_dir)
        for name in catalog.names():
            try:
                outlet = catalog.get(name)
            except OutletError:
                continue
            if outlet.owns(url):
                return outlet.canonical_url(url)
    except OutletError as exc:
        raise fail(str(exc)) from None
    return identity_url(url)


@app.command()
def rekey(
    outlet: Annotated[str, typer.Argument(help="Outlet name (its file's name).")],
    store: StoreOpt = DEFAULT_STORE,
    outlets_dir: OutletsDirOpt = None,
) -> None:
    """Key an outlet's stored articles by its identity rules (identity_params), merging
    duplicates. Opening a store migrates it without the outlet files: run this after
    that, or after changing an outlet's identity_params."""
    spec = load_outlet(outlets_dir, outlet, [])
    try:
        db = open_store(store)
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        changed = db.rekey(spec.name, spec.canonical_url)
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        db.close()
    typer.echo(f"{changed} stored articles of {spec.name} rekeyed or merged")


outlets_app = typer.Typer(help="List the outlets and validate their files; start new ones.",
                          invoke_without_command=True, no_args_is_help=False)
app.add_typer(outlets_app, name="outlets")


@outlets_app.command("init")
def outlets_init(
    name: Annotated[str, typer.Argument(help="The new outlet's name (its file's name).")],
    mirrors: Annotated[list[str], typer.Argument(help="Its mirrors' base URLs, canonical first.")],
    outlets_dir: OutletsDirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter outlet file from what the mirrors serve (feeds, sitemaps, sections,
    article_url), to review before crawling."""
    from pydantic import ValidationError

    from crawler.outlet_init import draft_outlet

    directory = outlets_dir or Path.cwd()
    target = directory / f"{name}.yaml"
    if target.exists() and not force:
        raise fail(f"{target} exists (--force to overwrite)")
    draft = draft_outlet(name, mirrors)
    try:
        draft.validate()
    except ValidationError as exc:
        from crawler.core.outlets import _one_line

        console.print(f"the draft is not valid yet: {_one_line(exc)}", highlight=False)
    target.write_text(draft.yaml(), encoding="utf-8")
    typer.echo(f"wrote {target}")
    for item in draft.missing:
        typer.echo(f"not inferred: {item}")
    for mirror in draft.proposed_mirrors:
        typer.echo(f"named on the site, not added (review): {mirror}")


@outlets_app.callback()
def outlets(ctx: typer.Context, outlets_dir: OutletsDirOpt = None) -> None:
    """List the outlets and validate their files."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        catalog = OutletCatalog.from_setting(outlets_dir)
    except OutletError as exc:
        raise fail(str(exc)) from None
    table = Table("outlet", "mirrors (first is canonical)", "sections", "status")
    bad = 0
    for path, result in catalog.validate_all():
        if isinstance(result, OutletError):
            bad += 1
            fail(str(result))  # printed; the other files are still listed
            table.add_row(escape(path.stem), "", "", "[red]invalid[/red]")
        else:
            table.add_row(escape(result.name), escape("\n".join(result.mirrors)),
                          escape(", ".join(result.sections)), "ok")
    Console().print(table)
    if bad:
        raise typer.Exit(1)


@app.command()
def demo(
    articles: Annotated[int, typer.Option(help="Articles in the simulated outlet.")] = 60,
    store: Annotated[str, typer.Option("--store", help="Store URI.")] = "sqlite:///demo.db",
    setting: SettingOpt = None,
) -> None:
    """Serve a simulated outlet on loopback (a dead and a seized mirror ahead of a healthy
    one), crawl it into SQLite, print a summary. Offline; needs no server."""
    from crawler.demo import DemoOutlet
    from crawler.runner import run_crawl

    check_store(store)
    # the site's news is of today, so that its news sitemap has something in its window
    newest = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    with tempfile.TemporaryDirectory(prefix="crawler-demo-") as tmp, DemoOutlet(
        Path(tmp), behaviours=("dead", "seized", "healthy"), articles=articles,
        discovery=("listings", "feeds", "sitemaps"), newest=newest,
    ) as fx:
        for server in fx.servers:
            console.print(f"mirror {server.base_url} is {server.behaviour}", highlight=False)
        settings = build_settings(
            # the summary is the demo's output; Scrapy's log only for what needs attention
            ["DOWNLOAD_TIMEOUT=5", "AUTOTHROTTLE_ENABLED=False", "LOG_LEVEL=WARNING",
             *(setting or [])],
            STORE_URI=store, OUTLETS_DIR=str(fx.outlet_dir),
        )
        summary = run_crawl(settings, fx.name, [], console)
        expected = fx.expected_articles()
        console.print(summary.table(f"demo: crawl finished ({summary.finish_reason})"))
        db = open_store(store)
        try:
            stored = {r["canonical_url"]: r for r in db.read(fx.name)}
        finally:
            db.close()
        by_mirror: dict[str, int] = {}
        for record in stored.values():
            by_mirror[record["mirror"]] = by_mirror.get(record["mirror"], 0) + 1
        found = len(set(expected) & set(stored))
        console.print(
            f"stored {found} of the {len(expected)} articles the outlet lists, "
            f"served by: {by_mirror}", highlight=False,
        )
        found_by = ", ".join(f"{source} {n}" for source, n in summary.found_by.items())
        listed_by = ", ".join(f"{source} {n}" for source, n in summary.listed_by.items())
        console.print(f"stored articles, by how they were found first: {found_by or 'none'}"
                      f" (article links read: {listed_by or 'none'})", highlight=False)
        console.print(f"see them with: crawler export --store {store}", highlight=False)
        if summary.finish_reason != "finished" or found != len(expected):
            raise fail("the demo crawl did not store every article", code=1)


def main() -> None:
    install_log_redaction()
    app()

