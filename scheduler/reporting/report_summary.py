"""The report's terminal summary: what the period cost, what changed since the period before and why,
budgets with their forecast, and where money went idle or could be saved. Text over a built Report."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from ..core.money import usd

GROUP_ROWS = 10


def _when(dt: datetime | None, default: str) -> str:
    return default if dt is None else dt.strftime("%Y-%m-%d %H:%M")


def _pct(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.0%}"


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + usd(value)


def _group(row, keys) -> str:
    return " / ".join(str(getattr(row, k) if not isinstance(row, dict) else row[k]) for k in keys)


def summary_lines(report) -> list[str]:
    t, h = report.totals, report.headline
    keys = list(report.group_by)
    lines = [f"runs that ended {_when(report.since, 'from the beginning')} → {_when(report.until or report.generated_at, 'now')} UTC"
             + (f" (previous period {_when(report.previous[0], '')} → {_when(report.previous[1], '')})"
                if report.previous else " (no previous period: give --since to compare)")]
    spend = f"spend {usd(h['cost_usd'])}"
    if report.previous:
        ratio = f", {h['delta_ratio']:+.0%}" if h.get("delta_ratio") is not None else ""
        spend += f" (previous {usd(h['prev_cost_usd'])}: {_signed(h['delta_usd'])}{ratio})"
    per = f"cost per successful run {usd(h['cost_per_success_usd'])}"
    if report.previous:
        per += f" (was {usd(h['prev_cost_per_success_usd'])})"
    lines.append(f"{spend} · {h['runs']:,} runs · {per}")
    lines.append(f"idle spend {usd(t['idle_usd'])} · saved by the step cache {usd(t['saved_usd'])} "
                 f"(hit ratio {_pct(t['cache_hit_ratio'])}) · right-sizing could save {usd(t['rightsizing_savings_usd'])}")
    lines += _spot(t)
    lines += _groups(report, keys)
    if report.previous and len(report.movers):
        lines.append("biggest movers:")
        for row in report.movers.itertuples(index=False):
            lines.append(f"  {_group(row, keys)}: {usd(row.cost_usd_prev)} → {usd(row.cost_usd)} "
                         f"({_signed(row.delta_usd)}): {row.reason}" + (f", {row.detail}" if row.detail else ""))
    lines += _budgets(report.budgets)
    return lines


def _spot(t) -> list[str]:
    """One line where the period used spot or saw preemptions; nothing otherwise."""
    if not t.get("spot_cost_usd") and not t.get("preemptions"):
        return []
    return [f"spot {usd(t['spot_cost_usd'])} ({_pct(t['spot_share'])} of spend), saved {usd(t['spot_saved_usd'])} "
            f"against on-demand · {t['preemptions']:,} preemptions, {t['lost_hours']:,.2f} h of work lost and redone"]


def _groups(report, keys) -> list[str]:
    lines = [f"by {','.join(keys)}:"]
    if report.previous:
        frame = report.changes.sort_values("cost_usd", ascending=False, kind="stable").head(GROUP_ROWS)
        for row in frame.itertuples(index=False):
            lines.append(f"  {_group(row, keys)}: {usd(row.cost_usd)} (was {usd(row.cost_usd_prev)}, "
                         f"{_signed(row.delta_usd)}), {row.runs:,.0f} runs")
        more = len(report.changes) - len(frame)
    else:
        for row in report.groups.head(GROUP_ROWS).itertuples(index=False):
            lines.append(f"  {_group(row, keys)}: {usd(row.cost_usd)}, {row.runs:,} runs")
        more = len(report.groups) - GROUP_ROWS
    if len(lines) == 1:
        lines.append("  no runs")
    if more > 0:
        lines.append(f"  … {more:,} more groups in the file")
    return lines


def _budgets(budgets: pd.DataFrame) -> list[str]:
    if budgets.empty:
        return []
    lines = ["budgets (this period so far, and at this rate by its end):"]
    for b in budgets.itertuples(index=False):
        lines.append(f"  {b.budget} ({b.labels}, {b.period}): {usd(b.spent_usd)} of {usd(b.limit_usd)} "
                     f"({_pct(b.share)}), forecast {usd(b.forecast_usd)} by {b.period_end:%Y-%m-%d} ({_pct(b.forecast_share)}): "
                     f"{b.status}")
    return lines
