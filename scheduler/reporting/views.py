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


REASON_CUT = 60  # characters of a reason a table shows unless --wide


def key_column(table: Table, header: str, values: list[str]) -> None:
    """A column that is never cut (run ids, states): as wide as its longest value; the other
    columns wrap first when the terminal is narrow."""
    table.add_column(header, no_wrap=True, overflow="fold", min_width=max(map(len, [header, *values])))


def text_column(table: Table, header: str, wide: bool, justify: str = "left") -> None:
    """A column that wraps (folding long words) on a narrow terminal, or is never cut with --wide."""
    table.add_column(header, justify=justify, overflow="fold", no_wrap=wide)


def cut(text: str | None, wide: bool) -> str:
    """A reason for a table cell: shortened unless wide, and escaped (rich would eat "costwise[docker]")."""
    from rich.markup import escape

    text = text or ""
    return escape(text if wide or len(text) <= REASON_CUT else text[: REASON_CUT - 1] + "…")


def print_table(console, table: Table, wide: bool = False) -> None:
    """With --wide the table gets all the width it needs, so no column is shortened or wrapped;
    else, on a terminal too narrow for it, its optional columns go (in their order) before the rest wrap."""
    def needed() -> int:
        return console.measure(table, options=console.options.update(max_width=10**5)).maximum

    if wide:
        width, console.width = console.width, max(needed(), console.width)
        try:
            return console.print(table)
        finally:
            console.width = width
    for header in getattr(table, "optional", ()):
        if needed() <= console.width:
            break
        table.columns = [c for c in table.columns if c.header != header]
    console.print(table)


def runs_table(runs: Iterable[RunRecord], title: str = "runs", wide: bool = False) -> Table:
    runs = list(runs)
    table = Table(title=title, title_justify="left")
    key_column(table, "run", [r.id for r in runs])
    for col in ("job", "step"):
        text_column(table, col, wide)
    key_column(table, "state", [r.state for r in runs])
    text_column(table, "shape", wide)
    for col in ("duration", "cost", "saved", "cpu", "mem peak"):
        text_column(table, col, wide, justify="right")
    text_column(table, "reason", wide)
    for r in runs:
        style = STATE_STYLE.get(r.state, "")
        table.add_row(
            r.id, r.job or "-", r.step or "-", f"[{style}]{r.state}[/]" if style else r.state, r.shape or "-",
            format_duration(r.duration_s), money(r.cost_usd), money(r.saved_usd) if r.saved_usd else "-",
            percent(r.cpu_util_avg), gib(r.mem_peak_bytes), cut(r.reason, wide),
        )
    table.optional = ("mem peak", "cpu", "saved", "step", "duration")  # dropped in this order when narrow
    return table


def shapes_table(shapes, wide: bool = False) -> Table:
    shapes = list(shapes)
    table = Table(title="shapes", title_justify="left")
    key_column(table, "shape", [s.name for s in shapes])
    for col in ("backend", "vcpus", "memory", "gpus", "gpu type", "$/h", "capacity"):
        text_column(table, col, wide)
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
        shape = c.shape if c.market_reason is None else f"{c.shape} ({str(c.market).replace('_', '-')})"
        table.add_row(
            str(i), shape, c.backend, usd_price(c.price_per_hour), format_duration(c.expected_duration_s),
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


def pipeline_runs_table(records: list[dict], wide: bool = False) -> Table:
    table = Table(title="pipeline runs", title_justify="left")
    key_column(table, "run", [r["id"] for r in records])
    text_column(table, "pipeline", wide)
    key_column(table, "state", [r["state"] for r in records])
    for col in ("started", "cost", "saved", "reason"):
        text_column(table, col, wide)
    for r in records:
        style = STATE_STYLE.get(r["state"], "")
        table.add_row(r["id"], r["pipeline"], f"[{style}]{r['state']}[/]", r["started_at"] or "-",
                      money(r["cost_usd"]), money(r["saved_usd"]), cut(r["reason"], wide))
    table.optional = ("saved", "started")
    return table


def sweep_table(summary: dict, trials: list[dict]):
    """A sweep step's trials (dicts with id, state, cost_usd, trial, objective and maybe trial_index)
    between a line with the objective and the best trial and one with the budget and why trials stopped
    starting (lines of their own: as a table's title they would wrap to the table's width)."""
    from rich.console import Group
    from rich.text import Text

    best = summary.get("best_trial")
    title = (f"sweep: {summary.get('goal', '?')} {summary.get('objective', '?')} · "
             f"{summary.get('trials_started', len(trials))} of {summary.get('trials_planned', '?')} trials started, "
             f"{summary.get('succeeded', '?')} succeeded · best {best or '-'}"
             + (f" = {summary['best_objective']:g}" if isinstance(summary.get("best_objective"), (int, float)) else ""))
    table = Table()
    table.add_column("trial", justify="right")
    key_column(table, "run", [t["id"] for t in trials])
    table.add_column("params", overflow="fold")
    table.add_column("objective", justify="right")
    key_column(table, "state", [t["state"] for t in trials])
    table.add_column("cost", justify="right")
    for position, t in enumerate(trials):
        index = t.get("trial_index", position)
        style = STATE_STYLE.get(t["state"], "")
        objective = t.get("objective")
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in (t.get("trial") or {}).items())
        table.add_row(f"{index + 1}{' *' if t['id'] == best else ''}", t["id"], params or "-",
                      "-" if objective is None else f"{objective:g}", f"[{style}]{t['state']}[/]" if style else t["state"],
                      money(t.get("cost_usd")))
    return Group(Text(title), table, Text(_budget_caption(summary)))


def _budget_caption(summary: dict) -> str:
    spent = f"spent {money(summary.get('cost_usd'))}"
    budget = summary.get("budget_usd")
    text = f"{spent} of budget {money(budget)}" if budget is not None else f"{spent} (no budget)"
    stopped = summary.get("stopped")
    return text + (f" · stopped: {stopped}" if stopped else " · the budget stopped no trial")
