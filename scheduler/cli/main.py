"""The `costwise` command line: parse, call the core, print (rich tables or --json), map errors to exit codes."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..core.bounds import MISFIRE_GRACE_MAX_S, RUNS_LIMIT_MAX
from ..core.errors import CostwiseError, SpecError, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Cost-aware scheduler for ML training and batch jobs.")
JSON_OPT = typer.Option(False, "--json", help="Print JSON only on stdout.")


def _ctx(ctx: typer.Context):
    return ctx.obj


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, "--home", envvar="COSTWISE_HOME", help="Where costwise keeps its files."),
    db: Optional[str] = typer.Option(None, "--db", envvar="COSTWISE_DB", help="Catalog URL (SQLite or PostgreSQL)."),
):
    from ..runtime.context import AppContext
    from ..store.settings import Settings

    settings = Settings.resolve(home, db)
    if isinstance(ctx.obj, dict):  # run_cli's note of the catalog in use, for its error messages
        ctx.obj["settings"] = settings
    ctx.obj = AppContext(settings)
    ctx.call_on_close(ctx.obj.close)


# -- catalog ---------------------------------------------------------------------------------------
@app.command()
def apply(ctx: typer.Context, files: list[Path] = typer.Argument(..., help="YAML or JSON documents."), as_json: bool = JSON_OPT):
    """Create or update shapes, jobs and pipelines from documents (all or nothing)."""
    from ..store.catalog import apply_documents, load_documents

    app_ctx = _ctx(ctx)
    results = apply_documents(load_documents(files), app_ctx.store, app_ctx.settings)
    if as_json:
        return emit(results)
    for r in results:
        console().print(f"{r['kind']:<9} {r['name']:<24} {r['result']}")


@app.command()
def delete(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="shape, job or pipeline"),
    name: str = typer.Argument(...),
    cancel_runs: bool = typer.Option(False, "--cancel-runs", help="Cancel live runs instead of refusing."),
    as_json: bool = JSON_OPT,
):
    """Remove a shape, job or pipeline from the catalog."""
    from ..store.catalog import delete_entry

    app_ctx = _ctx(ctx)
    delete_entry(app_ctx.store, kind, name, cancel_runs=cancel_runs, engine=app_ctx.engine)
    if as_json:
        return emit({"kind": kind.capitalize(), "name": name, "result": "deleted"})
    console().print(f"deleted {kind.lower()} {name}")


def parse_fit(text: str):
    from pydantic import ValidationError

    from ..core.specs import Requirements, describe_error

    aliases = {"memory": "memory_gib", "mem": "memory_gib", "gpu_memory": "gpu_memory_gib", "cpu": "cpus", "gpu": "gpus"}
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise SpecError(f"--fit: {part!r} is not key=value (e.g. cpus=4,memory=16)", "fit", part)
        values[aliases.get(key.strip(), key.strip())] = value.strip()
    try:
        return Requirements.model_validate(values)
    except ValidationError as exc:
        raise describe_error(exc, Requirements, "--fit") from None


@app.command()
def shapes(
    ctx: typer.Context,
    fit: Optional[str] = typer.Option(None, "--fit", help="e.g. cpus=4,memory=16,gpus=1,gpu_type=A10"),
    job: Optional[str] = typer.Option(None, "--job", help="Rank with this job's duration history."),
    as_json: bool = JSON_OPT,
):
    """The catalog's shapes, or the ones that fit ranked by expected cost, with reasons."""
    from ..core import placement
    from ..reporting.views import fit_table, shapes_table

    app_ctx = _ctx(ctx)
    store = app_ctx.store
    all_shapes = store.list("Shape")
    if fit is None and job is None:
        if as_json:
            return emit([s.model_dump(mode="json") for s in sorted(all_shapes, key=lambda s: (s.price_per_hour, s.name))])
        return console().print(shapes_table(sorted(all_shapes, key=lambda s: (s.price_per_hour, s.name))))
    job_spec = store.require("Job", job) if job else None
    requirements = parse_fit(fit) if fit else job_spec.requirements
    req = placement.PlacementRequest(
        job=job or "?", requirements=requirements, has_image=bool(job_spec and job_spec.image) or fit is not None,
        declared_duration_s=job_spec.expected_duration if job_spec else None,
    )
    history = store.duration_history(job) if job else {}
    expl = placement.explain(req, all_shapes, store.in_use_by_shape(), history)
    if as_json:
        return emit([
            {"rank": i, "shape": c.shape, "backend": c.backend, "price_per_hour": c.price_per_hour,
             "expected_duration_s": c.expected_duration_s, "duration_source": c.duration_source,
             "expected_cost_usd": c.expected_cost_usd, "free_slots": c.free_slots, "fits": True,
             "reason": "cheapest" if i == 1 else f"costs more than {expl.ranked[0].shape}"}
            for i, c in enumerate(expl.ranked, 1)
        ] + [{"shape": n, "fits": False, "reason": "; ".join(p)} for n, p in expl.rejected])
    out = console()
    if expl.ranked:
        out.print(fit_table(expl))
        best = expl.ranked[0]
        out.print(f"chosen: [bold]{best.shape}[/] — cheapest expected cost among {len(expl.ranked)} fitting shape(s)")
    else:
        out.print("[red]no shape fits[/]")
    for name, problems in expl.rejected:
        out.print(f"  [dim]{name}: {'; '.join(problems)}[/]")


