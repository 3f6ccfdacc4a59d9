"""`costwise demo`: declare the examples, run them, show where they ran and what they cost."""

from __future__ import annotations

import typer

from ..app import JSON_OPT, app, app_context


@app.command()
def demo(ctx: typer.Context, as_json: bool = JSON_OPT):
    """Declare example shapes and jobs, run them, and show where they ran and what they cost."""
    from ..demo import run_demo

    raise typer.Exit(run_demo(app_context(ctx), as_json=as_json))
