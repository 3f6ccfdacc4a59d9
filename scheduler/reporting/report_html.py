"""The HTML report: one standalone file, charts drawn as inline SVG (no scripts, no network, no fonts)."""

from __future__ import annotations

import math
from html import escape
from typing import Iterable, Sequence

import pandas as pd

from ..core.money import usd

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
MAX_SERIES = 8  # teams / shapes drawn one by one; the rest are summed as "other"
TABLE_ROWS = 50

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.muted{color:#666;font-size:13px}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.card span{font-size:12px;color:#666}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:8px 0 16px}
figcaption{font-size:13px;color:#444;margin-bottom:4px}svg text{font-size:11px;fill:#333}
.charts{display:flex;flex-wrap:wrap;gap:24px}
"""


money = usd  # every amount in the report: cents above a cent, significant digits below


def pct(value) -> str:
    if value is None or pd.isna(value):
        return "-"
    return f"{value * 100:.1f}%" if abs(value) < 0.1 and value != 0 else f"{value * 100:.0f}%"


def _axis_max(value: float) -> float:
    """A round number at or above value, for the axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(value)


def _legend(names: Sequence[str], x: float, y: float) -> str:
    parts = []
    for i, name in enumerate(names):
        yy = y + i * 16
        parts.append(f'<rect x="{x}" y="{yy}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="{yy + 9}">{escape(name)}</text>')
    return "".join(parts)


def stacked_bars(daily: pd.DataFrame, title: str, width: int = 760, height: int = 300, by: str = "team") -> str:
    """Daily spend by the values of column ``by`` (a team, any label, a field): one stacked bar per day."""
    if daily.empty:
        return _empty_chart("chart-daily", title, width)
    totals = daily.groupby(by)["cost_usd"].sum().sort_values(ascending=False)
    keep = list(totals.index[:MAX_SERIES])
    frame = daily.assign(**{by: daily[by].where(daily[by].isin(keep), "other")})
    pivot = frame.pivot_table(index="day", columns=by, values="cost_usd", aggfunc="sum", fill_value=0.0)
    series = [t for t in keep if t in pivot.columns] + (["other"] if "other" in pivot.columns else [])
    pivot = pivot[series].sort_index()
    left, right, top, bottom = 60, 130, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    ymax = _axis_max(float(pivot.sum(axis=1).max()))
    slot = plot_w / len(pivot)
    bar_w = max(slot * 0.8, 1.0)
    parts = [_axes(left, top, plot_w, plot_h, ymax)]
    for i, (day, row) in enumerate(pivot.iterrows()):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for j, team in enumerate(series):
            h = row[team] / ymax * plot_h
            if h <= 0:
                continue
            y -= h
            parts.append(f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                         f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(str(day))} {escape(team)}: '
                         f'{money(row[team])}</title></rect>')
    labels = list(pivot.index)
    every = max(1, len(labels) // 8)
    for i in range(0, len(labels), every):
        x = left + i * slot + slot / 2
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(str(labels[i])[5:])}</text>')
    parts.append(_legend(series, left + plot_w + 16, top + 4))
    return _figure("chart-daily", title, width, height, "".join(parts))


def horizontal_bars(frame: pd.DataFrame, label: str, value: str, title: str, chart_id: str,
                    width: int = 560, fmt=money) -> str:
    if frame.empty:
        return _empty_chart(chart_id, title, width)
    rows = frame.sort_values(value, ascending=False).head(12)
    left, right, row_h = 130, 90, 22
    height = row_h * len(rows) + 20
    plot_w = width - left - right
    vmax = float(rows[value].max()) or 1.0
    parts = []
    for i, (_, row) in enumerate(rows.iterrows()):
        y = 10 + i * row_h
        w = max(row[value] / vmax * plot_w, 1.0)
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(str(row[label]))[:20]}</text>'
                     f'<rect class="bar" x="{left}" y="{y + 3}" width="{w:.2f}" height="{row_h - 6}" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(str(row[label]))}: {fmt(row[value])}</title></rect>'
                     f'<text x="{left + w + 4:.2f}" y="{y + 14}">{fmt(row[value])}</text>')
    return _figure(chart_id, title, width, height, "".join(parts))


