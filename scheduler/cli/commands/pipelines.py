"""`costwise pipeline run` and `pipeline runs`: steps in dependency order, unchanged ones reused."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ..app import (QUEUED_WITHOUT_DAEMON, JSON_OPT, app, app_context, console, emit, parse_pairs, print_pipeline_run,
                   thin_client, typer_app)

pipeline_app = typer_app(help="Run pipelines and look at their runs.")
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
    estimate: bool = typer.Option(False, "--estimate", help="Print each step's expected cost and the total; run nothing."),
    wait: bool = typer.Option(False, "--wait", help="Run it now and wait for the end."),
    sync: bool = typer.Option(False, "--sync", help="Re-apply the steps' jobs first if their artifacts changed on disk."),
    as_json: bool = JSON_OPT,
):
    """Start a pipeline run: steps in dependency order, unchanged ones reused from the cache."""
    if estimate:  # read from the catalog and the step cache (never the daemon): nothing is run or stored
        from ...runtime.estimates import estimate_pipeline_run
        from ..estimates import print_pipeline_estimate

        est = estimate_pipeline_run(app_context(ctx).engine, name, parse_params(param), force_step, force_all)
        return print_pipeline_estimate(est, as_json)
    from .. import thin

    params = parse_params(param)
    show = not as_json and sys.stderr.isatty()
    if (client := thin_client(ctx)) is not None:
        from ..client import Unreachable

        try:
            thin.check_artifacts(client.call("GET", "/artifacts", query={"pipeline": name}), sync,
                                 lambda: app_context(ctx))
            body = {"params": params, "force_steps": list(force_step), "force_all": force_all}
            step_line = (lambda rec: typer.echo(f"  {rec['step']:<16} {rec['state']:<10} {rec.get('shape') or ''}",
                                                err=True)) if show else None
            return thin.pipeline_run(client, name, body, wait, as_json, step_line)
        except Unreachable:
            pass
    from ...daemon.loop import daemon_url
    from ...runtime.pipeline_runner import PipelineRunner

    app_ctx = app_context(ctx)
    thin.check_artifacts(thin.pipeline_artifacts(app_ctx, name), sync, lambda: app_ctx)
    runner = PipelineRunner(app_ctx.engine)
    prun = runner.submit(name, params, force_step, force_all)
    up = daemon_url(app_ctx.store)
    if up:
        from ..client import notify

        notify(app_ctx.settings.home, app_ctx.settings.db_url)
    if not wait:
        if not as_json and not up:
            typer.echo(QUEUED_WITHOUT_DAEMON, err=True)
        return print_pipeline_run(runner, runner.record(prun["id"]), as_json)
    progress = None
    if show:
        progress = lambda step, rec: typer.echo(f"  {step:<16} {rec.state:<10} {rec.shape or ''}", err=True)  # noqa: E731
    record = runner.wait_for(prun["id"]) if up else runner.execute(prun["id"], progress)
    print_pipeline_run(runner, record, as_json)
    raise typer.Exit(0 if record["state"] == "SUCCEEDED" else 1)


@pipeline_app.command("runs")
def pipeline_runs(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None),
    wide: bool = typer.Option(False, "--wide", help="Every column in full, however wide the table gets."),
    as_json: bool = JSON_OPT,
):
    """Pipeline runs, newest first."""
    from ...runtime.pipeline_runner import PipelineRunner

    runner = PipelineRunner(app_context(ctx).engine)
    records = [runner.record(p["id"]) for p in runner.runs.list(pipeline=name)]
    if as_json:
        return emit(records)
    from ...reporting.views import pipeline_runs_table, print_table

    print_table(console(), pipeline_runs_table(records, wide=wide), wide)
