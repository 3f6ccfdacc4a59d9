"""Rich tables for people; `--json` output bypasses this module entirely."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table

from ..core.durations import format_duration
from ..core.money import usd, usd_price
from ..core.runs import RunRecord

STATE_STYLE = {
    "SUCCEEDED": "green", "CACHED": "cyan", "FAILED": "red", "TIMED_OUT": "red", "CANCELED": "yellow",
    "RUNNING": "blue", "STARTING": "blue", "QUEUED": "magenta", "SKIPPED": "dim",
}


money = usd  # the one money format (scheduler.core.money); kept under this name for its importers


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB" if value < 2**30 else f"{value / 2**30:.1f} GiB"


def runs_table(runs: Iterable[RunRecord], title: str = "runs") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("run", "job", "step", "state", "shape", "duration", "cost", "saved", "cpu", "mem peak"):
        table.add_column(col, justify="right" if col in ("duration", "cost", "saved", "cpu", "mem peak") else "left",
                         no_wrap=True)
    table.add_column("reason", overflow="ellipsis", no_wrap=True, max_width=40)
    for r in runs:
        style = STATE_STYLE.get(r.state, "")
        table.add_row(
            r.id, r.job or "-", r.step or "-", f"[{style}]{r.state}[/]" if style else r.state, r.shape or "-",
            format_duration(r.duration_s), money(r.cost_usd), money(r.saved_usd) if r.saved_usd else "-",
            percent(r.cpu_util_avg), gib(r.mem_peak_bytes), (r.reason or "")[:60],
        )
    return table


def shapes_table(shapes) -> Table:
    table = Table(title="shapes", title_justify="left")
    for col in ("shape", "backend", "vcpus", "memory", "gpus", "gpu type", "$/h", "capacity"):
        table.add_column(col)
    for s in shapes:
        table.add_row(
            s.name, s.backend, f"{s.vcpus:g}", f"{s.memory_gib:g} GiB", f"{s.gpus:g}", s.gpu_type or "-",
            usd_price(s.price_per_hour), str(s.capacity),
        )
    return table


def fit_table(explanation) -> Table:
    table = Table(title="fitting shapes, cheapest expected cost first", title_justify="left")
    for col in ("rank", "shape", "backend", "$/h", "expected duration", "from", "expected cost", "free slots"):
        table.add_column(col)
    for i, c in enumerate(explanation.ranked, 1):
        table.add_row(
            str(i), c.shape, c.backend, usd_price(c.price_per_hour), format_duration(c.expected_duration_s),
            c.duration_source, money(c.expected_cost_usd), str(c.free_slots),
        )
    return table


def pipeline_tree(runner, record: dict):
    """The DAG as a tree: each step under its first upstream step, with state, shape, time, cost, saved."""
    from rich.tree import Tree

    from ..core.pipelines import PipelineSpec

    spec = PipelineSpec.model_validate(runner.runs.get(record["id"])["spec"]["pipeline"])
    steps = {s["step"]: s for s in record["steps"]}
    style = STATE_STYLE.get(record["state"], "")
    root = Tree(
        f"[bold]{record['pipeline']}[/] {record['id']} [{style}]{record['state']}[/] "
        f"cost {money(record['cost_usd'])} saved {money(record['saved_usd'])}"
        + (f" — {record['reason']}" if record.get("reason") else "")
    )
    nodes = {}
    for name in spec.order():
        step = spec.step(name)
        ups = sorted(step.upstream(), key=spec.order().index)
        parent = nodes.get(ups[-1], root) if ups else root  # under its last upstream step: the deepest
        nodes[name] = parent.add(_step_label(name, steps.get(name), ups[:-1]))
    return root


def _step_label(name: str, run: dict | None, also: list[str]) -> str:
    if run is None:
        return f"{name} [dim]not started[/]"
    style = STATE_STYLE.get(run["state"], "")
    parts = [f"[bold]{name}[/]", f"[{style}]{run['state']}[/]"]
    if run.get("shape"):
        parts.append(run["shape"])
    if run["state"] not in ("SKIPPED",):
        parts.append(format_duration(run.get("duration_s")))
        parts.append(money(run.get("cost_usd")))
    if run.get("saved_usd"):
        parts.append(f"saved {money(run['saved_usd'])}")
    if run.get("reason") and run["state"] != "SUCCEEDED":
        parts.append(f"[dim]{run['reason'][:70]}[/]")
    if also:
        parts.append(f"[dim](also after {', '.join(also)})[/]")
    return "  ".join(parts)


def pipeline_runs_table(records: list[dict]) -> Table:
    table = Table(title="pipeline runs", title_justify="left")
    for col in ("run", "pipeline", "state", "started", "cost", "saved", "reason"):
        table.add_column(col)
    for r in records:
        style = STATE_STYLE.get(r["state"], "")
        table.add_row(r["id"], r["pipeline"], f"[{style}]{r['state']}[/]", r["started_at"] or "-",
                      money(r["cost_usd"]), money(r["saved_usd"]), (r["reason"] or "")[:60])
    return table