def histogram(hist: pd.DataFrame, title: str, width: int = 560, height: int = 260) -> str:
    """Runs per utilization bin (0-10%, ...), with the spend of each bin in the tooltip."""
    if hist.empty or hist["runs"].sum() == 0:
        return _empty_chart("chart-utilization", title, width)
    left, right, top, bottom = 60, 20, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    ymax = _axis_max(float(hist["runs"].max()))
    slot = plot_w / len(hist)
    parts = [_axes(left, top, plot_w, plot_h, ymax, fmt=lambda v: f"{v:,.4g}")]
    for i, row in enumerate(hist.itertuples(index=False)):
        h = row.runs / ymax * plot_h
        x = left + i * slot + 1
        color = "#e15759" if row.to <= 0.3 + 1e-9 else "#4e79a7"  # under 30%: right-sizing territory
        parts.append(f'<rect class="bar" x="{x:.2f}" y="{top + plot_h - h:.2f}" width="{slot - 2:.2f}" height="{h:.2f}" '
                     f'fill="{color}"><title>{row[0] * 100:.0f}-{row.to * 100:.0f}%: {row.runs:,} runs, '
                     f'{money(row.cost_usd)}</title></rect>'
                     f'<text x="{x + slot / 2:.2f}" y="{top + plot_h + 16}" text-anchor="middle">{row[0] * 100:.0f}%</text>')
    return _figure("chart-utilization", title, width, height, "".join(parts))


def _axes(left, top, plot_w, plot_h, ymax, fmt=money) -> str:
    parts = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>']
    for k in range(5):
        v = ymax * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    return "".join(parts)


def _figure(chart_id: str, title: str, width: int, height: int, body: str) -> str:
    return (f'<figure class="chart" id="{chart_id}"><figcaption>{escape(title)}</figcaption>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(title)}">{body}</svg></figure>')


def _empty_chart(chart_id: str, title: str, width: int) -> str:
    return _figure(chart_id, title, width, 40, '<text x="10" y="24">no runs in the period</text>')


def table(frame: pd.DataFrame, columns: Iterable[tuple[str, str, object]], limit: int = TABLE_ROWS) -> str:
    """columns: (column, header, formatter or None)."""
    columns = list(columns)
    if frame.empty:
        return '<p class="muted">nothing in the period</p>'
    head = "".join(f'<th class="{"n" if f else ""}">{escape(h)}</th>' for _, h, f in columns)
    rows = []
    for _, row in frame.head(limit).iterrows():
        cells = "".join(
            f'<td class="n">{escape(f(row[c]))}</td>' if f else f"<td>{escape(str(row[c]))}</td>" for c, _, f in columns
        )
        rows.append(f"<tr>{cells}</tr>")
    more = f'<p class="muted">{len(frame) - limit:,} more rows in the JSON / CSV report</p>' if len(frame) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def count(value) -> str:
    return f"{int(value):,}"


def render_html(report) -> str:
    t = report.totals
    generated = _when(report.generated_at, "")
    period = f"from {_when(report.since, 'the beginning')} to {_when(report.until, 'now')}"
    cards = [
        ("spend", money(t["cost_usd"])), ("runs", count(t["runs"])), ("idle spend", money(t["idle_usd"])),
        ("utilization (cost-weighted)", pct(t["utilization"])), ("saved by the step cache", money(t["saved_usd"])),
        ("cache hit ratio", pct(t["cache_hit_ratio"])), ("right-sizing could save", money(t["rightsizing_savings_usd"])),
        ("failed / timed out / canceled", money(t["failed_cost_usd"])),
        ("cost per successful run", money(report.headline.get("cost_per_success_usd"))),
    ]
    keys = list(report.group_by)
    group_cols = [(k, k, None) for k in keys] + [
        ("runs", "runs", count), ("cost_usd", "spend", money), ("share", "share", pct), ("idle_usd", "idle", money),
        ("utilization", "utilization", pct), ("saved_usd", "saved", money), ("hours", "hours", lambda v: f"{v:,.1f}"),
    ]
    shape_frame = report.by_shape
    body = [
        "<h1>costwise cost report</h1>",
        f'<p class="muted">runs that finished {escape(period)} · generated {escape(generated)} · '
        f"every total is the sum of the run records</p>",
        '<div class="cards">' + "".join(f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in cards) + "</div>",
        "<h2>Charts</h2>",
        stacked_bars(report.daily_by_key, f"Daily spend by {report.chart_key} (UTC days)", by="group"),
        '<div class="charts">',
        horizontal_bars(shape_frame, "shape", "cost_usd", "Spend by shape", "chart-shapes"),
        histogram(report.utilization_histogram, "Utilization distribution (runs; red: under 30%)"),
        "</div>",
        *changes_section(report),
        *spot_section(report),
        f"<h2>Spend by {escape(', '.join(keys))}</h2>",
        table(report.groups, group_cols),
        "<h2>Top spenders</h2>",
        table(report.top_jobs, [("job", "job", None), ("team", "team", None), ("runs", "runs", count),
                                ("cost_usd", "spend", money), ("share", "share", pct), ("idle_usd", "idle", money),
                                ("utilization", "utilization", pct)]),
        "<h2>Right-sizing advice</h2>",
        '<p class="muted">jobs whose runs use under 30% of their shape\'s CPU or memory (p95), and the cheapest '
        "shape that would have fit them; savings assume the same run hours.</p>",
        table(report.rightsizing, [("job", "job", None), ("shape", "shape", None), ("suggested_shape", "suggested", None),
                                   ("runs", "runs", count), ("cpu_p95", "p95 CPU", pct),
                                   ("mem_share_p95", "p95 memory", pct), ("cost_usd", "spend", money),
                                   ("would_cost_usd", "would cost", money), ("savings_usd", "savings", money)]),
        "<h2>Step cache savings</h2>",
        table(report.cache, [("pipeline", "pipeline", None), ("step", "step", None), ("lookups", "lookups", count),
                             ("hits", "hits", count), ("hit_ratio", "hit ratio", pct), ("saved_usd", "saved", money),
                             ("cost_usd", "spend", money)]),
        "<h2>Runs by final state</h2>",
        table(pd.DataFrame(sorted(report.states.items()), columns=["state", "runs"]),
              [("state", "state", None), ("runs", "runs", count)]),
    ]
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>costwise cost report</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def signed(value) -> str:
    return ("+" if value > 0 else "") + money(value)


