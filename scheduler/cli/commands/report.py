"""`costwise report`: the cost report over finished runs, as CSV, HTML, JSON, Parquet or FOCUS."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...core.errors import SpecError
from ...core.money import usd
from ..app import JSON_OPT, app, app_context, console, emit, parse_time_option


@app.command()
def report(
    ctx: typer.Context,
    fmt: str = typer.Option(..., "--format", help="csv (breakdown), html (with charts), json, parquet (per run), focus (FOCUS CSV)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time or a duration back from now (e.g. 7d)."),
    until: Optional[str] = typer.Option(None, "--until", help="ISO time or a duration back from now."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Run fields (job, pipeline, step, shape, backend, state, day, week, month) or labels, e.g. team,job."),
    charge_period: str = typer.Option("month", "--charge-period", help="focus: split runs at month boundaries (FOCUS billing periods) or at every day."),
    focus_version: str = typer.Option("1.2", "--focus-version", help="focus: the FOCUS version's columns, 1.2 or 1.3 (1.3 adds ServiceProviderName and HostProviderName)."),
    as_json: bool = JSON_OPT,
):
    """Cost report over the runs that finished in [since, until): spend, idle spend, savings, right-sizing."""
    from ...reporting.report import write_report

    app_ctx = app_context(ctx)
    now = app_ctx.clock.now()
    since_dt = parse_time_option("since", since, now)
    until_dt = parse_time_option("until", until, now)
    if not out.parent.is_dir():
        raise SpecError(f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist", "out", str(out))
    if since_dt and until_dt and since_dt >= until_dt:
        raise SpecError(f"--since {since!r} is not before --until {until!r}", "since", since)
    summary = write_report(app_ctx.store, fmt, out, since_dt, until_dt, group_by, now,
                           charge_period=charge_period.lower(), focus_version=focus_version.strip())
    if as_json:
        return emit(summary)
    console().print(f"wrote {summary['format']} report of {summary['runs']:,} runs ({usd(summary['cost_usd'])}) to {summary['path']}")
