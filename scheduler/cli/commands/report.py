"""`costwise report`: the cost report over finished runs, as CSV, HTML, JSON, Parquet or FOCUS."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...core.errors import SpecError
from ...core.extras import Extra, require
from ...core.money import usd
from ..app import JSON_OPT, app, app_context, console, emit, parse_time_option

COLUMNAR_FORMATS = ("parquet", "focus")


@app.command()
def report(
    ctx: typer.Context,
    fmt: str = typer.Option(..., "--format", help="csv (breakdown), html (with charts), json, parquet (per run), focus (FOCUS CSV), table (the summary alone, no file)."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write (every format but table)."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time or a duration back from now (e.g. 7d)."),
    until: Optional[str] = typer.Option(None, "--until", help="ISO time or a duration back from now."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Run fields (job, pipeline, step, shape, backend, state, day, week, month) or labels, e.g. team,job."),
    charge_period: str = typer.Option("month", "--charge-period", help="focus: split runs at month boundaries (FOCUS billing periods) or at every day."),
    focus_version: str = typer.Option("1.2", "--focus-version", help="focus: the FOCUS version's columns, 1.2 or 1.3 (1.3 adds ServiceProviderName and HostProviderName)."),
    as_json: bool = JSON_OPT,
):
    """Cost report over the runs that finished in [since, until): spend, idle spend, savings, right-sizing,
    and a summary of what changed since the period before (same length) and why."""
    from ...reporting.report import FORMATS, TABLE, build_report, write_report
    from ...reporting.report_summary import summary_lines

    app_ctx = app_context(ctx)
    now = app_ctx.clock.now()
    fmt = (fmt or "").lower()
    since_dt = parse_time_option("since", since, now)
    until_dt = parse_time_option("until", until, now)
    if out is None and fmt != TABLE:
        raise SpecError(f"--out is needed for --format {fmt!r} (only --format table prints without a file)", "out", None)
    if out is not None and not out.parent.is_dir():
        raise SpecError(f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist", "out", str(out))
    if since_dt and until_dt and since_dt >= until_dt:
        raise SpecError(f"--since {since!r} is not before --until {until!r}", "since", since)
    if fmt == TABLE:
        built = build_report(app_ctx.store, since_dt, until_dt, group_by, now)
        return emit(built.to_dict()) if as_json else _print_summary(summary_lines(built))
    if fmt in COLUMNAR_FORMATS:  # written through Arrow
        require("pyarrow", Extra.FAST_REPORTS, f"--format {fmt}")
    # built before the file (a bad --group-by writes nothing), and reused to write it
    built = build_report(app_ctx.store, since_dt, until_dt, group_by, now) if fmt in FORMATS and not as_json else None
    summary = write_report(app_ctx.store, fmt, out, since_dt, until_dt, group_by, now,
                           charge_period=charge_period.lower(), focus_version=focus_version.strip(), report=built)
    if as_json:
        return emit(summary)
    console().print(f"wrote {summary['format']} report of {summary['runs']:,} runs ({usd(summary['cost_usd'])}) to {summary['path']}")
    _print_summary(summary_lines(built))


def _print_summary(lines: list[str]) -> None:
    out = console()
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