def changes_section(report) -> list[str]:
    """What changed since the period before (same length) and why, and the budgets with their forecast."""
    from .report_changes import as_records

    keys = list(report.group_by)
    h = report.headline
    out = ["<h2>What changed</h2>"]
    if report.previous is None:
        out.append('<p class="muted">no previous period to compare with: give --since</p>')
    else:
        prev = f"{_when(report.previous[0], '')} to {_when(report.previous[1], '')}"
        out.append(f'<p class="muted">against the period before, {escape(prev)}</p>')
        cards = [("spend before", money(h["prev_cost_usd"])), ("change", signed(h["delta_usd"])),
                 ("cost per successful run", money(h["cost_per_success_usd"])),
                 ("cost per successful run before", money(h["prev_cost_per_success_usd"]))]
        out.append('<div class="cards" id="changes">' + "".join(
            f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in cards) + "</div>")
        cols = [(k, k, None) for k in keys] + [
            ("cost_usd_prev", "before", money), ("cost_usd", "now", money), ("delta_usd", "change", signed),
            ("reason", "why", None), ("detail", "", None)]
        out += ["<h3>Biggest movers</h3>", table(as_records(report.movers, keys).fillna(""), cols)]
    if len(report.budgets):
        out += ["<h3>Budgets</h3>", table(report.budgets, [
            ("budget", "budget", None), ("labels", "covers", None), ("period", "period", None),
            ("limit_usd", "limit", money), ("spent_usd", "spent", money), ("share", "of limit", pct),
            ("forecast_usd", "forecast by period end", money), ("status", "status", None)])]
    return out


def spot_section(report) -> list[str]:
    """Spot: its share of spend, what it saved against on-demand, preemptions and the work they lost,
    and the groups that used it. Absent from a period without spot use or preemptions."""
    t = report.totals
    if not t.get("spot_cost_usd") and not t.get("preemptions"):
        return []
    cards = [("spot spend", money(t["spot_cost_usd"])), ("spot share of spend", pct(t["spot_share"])),
             ("saved by spot vs on-demand", money(t["spot_saved_usd"])), ("preemptions", count(t["preemptions"])),
             ("lost hours (redone work)", f"{t['lost_hours']:,.2f}"), ("attempts", count(t["attempts"]))]
    keys = list(report.group_by)
    used = report.groups[(report.groups["spot_cost_usd"] > 0) | (report.groups["preemptions"] > 0)]
    cols = [(k, k, None) for k in keys] + [
        ("runs", "runs", count), ("attempts", "attempts", count), ("preemptions", "preemptions", count),
        ("lost_hours", "lost hours", lambda v: f"{v:,.2f}"), ("cost_usd", "spend", money),
        ("spot_cost_usd", "on spot", money), ("spot_saved_usd", "saved by spot", money)]
    return ["<h2>Spot</h2>",
            '<p class="muted">saving: what the spot attempts would have cost at their shape\'s on-demand price in '
            "the catalog, less what they cost; lost hours: work a preemption threw away and redid.</p>",
            '<div class="cards" id="spot">' + "".join(
                f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in cards) + "</div>",
            table(used, cols)]


def _when(dt, default: str) -> str:
    return default if dt is None else dt.strftime("%Y-%m-%d %H:%M UTC")
