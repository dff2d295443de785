"""The `crawler` command (see README.md: "Commands"), one module per group of commands.

An option's default that is also a setting is read from crawler/settings.py, so that the two
cannot drift apart."""

from __future__ import annotations

import typer

from crawler.cli import crawl, distributed, mirrors, outlets, store
from crawler.cli.common import console, fail
from crawler.core.redact import install_log_redaction

__all__ = ["app", "console", "fail", "main"]

app = typer.Typer(
    help="Crawl news outlets' sections into clean articles, across mirror domains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# `crawler --help` lists the commands in the order they are added here
app.command()(crawl.crawl)
app.command()(distributed.schedule)
app.command()(distributed.unschedule)
app.command()(distributed.beat)
app.command()(distributed.worker)
app.command()(distributed.status)
app.command()(store.export)
app.command()(store.history)
app.command()(mirrors.mirrors)
app.command()(store.rekey)
app.command()(crawl.demo)
app.add_typer(outlets.outlets_app, name="outlets")


def main() -> None:
    install_log_redaction()
    app()
