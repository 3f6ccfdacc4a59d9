"""`costwise run`, `runs`, `show`, `logs`, `cancel` and `preempt`: start a run and look at the history."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from ...core.bounds import RUNS_LIMIT_MAX
from ...core.errors import SpecError, UserError
# thin.py and client.py are imported where a command uses them: `--help` needs neither
from ..app import (QUEUED_WITHOUT_DAEMON, JSON_OPT, app, app_context, console, emit, parse_pairs,
                   parse_time_option, print_pipeline_run, print_run, thin_client)

RUNS_QUERY_MAX = 10_000  # the most runs GET /runs answers; a longer listing reads the catalog


def make_overrides(env, args, shape, max_runtime):
    from ...core.specs import parse_overrides

    return parse_overrides({"env": parse_pairs(env or [], "env"), "args": list(args or []), "shape": shape,
                            "max_runtime": max_runtime})


def _progress_printer(as_json: bool, log_path, quiet: bool):
    """The job's new output lines (unless quiet) and, on a terminal without --json, a live status line."""
    from ...daemon.api_follow import LogTail
    from .. import thin

    tail, show = LogTail(log_path), thin.line_printer(as_json, quiet)
    status = None
    if not as_json and sys.stderr.isatty():
        from rich.console import Console
        from rich.status import Status

        status = Status("queued", console=Console(stderr=True))
        status.start()

    def update(run, elapsed, final: bool = False):
        for text in tail.lines(final=final) if show else ():
            show(text)
        if status is not None and not final:
            from ...core.durations import format_duration
            from ...reporting.views import money

            cost = (run.price_per_hour or 0) * elapsed / 3600
            status.update(f"{run.id} {run.job} {run.state.lower()} on {run.shape or '(waiting for a shape)'} "
                          f"· {format_duration(elapsed)} · {money(cost)}")

    return update, status