# -- runs ------------------------------------------------------------------------------------------
def parse_pairs(pairs: list[str], flag: str, form: str = "KEY=VALUE") -> dict[str, str]:
    """`--flag k=v` options as a dict; a pair without '=' is bad input naming the flag."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--{flag} {pair!r} is not {form}", flag, pair)
        values[key.strip()] = value
    return values


def parse_env(pairs: list[str]) -> dict[str, str]:
    return parse_pairs(pairs, "env")


def make_overrides(env, args, shape, max_runtime):
    from ..core.specs import parse_overrides

    return parse_overrides({"env": parse_env(env or []), "args": list(args or []), "shape": shape,
                            "max_runtime": max_runtime})


def _progress_printer(as_json: bool):
    """A live status line on a terminal; nothing when piped or with --json."""
    if as_json or not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.status import Status

    from ..core.durations import format_duration
    from ..reporting.views import money

    status = Status("queued", console=Console(stderr=True))
    status.start()

    def update(run, elapsed):
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
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be launched; launch nothing."),
    as_json: bool = JSON_OPT,
):
    """Start a run of a job."""
    app_ctx = _ctx(ctx)
    overrides = make_overrides(env, arg, shape, max_runtime)
    engine = app_ctx.engine
    if dry_run:
        plan = engine.dry_run(job, overrides)
        return emit(plan) if as_json else console().print_json(json.dumps(plan, default=str))
    from ..daemon.loop import daemon_url

    up = daemon_url(app_ctx.store)
    record = engine.submit(job, overrides, message="queued from the CLI" + (" for the daemon" if up else ""))
    if not wait:
        if not as_json and not up:
            typer.echo("queued; no daemon dispatches it until `costwise daemon` runs (use --wait to run it now)", err=True)
        return _print_run(record, as_json)
    update, status = _progress_printer(as_json)
    try:
        final = engine.wait_for(record.id, progress=update) if up else engine.run_to_completion(record, update)
    except KeyboardInterrupt:
        engine.cancel(record.id, wait=True)
        raise
    finally:
        if status:
            status.stop()
    _print_run(final, as_json)
    raise typer.Exit(0 if final.state == "SUCCEEDED" else 1)


def _time_problem(text: str, exc: Exception) -> str:
    if isinstance(exc, OverflowError):
        return f"{text!r} is too far back"
    return str(exc)


def _print_run(record, as_json: bool) -> None:
    if as_json:
        return emit(record.public())
    from ..reporting.views import runs_table

    console().print(runs_table([record], title="run"))


@app.command()
def runs(
    ctx: typer.Context,
    job: Optional[str] = typer.Option(None, "--job"),
    state: Optional[str] = typer.Option(None, "--state"),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time or a duration back from now (e.g. 2h)."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JSON_OPT,
):
    """The run history, newest first."""
    from ..core.clock import parse_time
    from ..core.runs import ALL_STATES
    from ..reporting.views import runs_table

    app_ctx = _ctx(ctx)
    if state and state.upper() not in ALL_STATES:
        raise SpecError(f"--state {state!r} is not one of {', '.join(ALL_STATES)}", "state", state)
    if not 1 <= limit <= RUNS_LIMIT_MAX:
        raise SpecError(f"--limit {limit} is not between 1 and {RUNS_LIMIT_MAX}", "limit", limit)
    try:
        since_dt = parse_time(since, app_ctx.clock.now()) if since else None
    except (ValueError, OverflowError) as exc:
        raise SpecError(f"--since: {_time_problem(since, exc)}", "since", since) from None
    records = app_ctx.store.list_runs(job=job, state=state.upper() if state else None, since=since_dt, limit=limit)
    if as_json:
        return emit([r.public() for r in records])
    console().print(runs_table(records))


@app.command()
def show(ctx: typer.Context, run_id: str = typer.Argument(...), as_json: bool = JSON_OPT):
    """One run in full: placement reasons, usage, cost, events."""
    from ..core.clock import iso
    from ..reporting.views import runs_table

    app_ctx = _ctx(ctx)
    if run_id.startswith("p-"):
        from ..runtime.pipeline_runner import PipelineRunner

        runner = PipelineRunner(app_ctx.engine)
        return _print_pipeline_run(runner, runner.record(run_id), as_json)
    record = app_ctx.store.get_run(run_id)
    events = app_ctx.store.events(run_id)
    from ..core.costs import spend_line, spend_summary

    spend = spend_summary(record, app_ctx.store.get("Shape", record.shape) if record.shape else None)
    if as_json:
        return emit({**record.detail(), "spend": spend, "events": [{"at": iso(e["at"]), "state": e["state"], "message": e["message"]} for e in events]})
    out = console()
    out.print(runs_table([record], title=f"run {run_id}"))
    out.print(spend_line(spend))
    placement = record.placement or {}
    if placement.get("reason"):
        out.print(f"placement: {placement['reason']}")
    for alt in placement.get("alternatives", []):
        cost = "-" if alt["expected_cost_usd"] is None else f"${alt['expected_cost_usd']:.4f}"
        out.print(f"  {alt['shape']:<24} ${alt['price_per_hour']:.4g}/h  expected {cost} ({alt['duration_source']})")
    out.print(f"artifacts: {record.artifacts_dir or '-'}")
    for e in events:
        out.print(f"  {iso(e['at'])}  {e['state'] or '':<10} {e['message'] or ''}")


@app.command()
def logs(ctx: typer.Context, run_id: str = typer.Argument(...), follow: bool = typer.Option(False, "--follow", "-f")):
    """Print a run's log (stdout and stderr)."""
    import time

    app_ctx = _ctx(ctx)
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
    if run_id.startswith("p-"):
        from ..runtime.pipeline_runner import PipelineRunner

        runner = PipelineRunner(_ctx(ctx).engine)
        return _print_pipeline_run(runner, runner.cancel(run_id), as_json)
    record = _ctx(ctx).engine.cancel(run_id, wait=True)
    _print_run(record, as_json)


