"""The commands of distributed mode, around Redis: `crawler schedule`, `unschedule`,
`beat`, `worker` and `status`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crawler import settings as defaults
from crawler.cli.common import (
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
    fail,
    in_mode,
    load_outlet,
    one_line_errors,
    redis_errors,
)
from crawler.core.outlets import OutletCatalog, OutletError
from crawler.storage import StoreError, open_store


def schedule(
    outlet: Annotated[str, typer.Argument(help="Outlet name (its file's name).")],
    section: SectionOpt = None,
    redis: RedisOpt = defaults.REDIS_URL,
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
        with one_line_errors(ValueError):
            seconds = parse_interval(every)
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


def unschedule(
    outlet: Annotated[str, typer.Argument(help="Outlet name.")],
    section: SectionOpt = None,
    redis: RedisOpt = defaults.REDIS_URL,
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


def beat(
    redis: RedisOpt = defaults.REDIS_URL,
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

    with one_line_errors(OutletError):
        catalog = OutletCatalog.from_setting(outlets_dir)
    settings = build_settings(setting, REDIS_URL=redis)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    # a long-running service: its client retries, and Beat rides out Redis errors itself
    server = connect_redis(settings, retry=True)
    db = None
    if store:
        with one_line_errors(StoreError):
            db = open_store(store, pool_size=1)
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


def worker(
    redis: RedisOpt = defaults.REDIS_URL,
    store: StoreOpt = defaults.STORE_URI,
    outlets_dir: OutletsDirOpt = None,
    metrics_port: MetricsPortOpt = None,
    warc: WarcOpt = None,
    setting: SettingOpt = None,
) -> None:
    """Take work from Redis until SIGTERM/SIGINT, then drain and stop."""
    from crawler.mode import DISTRIBUTED
    from crawler.runner import run_worker

    with one_line_errors(OutletError):
        OutletCatalog.from_setting(outlets_dir)
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


def status(
    redis: RedisOpt = defaults.REDIS_URL,
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
