"""`costwise daemon`: schedules, dispatch, deadlines, restarts, the HTTP API and /metrics."""

from __future__ import annotations

from typing import Optional

import typer

from ...core.bounds import MISFIRE_GRACE_MAX_S
from ...core.errors import SpecError
from ..app import app, app_context, parse_pairs


def parse_misfire_grace(text: str | None) -> float | None:
    from ...core.durations import parse_duration

    if not text:
        return None
    try:
        grace = parse_duration(text, "misfire-grace")
    except ValueError as exc:
        raise SpecError(f"--{exc}", "misfire-grace", text) from None
    if not 1 <= grace <= MISFIRE_GRACE_MAX_S:
        raise SpecError(f"--misfire-grace {text!r} is not between 1s and 30d", "misfire-grace", text)
    return grace


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

    from ...daemon.loop import Daemon

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    alert_map = parse_pairs(alert, "alert", "ALERTNAME=PIPELINE")
    grace = parse_misfire_grace(misfire_grace)
    runner = Daemon(app_context(ctx).settings, host, metrics_port, token, grace, alert_map)
    runner.install_signal_handlers()
    raise typer.Exit(runner.run())