@app.command()
def daemon(
    ctx: typer.Context,
    metrics_port: int = typer.Option(9464, "--metrics-port", "--port", help="Port of the HTTP API and /metrics."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; off loopback a token is required."),
    token: Optional[str] = typer.Option(None, "--token", envvar="COSTWISE_API_TOKEN", help="Bearer token for the API."),
    misfire_grace: Optional[str] = typer.Option(None, "--misfire-grace", help="Skip fires later than this (e.g. 10m); "
                                                "default: a late fire runs once, coalesced."),
    alert: list[str] = typer.Option([], "--alert", help="ALERTNAME=PIPELINE: Alertmanager alerts that start a pipeline."),
    log_level: str = typer.Option("INFO", "--log-level"),
):
    """Run the scheduler daemon: schedules, dispatch, deadlines, restarts, HTTP API and /metrics."""
    import logging

    from ..daemon.loop import Daemon
    from ..core.durations import parse_duration

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    alert_map = parse_pairs(alert, "alert", "ALERTNAME=PIPELINE")
    try:
        grace = parse_duration(misfire_grace, "misfire-grace") if misfire_grace else None
    except ValueError as exc:
        raise SpecError(f"--{exc}", "misfire-grace", misfire_grace) from None
    if grace is not None and not 1 <= grace <= MISFIRE_GRACE_MAX_S:
        raise SpecError(f"--misfire-grace {misfire_grace!r} is not between 1s and 30d", "misfire-grace", misfire_grace)
    runner = Daemon(_ctx(ctx).settings, host, metrics_port, token, grace, alert_map)
    runner.install_signal_handlers()
    raise typer.Exit(runner.run())


pipeline_app = typer.Typer(no_args_is_help=True, help="Run pipelines and look at their runs.")
app.add_typer(pipeline_app, name="pipeline")


def parse_params(pairs: list[str]) -> dict[str, str]:
    return parse_pairs(pairs, "param", "key=value")


@pipeline_app.command("run")
def pipeline_run(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    param: list[str] = typer.Option([], "--param", help="k=v, parsed to the default's type; repeatable."),
    force_step: list[str] = typer.Option([], "--force-step", help="Rerun this step even if cached; repeatable."),
    force_all: bool = typer.Option(False, "--force-all", help="Rerun every step."),
    wait: bool = typer.Option(False, "--wait", help="Run it now and wait for the end."),
    as_json: bool = JSON_OPT,
):
    """Start a pipeline run: steps in dependency order, unchanged ones reused from the cache."""
    from ..runtime.pipeline_runner import PipelineRunner

    from ..daemon.loop import daemon_url

    app_ctx = _ctx(ctx)
    runner = PipelineRunner(app_ctx.engine)
    prun = runner.submit(name, parse_params(param), force_step, force_all)
    up = daemon_url(app_ctx.store)
    if not wait:
        if not as_json and not up:
            typer.echo("queued; no daemon dispatches it until `costwise daemon` runs (use --wait to run it now)", err=True)
        return _print_pipeline_run(runner, runner.record(prun["id"]), as_json)
    progress = None
    if not as_json and sys.stderr.isatty():
        progress = lambda step, rec: typer.echo(f"  {step:<16} {rec.state:<10} {rec.shape or ''}", err=True)  # noqa: E731
    record = runner.wait_for(prun["id"]) if up else runner.execute(prun["id"], progress)
    _print_pipeline_run(runner, record, as_json)
    raise typer.Exit(0 if record["state"] == "SUCCEEDED" else 1)


@pipeline_app.command("runs")
def pipeline_runs(ctx: typer.Context, name: Optional[str] = typer.Argument(None), as_json: bool = JSON_OPT):
    """Pipeline runs, newest first."""
    from ..runtime.pipeline_runner import PipelineRunner

    runner = PipelineRunner(_ctx(ctx).engine)
    records = [runner.record(p["id"]) for p in runner.runs.list(pipeline=name)]
    if as_json:
        return emit(records)
    from ..reporting.views import pipeline_runs_table

    console().print(pipeline_runs_table(records))


def _print_pipeline_run(runner, record, as_json: bool) -> None:
    if as_json:
        return emit(record)
    from ..reporting.views import pipeline_tree

    console().print(pipeline_tree(runner, record))


@app.command()
def demo(ctx: typer.Context, as_json: bool = JSON_OPT):
    """Declare example shapes and jobs, run them, and show where they ran and what they cost."""
    from .demo import run_demo

    code = run_demo(_ctx(ctx), as_json=as_json)
    raise typer.Exit(code)


@app.command()
def report(
    ctx: typer.Context,
    fmt: str = typer.Option(..., "--format", help="csv (breakdown), html (with charts), json, parquet (per run), focus (FOCUS CSV)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO time or a duration back from now (e.g. 7d)."),
    until: Optional[str] = typer.Option(None, "--until", help="ISO time or a duration back from now."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Run fields (job, pipeline, step, shape, backend, state, day, week, month) or labels, e.g. team,job."),
    charge_period: str = typer.Option("month", "--charge-period", help="focus: split runs at month boundaries (FOCUS billing periods) or at every day."),
    as_json: bool = JSON_OPT,
):
    """Cost report over the runs that finished in [since, until): spend, idle spend, savings, right-sizing."""
    from ..core.clock import parse_time
    from ..reporting.report import write_report

    app_ctx = _ctx(ctx)
    now = app_ctx.clock.now()
    bounds = {}
    for name, text in (("since", since), ("until", until)):
        try:
            bounds[name] = parse_time(text, now) if text else None
        except (ValueError, OverflowError) as exc:
            raise SpecError(f"--{name}: {_time_problem(text, exc)}", name, text) from None
    if not out.parent.is_dir():
        raise SpecError(f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist", "out", str(out))
    if bounds["since"] and bounds["until"] and bounds["since"] >= bounds["until"]:
        raise SpecError(f"--since {since!r} is not before --until {until!r}", "since", since)
    summary = write_report(app_ctx.store, fmt, out, bounds["since"], bounds["until"], group_by, now,
                           charge_period=charge_period.lower())
    if as_json:
        return emit(summary)
    console().print(f"wrote {summary['format']} report of {summary['runs']:,} runs (${summary['cost_usd']:,.2f}) to {summary['path']}")


# Where the environment, not costwise, is at fault: an unwritable or read-only home, a full disk.
ENVIRONMENT_ERRNOS = frozenset({
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR,
    errno.ENAMETOOLONG, errno.ELOOP,
})


def _database_errors() -> tuple[type[BaseException], ...]:
    # evaluated only when an exception reaches the clause: the CLI starts without SQLAlchemy
    from sqlalchemy.exc import OperationalError

    return (OperationalError,)


def run_cli(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code; the one place errors become exit codes and
    one line on stderr. Errors not listed here are bugs, and keep their traceback."""
    seen: dict[str, Any] = {}
    try:
        code = app(args=argv, prog_name="costwise", standalone_mode=False, obj=seen)  # typer.Exit's code
        return code if isinstance(code, int) else 0
    except CostwiseError as exc:
        return _refuse(str(exc), exc.exit_code)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.TyperException as exc:  # usage errors from typer's bundled click
        message = exc.format_message() if hasattr(exc, "format_message") else ""
        if "\n" in message or not message:  # the help a bare command asks for, as click prints it
            if hasattr(exc, "show"):
                exc.show()
            return getattr(exc, "exit_code", 2)
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        return _refuse(message + hint, getattr(exc, "exit_code", 2))
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f" {exc.filename!r}" if exc.filename else ""
        return _refuse(f"{exc.strerror}:{where} (check --home / COSTWISE_HOME and free space)", 2)
    except _database_errors() as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        where = f" {shown_url(seen['settings'].db_url)}" if "settings" in seen else ""
        return _refuse(f"the catalog{where} cannot be used: {reason[0] if reason else type(exc).__name__} "
                       f"(check --db / COSTWISE_DB, --home and free space)", 2)


def shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _refuse(message: str, code: int) -> int:
    typer.echo("error: " + " ".join(message.splitlines()), err=True)
    return code


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