@app.command()
def run(
    ctx: typer.Context,
    job: str = typer.Argument(...),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE, repeatable."),
    arg: list[str] = typer.Option([], "--arg", help="Replaces the job's args; repeatable."),
    shape: Optional[str] = typer.Option(None, "--shape", help="Pin this run to a shape."),
    max_runtime: Optional[str] = typer.Option(None, "--max-runtime", help="e.g. 90s, 10m, 2h."),
    wait: bool = typer.Option(False, "--wait", help="Run it now and wait for the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="With --wait: do not print the job's output lines."),
    sync: bool = typer.Option(False, "--sync", help="Re-apply the job first if its artifact changed on disk."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be launched; launch nothing."),
    estimate: bool = typer.Option(False, "--estimate", help="Print the expected shape, duration and cost; launch nothing."),
    as_json: bool = JSON_OPT,
):
    """Start a run of a job."""
    if estimate:  # read from the catalog (never the daemon): nothing is launched or stored
        from ...runtime.estimates import estimate_run
        from ..estimates import print_job_estimate

        overrides = make_overrides(env, arg, shape, max_runtime)
        return print_job_estimate(estimate_run(app_context(ctx).engine, job, overrides), as_json)
    client = None if dry_run else thin_client(ctx)
    from .. import thin

    if client is not None:
        from ..client import Unreachable

        try:
            thin.check_artifacts(client.call("GET", "/artifacts", query={"job": job}), sync, lambda: app_context(ctx))
            body = {"job": job, "env": parse_pairs(env or [], "env"), "args": list(arg or []), "shape": shape,
                    "max_runtime": max_runtime}
            return thin.run(client, body, wait, quiet, as_json)
        except Unreachable:
            pass  # gone since its last beat: the catalog answers
    app_ctx = app_context(ctx)
    overrides = make_overrides(env, arg, shape, max_runtime)
    engine = app_ctx.engine
    if dry_run:
        plan = engine.dry_run(job, overrides)
        return emit(plan) if as_json else console().print_json(json.dumps(plan, default=str))
    from ...daemon.loop import daemon_url

    thin.check_artifacts(thin.job_artifacts(app_ctx, job), sync, lambda: app_ctx)
    up = daemon_url(app_ctx.store)
    record = engine.submit(job, overrides, message="queued from the CLI" + (" for the daemon" if up else ""))
    if up:
        from ..client import notify

        notify(app_ctx.settings.home, app_ctx.settings.db_url)
    if not wait:
        if not as_json and not up:
            typer.echo(QUEUED_WITHOUT_DAEMON, err=True)
        return print_run(record, as_json)
    update, status = _progress_printer(as_json, app_ctx.settings.run_dir(record.id) / "run.log", quiet)
    try:
        final = engine.wait_for(record.id, progress=update) if up else engine.run_to_completion(record, update)
        update(final, 0.0, final=True)
    except KeyboardInterrupt:
        engine.cancel(record.id, wait=True)
        raise
    finally:
        if status:
            status.stop()
    if not up:
        raise_missing_extra(engine, final)
    print_run(final, as_json)
    raise typer.Exit(0 if final.state == "SUCCEEDED" else 1)


def raise_missing_extra(engine, run) -> None:
    """The MissingExtra (exit 2, one line naming the extra) when ``run`` failed before it launched and its
    backend's library is not installed here: this process launched it, so that is why (the record keeps
    the reason too). A daemon's launches are its own environment's: their record answers."""
    from ...core.runs import FAILED

    if run.state == FAILED and run.started_at is None and run.backend:
        engine.executor(run.backend)  # raises MissingExtra when the backend's extra is missing


@app.command()
def runs(
    ctx: typer.Context,
    job: Optional[str] = typer.Option(None, "--job"),
    state: Optional[str] = typer.Option(None, "--state"),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time or a duration back from now (e.g. 2h)."),
    limit: int = typer.Option(50, "--limit"),
    wide: bool = typer.Option(False, "--wide", help="Every column in full, however wide the table gets."),
    as_json: bool = JSON_OPT,
):
    """The run history, newest first."""
    if state:
        from ...core.runs import ALL_STATES  # only then: it imports secrets and the run record (~10 ms)

        if state.upper() not in ALL_STATES:
            raise SpecError(f"--state {state!r} is not one of {', '.join(ALL_STATES)}", "state", state)
    if not 1 <= limit <= RUNS_LIMIT_MAX:
        raise SpecError(f"--limit {limit} is not between 1 and {RUNS_LIMIT_MAX}", "limit", limit)
    from datetime import datetime, timezone

    since_dt = parse_time_option("since", since, datetime.now(timezone.utc))
    client = thin_client(ctx)
    if client is not None and limit <= RUNS_QUERY_MAX:
        from .. import thin
        from ..client import Unreachable

        query = {"job": job, "state": state.upper() if state else None, "limit": limit,
                 "since": since_dt.isoformat() if since_dt else None}
        try:
            return thin.runs(client, query, as_json, wide)
        except Unreachable:
            pass
    filters = {"job": job, "state": state.upper() if state else None, "since": since_dt, "limit": limit}
    records = ctx.find_root().obj.catalog_runs(**filters)
    if records is None:
        records = app_context(ctx).store.list_runs(**filters)
    if as_json:
        return emit([r.public() for r in records])
    from ...reporting.views import print_table, runs_table

    print_table(console(), runs_table(records, wide=wide), wide)


@app.command()
def show(ctx: typer.Context, run_id: str = typer.Argument(...), as_json: bool = JSON_OPT):
    """One run in full: placement reasons, usage, cost, events."""
    if (client := thin_client(ctx)) is not None:
        from .. import thin
        from ..client import Unreachable

        try:
            return thin.show(client, run_id, as_json, _print_detail)
        except Unreachable:
            pass
    from ...core.clock import iso
    from ...core.costs import spend_summary

    app_ctx = app_context(ctx)
    if run_id.startswith("p-"):
        from ...runtime.pipeline_runner import PipelineRunner

        runner = PipelineRunner(app_ctx.engine)
        return print_pipeline_run(runner, runner.record(run_id), as_json)
    record = app_ctx.store.get_run(run_id)
    events = app_ctx.store.events(run_id)
    spend = spend_summary(record, app_ctx.store.get("Shape", record.shape) if record.shape else None)
    events = [{"at": iso(e["at"]), "state": e["state"], "message": e["message"]} for e in events]
    if as_json:
        return emit({**record.detail(), "spend": spend, "events": events})
    _print_detail(record, spend, events, _local_sweep(app_ctx.store, record))


def _local_sweep(store, record):
    """(summary, trials) of a sweep step's record, its trials read from the catalog; None for other runs."""
    summary = record.extra.get("sweep")
    if summary is None or not record.pipeline_run:
        return None
    trials = [{**r.public(), "trial": r.extra["trial"], "objective": r.extra.get("objective"),
               "trial_index": r.extra.get("trial_index", i)}
              for i, r in enumerate(store.list_runs(pipeline_run=record.pipeline_run, newest_first=False))
              if r.step == record.step and "trial" in r.extra]
    return summary, sorted(trials, key=lambda t: t["trial_index"])


def _print_detail(record, spend, events, sweep=None) -> None:
    """``events`` with ISO times (as the API answers them); ``sweep``: (summary, trials) of a sweep step."""
    from ...core.costs import spend_line
    from ...core.money import usd, usd_price
    from ...reporting.views import runs_table, sweep_table

    out = console()
    out.print(runs_table([record], title=f"run {record.id}"))
    out.print(spend_line(spend))
    placement = record.placement or {}
    if placement.get("reason"):
        out.print(f"placement: {placement['reason']}")
    for alt in placement.get("alternatives", []):
        # spot-allowed jobs list each shape's two offers: say which market (price_per_hour is its price)
        market = f" {alt['market'].replace('_', '-')}" if alt.get("market") else ""
        closed = "" if alt.get("market_open", True) else f", closed: {alt.get('market_reason')}"
        out.print(f"  {alt['shape']:<24}{market} {usd_price(alt['price_per_hour'])}/h  expected {usd(alt['expected_cost_usd'])} "
                  f"({alt['duration_source']}{closed})")
    _print_market(out, record, placement)
    if sweep is not None:
        out.print(sweep_table(*sweep))
    out.print(f"artifacts: {record.artifacts_dir or '-'}")
    for e in events:
        out.print(f"  {e['at']}  {e['state'] or '':<10} {e['message'] or ''}")


def _print_market(out, record, placement) -> None:
    from ...core.money import usd, usd_price

    if placement.get("market_reason"):
        out.print(f"market: {placement['market_reason']}")
    out.print(f"market {record.market} · attempts {record.attempts} · preemptions {record.preemptions} "
              f"· lost {record.lost_s:.1f}s")
    for a in record.extra.get("attempt_log", []):
        out.print(f"  attempt {a['attempt']} {a['state']:<10} {a['market']:<9} {usd_price(a['price_per_hour'])}/h "
                  f"{a['seconds']:.1f}s {usd(a['cost_usd'])}, lost {a['lost_s']:.1f}s")


@app.command()
def logs(ctx: typer.Context, run_id: str = typer.Argument(...), follow: bool = typer.Option(False, "--follow", "-f")):
    """Print a run's log (stdout and stderr)."""
    import time

    if (client := thin_client(ctx)) is not None:
        from .. import thin
        from ..client import Unreachable, resolve_home, segment

        try:
            log_path = resolve_home(ctx.find_root().obj.home) / "runs" / segment(run_id) / "run.log"
            return thin.logs(client, log_path, run_id, follow)
        except Unreachable:
            pass
    app_ctx = app_context(ctx)
    record = app_ctx.store.get_run(run_id)
    path = app_ctx.settings.run_dir(run_id) / "run.log"
    if not path.exists():
        if record.finished:
            return
        raise UserError(f"run {run_id!r} has no log yet (state {record.state})")
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                continue
            if not follow or app_ctx.store.get_run(run_id).finished:
                break
            time.sleep(0.3)


@app.command()
def cancel(ctx: typer.Context, run_id: str = typer.Argument(...), as_json: bool = JSON_OPT):
    """Cancel a run (or a pipeline run): SIGTERM, then SIGKILL after the job's stop_grace."""
    if (client := thin_client(ctx)) is not None:
        from .. import thin
        from ..client import Unreachable

        try:
            return thin.cancel(client, run_id, as_json)
        except Unreachable:
            pass
    if run_id.startswith("p-"):
        from ...runtime.pipeline_runner import PipelineRunner

        runner = PipelineRunner(app_context(ctx).engine)
        return print_pipeline_run(runner, runner.cancel(run_id), as_json)
    record = app_context(ctx).engine.cancel(run_id, wait=True)
    print_run(record, as_json)


@app.command()
def preempt(ctx: typer.Context, run_id: str = typer.Argument(...), as_json: bool = JSON_OPT):
    """End a running spot attempt as the market would (admin, tests and drills): the run is queued again."""
    from ...runtime.preempt import preempt as preempt_run

    print_run(preempt_run(app_context(ctx).engine, run_id), as_json)
