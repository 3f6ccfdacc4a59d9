"""The typer app every command module registers on, its global options, and what the commands share:
JSON or rich output, `k=v` options, time options, printing a run or a pipeline run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperGroup

from ..core.errors import SpecError


class PlainHelpGroup(TyperGroup):
    """Click's plain help (rich's help renderer alone cost 0.12 s of each `--help`), listing each
    command's first paragraph whole as the rich help did, not cut at the first stop or ~45 columns."""

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, first_paragraph(command)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def first_paragraph(command) -> str:
    import inspect

    text = inspect.cleandoc(command.short_help or command.help or "").partition("\f")[0]
    return text.split("\n\n")[0].replace("\n", " ").strip()


def typer_app(**settings) -> typer.Typer:
    """A command group with plain help (PlainHelpGroup): the app and its `pipeline` / `kueue` groups."""
    return typer.Typer(cls=PlainHelpGroup, rich_markup_mode=None, no_args_is_help=True, **settings)


app = typer_app(add_completion=True, pretty_exceptions_enable=False,
                help="Cost-aware scheduler for ML training and batch jobs.")
JSON_OPT = typer.Option(False, "--json", help="Print JSON only on stdout.")


def package_version() -> str:
    from importlib.metadata import version

    return version("costwise")  # the installed distribution's, i.e. pyproject.toml's


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"costwise {package_version()}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, "--home", envvar="COSTWISE_HOME", help="Where costwise keeps its files."),
    db: Optional[str] = typer.Option(None, "--db", envvar="COSTWISE_DB", help="Catalog URL (SQLite or PostgreSQL)."),
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="Print the version and exit."),
):
    ctx.obj = CliState(home, db, ctx.obj if isinstance(ctx.obj, dict) else None)
    ctx.call_on_close(ctx.obj.close)


class CliState:
    """The global options; the catalog (AppContext) is opened on first use, the daemon's client found
    on first ask: a command answered by the daemon never imports SQLAlchemy."""

    def __init__(self, home: Optional[Path], db: Optional[str], note: dict | None):
        self.home, self.db, self._note = home, db, note
        self._app = None
        self._daemon: Any = False  # not looked for yet

    def app(self):
        if self._app is None:
            from ..runtime.context import AppContext
            from ..store.settings import Settings

            settings = Settings.resolve(self.home, self.db)
            if self._note is not None:  # run_cli's note of the catalog in use, for its error messages
                self._note["settings"] = settings
            self._app = AppContext(settings)
        return self._app

    def daemon(self):
        """The live daemon's API client (client.py), or None."""
        if self._daemon is False:
            from .client import find_daemon

            self._daemon = find_daemon(self.home, self.db)
        return self._daemon

    def catalog_runs(self, **filters):
        """Store.list_runs(**filters) read straight from a SQLite catalog without SQLAlchemy
        (store/run_rows.py), or None when that reader declines: then the store answers."""
        from ..store.run_rows import read_sqlite_runs, sqlite_path
        from .client import catalog_url

        path = sqlite_path(catalog_url(self.home, self.db))
        return None if path is None else read_sqlite_runs(path, **filters)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def app_context(ctx: typer.Context):
    return ctx.find_root().obj.app()


def thin_client(ctx: typer.Context):
    """The daemon's API client when one is up on this host for this catalog (the thin path), else None."""
    return ctx.find_root().obj.daemon()


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def console():
    from rich.console import Console

    # piped output is 160 wide unless COLUMNS says otherwise (rich reads COLUMNS itself when width is None)
    return Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)


def parse_pairs(pairs: list[str], flag: str, form: str = "KEY=VALUE") -> dict[str, str]:
    """`--flag k=v` options as a dict; a pair without '=' is bad input naming the flag."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--{flag} {pair!r} is not {form}", flag, pair)
        values[key.strip()] = value
    return values


def parse_time_option(flag: str, text: str | None, now):
    """`--since` / `--until`: an ISO time or a duration back from ``now``; bad input names the flag."""
    from ..core.clock import parse_time

    if not text:
        return None
    try:
        return parse_time(text, now)
    except OverflowError:
        raise SpecError(f"--{flag}: {text!r} is too far back", flag, text) from None
    except ValueError as exc:
        raise SpecError(f"--{flag}: {exc}", flag, text) from None


def print_run(record, as_json: bool) -> None:
    """A run record, or its public JSON (from the daemon's API)."""
    public = record if isinstance(record, dict) else record.public()
    if as_json:
        return emit(public)
    from ..reporting.views import runs_table
    from .client import view

    console().print(runs_table([view(public)], title="run"))


def print_pipeline_run(runner, record, as_json: bool) -> None:
    if as_json:
        return emit(record)
    from ..reporting.views import pipeline_tree

    console().print(pipeline_tree(runner, record))


QUEUED_WITHOUT_DAEMON = "queued; no daemon dispatches it until `costwise daemon` runs (use --wait to run it now)"
