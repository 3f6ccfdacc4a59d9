"""`costwise jobs`, `pipelines` and `budgets`: what the catalog declares, with a budget's spend so far."""

from __future__ import annotations

from typing import Any

import typer

from ..app import JSON_OPT, app, app_context, console, emit


def schedule_text(schedule) -> str:
    if schedule is None:
        return "-"
    when = f"cron {schedule.cron}" if schedule.cron is not None else f"every {schedule.interval:g}s"
    return when if schedule.timezone == "UTC" else f"{when} ({schedule.timezone})"


def requirements_text(req) -> str:
    parts = [f"cpus={req.cpus:g}", f"memory={req.memory_gib:g}GiB"]
    if req.gpus:
        parts.append(f"gpus={req.gpus:g}" + (f" {req.gpu_type}" if req.gpu_type else ""))
    return " ".join(parts)


def labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[str, ...]]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column(headers[0], no_wrap=True, overflow="fold", min_width=max(map(len, [headers[0], *(r[0] for r in rows)])))
    for header in headers[1:]:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


@app.command()
def jobs(ctx: typer.Context, as_json: bool = JSON_OPT):
    """The declared jobs: requirements, schedule, spot policy, labels."""
    specs = app_context(ctx).store.list("Job")
    if as_json:
        return emit([{"name": j.name, "requirements": j.requirements.model_dump(mode="json"), "shape": j.shape,
                      "schedule": j.schedule.model_dump(mode="json") if j.schedule else None,
                      "spot": str(j.spot), "labels": j.labels, "artifact_hash": j.artifact_hash} for j in specs])
    rows = [(j.name, requirements_text(j.requirements), j.shape or "-", schedule_text(j.schedule), str(j.spot),
             labels_text(j.labels)) for j in specs]
    console().print(_table("jobs", ("job", "requirements", "shape", "schedule", "spot", "labels"), rows))


@app.command()
def pipelines(ctx: typer.Context, as_json: bool = JSON_OPT):
    """The declared pipelines: steps in order (a sweep step with its trial job), schedule, labels."""
    specs = app_context(ctx).store.list("Pipeline")
    if as_json:
        return emit([{"name": p.name, "steps": [_step_json(p.step(n)) for n in p.order()],
                      "schedule": p.schedule.model_dump(mode="json") if p.schedule else None,
                      "labels": p.labels} for p in specs])
    rows = [(p.name, " → ".join(_step_text(p.step(n)) for n in p.order()), schedule_text(p.schedule),
             labels_text(p.labels)) for p in specs]
    console().print(_table("pipelines", ("pipeline", "steps", "schedule", "labels"), rows))


def _step_json(step) -> dict[str, Any]:
    return {"name": step.name, "job": step.job_name, "sweep": step.sweep is not None,
            "after": sorted(step.upstream())}


def _step_text(step) -> str:
    return f"{step.name} (sweep of {step.job_name})" if step.sweep is not None else step.name


@app.command()
def budgets(ctx: typer.Context, as_json: bool = JSON_OPT):
    """The declared budgets: labels, period, limit, and what has been spent this period so far."""
    from ...core.budgets import period_start
    from ...core.clock import iso
    from ...runtime.budget_ledger import BudgetLedger

    store = app_context(ctx).store
    ledger, now = BudgetLedger(store, store.clock), store.clock.now()
    found = []
    for b in store.list("Budget"):
        since = period_start(b.period, now)
        found.append({"name": b.name, "labels": b.labels, "period": b.period, "since": iso(since),
                      "limit_usd": b.limit_usd, "spent_usd": ledger.spent(b, since), "action": b.action})
    if as_json:
        return emit(found)
    from ...reporting.views import money

    rows = [(b["name"], labels_text(b["labels"]), b["period"], money(b["limit_usd"]), money(b["spent_usd"]),
             f"{b['spent_usd'] / b['limit_usd']:.0%}", b["action"]) for b in found]
    console().print(_table("budgets", ("budget", "labels", "period", "limit", "spent", "used", "action"), rows))
