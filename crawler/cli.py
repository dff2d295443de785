"""The `crawler` command (see CONTRACT: "Commands")."""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crawler.items import ARTICLE_FIELDS
from crawler.outlets import OutletCatalog, OutletError
from crawler.storage import StoreError, open_store

app = typer.Typer(
    help="Crawl news outlets' sections into clean articles, across mirror domains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

DEFAULT_STORE = "sqlite:///crawl.db"
DEFAULT_REDIS = "redis://localhost:6379/0"

StoreOpt = Annotated[str, typer.Option("--store", envvar="CRAWLER_STORE", help="Store URI.")]
OutletsDirOpt = Annotated[
    Path | None,
    typer.Option("--outlets-dir", envvar="CRAWLER_OUTLETS_DIR",
                 help="Directory of outlet files (default: the bundled outlets)."),
]
SettingOpt = Annotated[
    list[str] | None,
    typer.Option("-s", "--set", help="Override a Scrapy setting, NAME=VALUE (repeatable)."),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option("--metrics-port", envvar="CRAWLER_METRICS_PORT",
                 help="Serve Prometheus metrics on this port (/metrics)."),
]
RedisOpt = Annotated[
    str, typer.Option("--redis", envvar="CRAWLER_REDIS_URL", help="Redis URL.")
]
SectionOpt = Annotated[
    list[str] | None, typer.Option("--section", help="Only this section (repeatable).")
]


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_outlet(outlets_dir: Path | None, name: str, sections: list[str]):
    try:
        outlet = OutletCatalog.from_setting(outlets_dir).get(name)
    except OutletError as exc:
        raise fail(str(exc)) from None
    unknown = [s for s in sections if s not in outlet.sections]
    if unknown:
        raise fail(
            f"outlet {name!r} has no section {unknown[0]!r} "
            f"(sections: {', '.join(outlet.sections)})"
        )
    return outlet


def check_store(uri: str) -> None:
    try:
        open_store(uri).close()
    except StoreError as exc:
        raise fail(str(exc)) from None


def build_settings(overrides: list[str] | None, **values):
    from crawler.runner import crawler_settings

    try:
        return crawler_settings(overrides or [], **values)
    except ValueError as exc:
        raise fail(str(exc)) from None


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
    setting: SettingOpt = None,
) -> None:
    """Crawl one outlet's sections in this process (no Redis) and store the articles."""
    from crawler.distributed.schedules import parse_interval
    from crawler.runner import run_crawl

    sections = section or []
    load_outlet(outlets_dir, outlet, sections)
    check_store(store)
    try:
        give_up_after = parse_interval(max_wait)
    except ValueError as exc:
        raise fail(f"--max-wait: {exc}") from None
    settings = build_settings(
        setting, STORE_URI=store, OUTLETS_DIR=outlets_dir, METRICS_PORT=metrics_port,
        DOCUMENT_GIVE_UP_AFTER=give_up_after,
    )
    summary = run_crawl(settings, outlet, sections, console)
    console.print(summary.table(f"{outlet}: crawl finished ({summary.finish_reason})"))
    if summary.finish_reason != "finished":
        raise fail(f"crawl ended early: {summary.finish_reason}", code=1)
    if summary.lost:
        named = ", ".join(summary.lost_urls[:5])
        more = f" and {summary.lost - 5} more" if summary.lost > 5 else ""
        raise fail(f"{summary.lost} documents not stored: {named}{more}", code=1)


def connect_redis(settings):
    from redis.exceptions import RedisError

    from crawler.distributed.worker import redis_client

    server = redis_client(settings)
    try:
        server.ping()
    except RedisError as exc:
        raise fail(f"cannot reach Redis at {settings['REDIS_URL']}: {exc}") from None
    return server


@app.command()
def schedule(
    outlet: Annotated[str, typer.Argument(help="Outlet name (its file's name).")],
    section: SectionOpt = None,
    redis: RedisOpt = DEFAULT_REDIS,
    outlets_dir: OutletsDirOpt = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Repeat at this interval: 30s, 15m, 1h, 1d.")
    ] = None,
) -> None:
    """Queue an outlet's sections for the workers, now or (--every) on a schedule."""
    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.schedules import Schedules, parse_interval
    from crawler.distributed.worker import queue_sections

    sections = section or []
    spec = load_outlet(outlets_dir, outlet, sections)
    settings = build_settings([], REDIS_URL=redis)
    server = connect_redis(settings)
    if every is None:
        for url in queue_sections(server, settings, spec, sections):
            typer.echo(f"queued {url}")
        return
    try:
        seconds = parse_interval(every)
    except ValueError as exc:
        raise fail(str(exc)) from None
    schedules = Schedules(server, RedisKeys.from_settings(settings))
    for added in schedules.add(spec.name, sections or list(spec.sections), seconds):
        typer.echo(f"scheduled {added.outlet} {added.section} every {every} "
                   "(run by `crawler beat`)")


