"""Rich tables for people; `--json` output bypasses this module entirely."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table

from .durations import format_duration
from .runs import RunRecord

STATE_STYLE = {
    "SUCCEEDED": "green", "CACHED": "cyan", "FAILED": "red", "TIMED_OUT": "red", "CANCELED": "yellow",
    "RUNNING": "blue", "STARTING": "blue", "QUEUED": "magenta", "SKIPPED": "dim",
}


def money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB" if value < 2**30 else f"{value / 2**30:.1f} GiB"


def runs_table(runs: Iterable[RunRecord], title: str = "runs") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("run", "job", "step", "state", "shape", "duration", "cost", "saved", "cpu", "mem peak", "reason"):
        table.add_column(col, justify="right" if col in ("duration", "cost", "saved", "cpu", "mem peak") else "left")
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
            f"{s.price_per_hour:.4g}", str(s.capacity),
        )
    return table


def fit_table(explanation) -> Table:
    table = Table(title="fitting shapes, cheapest expected cost first", title_justify="left")
    for col in ("rank", "shape", "backend", "$/h", "expected duration", "from", "expected cost", "free slots"):
        table.add_column(col)
    for i, c in enumerate(explanation.ranked, 1):
        table.add_row(
            str(i), c.shape, c.backend, f"{c.price_per_hour:.4g}", format_duration(c.expected_duration_s),
            c.duration_source, money(c.expected_cost_usd), str(c.free_slots),
        )
    return table
