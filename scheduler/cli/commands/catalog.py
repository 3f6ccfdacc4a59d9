"""`costwise apply`, `delete` and `shapes`: what the catalog declares, and which shapes fit a job."""

from __future__ import annotations

from dataclasses import replace

from pathlib import Path
from typing import Any, Optional

import typer

from ...core.errors import SpecError
from ..app import JSON_OPT, app, app_context, console, emit


DIFF_HELP = ("Show what would change and store nothing: created, updated (with the changed fields), replaced "
             "(a shape whose backend changed, a job whose artifact's content changed) or unchanged.")
DIFF_MARK = {"created": "+", "updated": "~", "replaced": "±", "unchanged": "="}


@app.command()
def apply(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="YAML or JSON documents."),
    diff: bool = typer.Option(False, "--diff", help=DIFF_HELP),
    as_json: bool = JSON_OPT,
):
    """Create or update shapes, jobs and pipelines from documents (all or nothing)."""
    from ...store.catalog import apply_documents, load_documents

    app_ctx = app_context(ctx)
    if diff:
        return _print_diff(app_ctx.store, load_documents(files), as_json)
    results = apply_documents(load_documents(files), app_ctx.store, app_ctx.settings)
    if as_json:
        return emit(results)
    for r in results:
        console().print(f"{r['kind']:<9} {r['name']:<24} {r['result']}")


def _print_diff(store, documents, as_json: bool) -> None:
    """The documents checked as apply checks them (the same refusals), against the catalog; nothing is
    stored, not even an artifact copy."""
    from ...core.catalog_diff import diff_catalog, summary_line
    from ...store.catalog import planned_specs

    specs = planned_specs(documents, store, artifacts=None)
    diffs = diff_catalog(specs, {(s.kind, s.name): store.get(s.kind, s.name) for s in specs})
    if as_json:
        return emit([d.public() for d in diffs])
    for d in diffs:
        detail = ", ".join(d.fields) if d.fields else ""
        if d.reason:
            detail = f"{d.reason}; {detail}"
        typer.echo(f"{DIFF_MARK[d.change]} {d.change:<9} {d.kind:<9} {d.name:<24} {detail}".rstrip())
    typer.echo(summary_line(diffs))


@app.command()
def delete(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="shape, job or pipeline"),
    name: str = typer.Argument(...),
    cancel_runs: bool = typer.Option(False, "--cancel-runs", help="Cancel live runs instead of refusing."),
    as_json: bool = JSON_OPT,
):
    """Remove a shape, job or pipeline from the catalog."""
    from ...store.catalog import delete_entry

    app_ctx = app_context(ctx)
    delete_entry(app_ctx.store, kind, name, cancel_runs=cancel_runs, engine=app_ctx.engine)
    if as_json:
        return emit({"kind": kind.capitalize(), "name": name, "result": "deleted"})
    console().print(f"deleted {kind.lower()} {name}")


def parse_fit(text: str):
    from pydantic import ValidationError

    from ...core.specs import Requirements, describe_error

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
    wide: bool = typer.Option(False, "--wide", help="Every column in full, however wide the table gets."),
    as_json: bool = JSON_OPT,
):
    """The catalog's shapes, or the ones that fit ranked by expected cost, with reasons."""
    from .. import thin

    if fit is None and job is None and thin.try_shapes(ctx, as_json):  # answered by a daemon up: no catalog opened
        return
    from ...core import placement

    store = app_context(ctx).store
    all_shapes = store.list("Shape")
    if fit is None and job is None:
        return _print_shapes(sorted(all_shapes, key=lambda s: (s.price_per_hour, s.name)), as_json, wide)
    job_spec = store.require("Job", job) if job else None
    requirements = parse_fit(fit) if fit else job_spec.requirements
    if job_spec is not None:  # the request a run of the job would make now: its spot offers and deadline too
        req = placement.PlacementRequest.for_job(job_spec, queued_at=app_context(ctx).clock.now(),
                                                 requirements=requirements)
        req = replace(req, has_image=req.has_image or fit is not None)
    else:
        req = placement.PlacementRequest(job="?", requirements=requirements, has_image=True)
    history = store.duration_history(job) if job else {}
    expl = placement.explain(req, all_shapes, store.in_use_by_shape(), history)
    if as_json:
        return emit(_explanation_json(expl))
    _print_explanation(expl)


def _print_shapes(ordered, as_json: bool, wide: bool) -> None:
    if as_json:
        return emit([s.model_dump(mode="json") for s in ordered])
    from ...reporting.views import print_table, shapes_table

    print_table(console(), shapes_table(ordered, wide=wide), wide)


def _explanation_json(expl) -> list[dict]:
    return [
        {"rank": i, "shape": c.shape, "backend": c.backend, "price_per_hour": c.price_per_hour,
         "expected_duration_s": c.expected_duration_s, "duration_source": c.duration_source,
         "expected_cost_usd": c.expected_cost_usd, "free_slots": c.free_slots, "fits": True,
         **({"market": str(c.market), "market_reason": c.market_reason} if c.market_reason is not None else {}),
         "reason": "cheapest" if i == 1 else f"costs more than {expl.ranked[0].shape}"}
        for i, c in enumerate(expl.ranked, 1)
    ] + [{"shape": n, "fits": False, "reason": "; ".join(p)} for n, p in expl.rejected]


def _print_explanation(expl) -> None:
    from ...reporting.views import fit_table

    out = console()
    if expl.ranked:
        out.print(fit_table(expl))
        best = expl.ranked[0]
        out.print(f"chosen: [bold]{best.shape}[/] — cheapest expected cost among {len(expl.ranked)} fitting shape(s)")
    else:
        out.print("[red]no shape fits[/]")
    for name, problems in expl.rejected:
        out.print(f"  [dim]{name}: {'; '.join(problems)}[/]")