@app.command()
def unschedule(
    outlet: Annotated[str, typer.Argument(help="Outlet name.")],
    section: SectionOpt = None,
    redis: RedisOpt = DEFAULT_REDIS,
) -> None:
    """Remove an outlet's recurring schedules (all its sections unless --section)."""
    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.schedules import Schedules

    settings = build_settings([], REDIS_URL=redis)
    schedules = Schedules(connect_redis(settings), RedisKeys.from_settings(settings))
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
) -> None:
    """Queue the sections of recurring schedules when due, until SIGTERM/SIGINT. Several
    beats may run: one leads, the others stand by."""
    import logging
    import signal

    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.schedules import Beat

    try:
        catalog = OutletCatalog.from_setting(outlets_dir)
    except OutletError as exc:
        raise fail(str(exc)) from None
    settings = build_settings([], REDIS_URL=redis)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    service = Beat(connect_redis(settings), RedisKeys.from_settings(settings), catalog, tick=tick)
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    service.run()


@app.command()
def worker(
    redis: RedisOpt = DEFAULT_REDIS,
    store: StoreOpt = DEFAULT_STORE,
    outlets_dir: OutletsDirOpt = None,
    metrics_port: MetricsPortOpt = None,
    setting: SettingOpt = None,
) -> None:
    """Take work from Redis until SIGTERM/SIGINT, then drain and stop."""
    from crawler.distributed.worker import apply_distributed
    from crawler.runner import run_worker

    try:
        OutletCatalog.from_setting(outlets_dir)
    except OutletError as exc:
        raise fail(str(exc)) from None
    settings = apply_distributed(build_settings(
        setting, REDIS_URL=redis, STORE_URI=store, OUTLETS_DIR=outlets_dir,
        METRICS_PORT=metrics_port,
    ))
    connect_redis(settings)
    check_store(store)
    reason = run_worker(settings)
    if reason not in ("shutdown", "finished"):
        raise fail(f"worker stopped: {reason}", code=1)


@app.command()
def status(
    redis: RedisOpt = DEFAULT_REDIS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Queue depth per outlet, in-flight requests, live workers, mirror health."""
    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.status import read_status

    settings = build_settings([], REDIS_URL=redis)
    server = connect_redis(settings)
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
            f"{m} " + ("[green]up[/green]" if h["up"] else
                       f"[red]out {h['out_for_seconds']:.0f}s[/red] ({h['last_failure']})")
            for m, h in info["mirrors"].items()
        ) or "-"
        outlets.add_row(name, str(info["queued"]), str(info["in_flight"]),
                        str(info.get("waiting", 0)), mirrors)
    out.print(outlets)
    workers = Table("worker", "last heartbeat", "state", title="Workers", title_justify="left")
    for w in state["workers"]:
        workers.add_row(w["worker"], f"{w['seconds_since_heartbeat']:.0f}s ago",
                        "[green]live[/green]" if w["alive"] else "[red]silent[/red]")
    out.print(workers)
    schedules = Table("outlet", "section", "every", "last run", "next run", "runs",
                      title="Schedules", title_justify="left")
    for sch in state["schedules"]:
        schedules.add_row(sch["outlet"], sch["section"], f"{sch['every']:.0f}s",
                          _when(sch["last_run"], state["time"]),
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
) -> None:
    """Write the stored articles to stdout, one record per line."""
    if format not in ("jsonl", "csv"):
        raise fail(f"unknown format {format!r}: use jsonl or csv")
    try:
        db = open_store(store)
    except StoreError as exc:
        raise fail(str(exc)) from None
    out = sys.stdout
    try:
        if format == "csv":
            writer = csv.DictWriter(out, fieldnames=ARTICLE_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(db.read(outlet))
        else:
            for record in db.read(outlet):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    except BrokenPipeError:  # `crawler export | head`
        sys.stderr.close()
    finally:
        db.close()


@app.command()
def outlets(outlets_dir: OutletsDirOpt = None) -> None:
    """List the outlets and validate their files."""
    try:
        catalog = OutletCatalog.from_setting(outlets_dir)
    except OutletError as exc:
        raise fail(str(exc)) from None
    table = Table("outlet", "mirrors (first is canonical)", "sections", "status")
    bad = 0
    for path, result in catalog.validate_all():
        if isinstance(result, OutletError):
            bad += 1
            console.print(f"[red]error:[/red] {result}", highlight=False, soft_wrap=True)
            table.add_row(path.stem, "", "", "[red]invalid[/red]")
        else:
            table.add_row(
                result.name, "\n".join(result.mirrors), ", ".join(result.sections), "ok"
            )
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
    with tempfile.TemporaryDirectory(prefix="crawler-demo-") as tmp, DemoOutlet(
        Path(tmp), behaviours=("dead", "seized", "healthy"), articles=articles
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
        console.print(f"see them with: crawler export --store {store}", highlight=False)
        if summary.finish_reason != "finished" or found != len(expected):
            raise fail("the demo crawl did not store every article", code=1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
