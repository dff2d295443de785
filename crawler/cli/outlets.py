"""`crawler outlets`: list the outlets and validate their files; `outlets init` drafts one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crawler.cli.common import OutletsDirOpt, console, fail, one_line_errors
from crawler.core.outlets import OutletCatalog, OutletError

outlets_app = typer.Typer(help="List the outlets and validate their files; start new ones.",
                          invoke_without_command=True, no_args_is_help=False)


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
    with one_line_errors(OutletError):
        catalog = OutletCatalog.from_setting(outlets_dir)
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
