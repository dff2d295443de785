"""What the commands share: their common options, the checks they make before running,
and errors as one line on stderr (a secret in a URL masked), never a traceback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from crawler.core.outlets import Outlet, OutletCatalog, OutletError
from crawler.core.redact import redact_text
from crawler.storage import Store, StoreError, open_store

if TYPE_CHECKING:
    from redis import Redis
    from scrapy.settings import Settings

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line (secrets masked, markup shown as typed) and return the exit to raise."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    # a Text is never parsed as markup: escape() would double a trailing backslash
    console.print(Text("error:", style="red") + Text(f" {redact_text(line)}"),
                  highlight=False, emoji=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def one_line_errors(*kinds: type[Exception]) -> Iterator[None]:
    """An error of ``kinds`` (a bad outlet file, a store that fails) ends the command with its
    message as one line, not a traceback."""
    try:
        yield
    except kinds as exc:
        raise fail(str(exc)) from None


@contextmanager
def opened_store(uri: str) -> Iterator[Store]:
    """The store at ``uri`` for one command, closed after it; its errors are one line."""
    with one_line_errors(StoreError):
        store = open_store(uri)
    try:
        with one_line_errors(StoreError):
            yield store
    finally:
        store.close()


def not_empty(envvar: str) -> Callable[[typer.Context, typer.CallbackParam, str], str]:
    """An option callback: an empty value is an error, and so is an empty ``envvar``, which
    would otherwise silently give the default (e.g. a Redis on localhost)."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
        source = ctx.get_parameter_source(param.name or "")
        env_empty = os.environ.get(envvar) is not None and not os.environ[envvar].strip()
        if source is not None and source.name == "DEFAULT" and env_empty:
            raise fail(f"{envvar} is set but empty")
        if not value.strip():
            raise fail(f"{param.opts[0]} is empty")
        return value

    return check


StoreOpt = Annotated[str, typer.Option("--store", envvar="CRAWLER_STORE", help="Store URI.",
                                       callback=not_empty("CRAWLER_STORE"))]
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
    str, typer.Option("--redis", envvar="CRAWLER_REDIS_URL", help="Redis URL.",
                      callback=not_empty("CRAWLER_REDIS_URL"))
]


def not_empty_env(envvar: str) -> Callable[[typer.Context, typer.CallbackParam, Path | None],
                                            Path | None]:
    """An optional option's callback: an empty ``envvar`` is an error, not "off"."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
        env_empty = os.environ.get(envvar) is not None and not os.environ[envvar].strip()
        source = ctx.get_parameter_source(param.name or "")
        from_env = source is not None and source.name in ("DEFAULT", "ENVIRONMENT")
        if env_empty and from_env:
            raise fail(f"{envvar} is set but empty")
        if value is not None and not str(value).strip():
            raise fail(f"{param.opts[0]} is empty")
        return value

    return check


WarcOpt = Annotated[
    Path | None,
    typer.Option("--warc", envvar="CRAWLER_WARC_DIR", callback=not_empty_env("CRAWLER_WARC_DIR"),
                 help="Also write each stored article's page as the mirror sent it, with its "
                 "request, to WARC files in this directory."),
]
SectionOpt = Annotated[
    list[str] | None, typer.Option("--section", help="Only this section (repeatable).")
]


def load_outlet(outlets_dir: Path | None, name: str, sections: list[str]) -> Outlet:
    """The outlet ``name``, which has every one of ``sections``: else one line."""
    with one_line_errors(OutletError):
        outlet = OutletCatalog.from_setting(outlets_dir).get(name)
    unknown = [s for s in sections if s not in outlet.sections]
    if unknown:
        raise fail(
            f"outlet {name!r} has no section {unknown[0]!r} "
            f"(sections: {', '.join(outlet.sections)})"
        )
    return outlet


def check_store(uri: str) -> None:
    """The store a crawl writes to opens and can be written: else one line, now."""
    with one_line_errors(StoreError):
        store = open_store(uri)
        try:
            store.check_writable()
        finally:
            store.close()


def check_warc_dir(directory: str | None) -> None:
    """WARC files can be written there (it is made if missing): else one line, now."""
    if not directory:
        return
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise fail(f"cannot write WARC files to {path}: {exc.strerror or exc}") from None


def build_settings(overrides: list[str] | None, **values: Any) -> Settings:
    """The project's settings, then the options' ``values``, then -s; a bad -s is one line."""
    from crawler.runner import crawler_settings

    with one_line_errors(ValueError):
        return crawler_settings(overrides or [], **values)


def in_mode(settings: Settings, mode: str) -> None:
    """Run in ``mode``, whatever -s says of it; a setting of the other mode is refused."""
    from crawler.mode import check_mode

    settings.set("CRAWL_MODE", mode, priority="cmdline")
    with one_line_errors(ValueError):
        check_mode(settings)


def connect_redis(settings: Settings, *, retry: bool = False) -> Redis:
    """A client of a Redis that answered PING. One-shot commands keep ``retry=False``: they
    give up on the first timeout (REDIS_PARAMS) instead of retrying a silent server."""
    from redis.exceptions import RedisError

    from crawler.connection import RedisURLError, check_redis_url, redis_client

    try:
        url = check_redis_url(settings.get("REDIS_URL") or "")
        probe = redis_client(settings, retry=False)
        probe.ping()
    except RedisURLError as exc:
        raise fail(str(exc)) from None
    except RedisError as exc:
        raise fail(f"cannot reach Redis at {url}: {exc}") from None
    except (TypeError, ValueError) as exc:  # REDIS_PARAMS that redis-py does not take
        raise fail(f"cannot use REDIS_PARAMS: {exc}") from None
    return probe if not retry else redis_client(settings)


@contextmanager
def redis_errors(settings: Settings) -> Iterator[None]:
    """A Redis that stops answering half-way through a one-shot command: one line."""
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as exc:
        raise fail(f"Redis at {settings.get('REDIS_URL')} failed: {exc}") from None
