"""`run --estimate` and `pipeline run --estimate`: what a run would cost, printed; nothing launched or stored."""

from __future__ import annotations

from rich.table import Table

from ..core.durations import format_duration
from ..core.estimate import JobEstimate
from ..core.estimate_pipeline import PipelineEstimate, StepEstimate
from ..core.money import usd, usd_price
from .app import console, emit

COLUMNS = ("step", "shape", "market", "$/h", "expected duration", "from", "expected cost", "p10-p90", "cached")


def print_job_estimate(est: JobEstimate, as_json: bool) -> None:
    if as_json:
        return emit(est.public())
    table = _table(f"estimate: a run of {est.job}", COLUMNS[1:])
    table.add_row(*_run_cells(est, est.expected_cost_usd, est.p10_usd, est.p90_usd), "no")
    out = console()
    out.print(table)
    out.print(f"placement: {est.reason}")


def print_pipeline_estimate(est: PipelineEstimate, as_json: bool) -> None:
    if as_json:
        return emit(est.public())
    table, lines = pipeline_estimate_view(est)
    out = console()
    out.print(table)
    for line in lines:
        out.print(line)


def pipeline_estimate_view(est: PipelineEstimate) -> tuple[Table, list[str]]:
    """The table of steps, then the total line and each step's reason (also what `costwise demo` prints)."""
    table = _table(f"estimate: the next run of {est.pipeline}", COLUMNS)
    for step in est.steps:
        table.add_row(step.step, *_step_cells(step))
    line = f"total {usd(est.expected_cost_usd)} (p10-p90 {usd(est.p10_usd)}-{usd(est.p90_usd)})"
    if est.saved_usd:
        line += f", {usd(est.saved_usd)} saved by the step cache"
    if est.unknown:
        line += f"; not priced: {', '.join(est.unknown)}"
    return table, [line, *(f"  {step.step}: {step.reason}" for step in est.steps)]


def _table(title: str, columns) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col in ("$/h", "expected duration", "expected cost", "p10-p90") else "left",
                         no_wrap=True)
    return table


def _step_cells(step: StepEstimate) -> list[str]:
    if step.estimate is None:  # cached, skipped, fails, or a job not in the catalog
        cost = "?" if step.expected_cost_usd is None else usd(step.expected_cost_usd)
        return ["-", "-", "-", "-", str(step.source or step.outcome), cost, "-",
                "yes" if step.outcome == "cached" else str(step.outcome)]
    trials = f" ({step.trials} trials)" if step.trials is not None else ""
    cells = _run_cells(step.estimate, step.expected_cost_usd, step.p10_usd, step.p90_usd)
    cells[-2] += trials
    return [*cells, "no"]


def _run_cells(est: JobEstimate, cost, low, high) -> list[str]:
    span = "-" if low is None else f"{usd(low)}-{usd(high)}"
    return [est.shape or "-", str(est.market), usd_price(est.price_per_hour), format_duration(est.expected_duration_s),
            str(est.duration_source), "?" if cost is None else usd(cost), span]
