"""`costwise report`: pandas over the run history (contract: DESIGN.md 'Reports').

A report covers the runs that *finished* in ``[since, until)`` (a run is charged when it ends).
It is read by ``store.report_queries`` (one SQL query, only the columns it needs) into a DataFrame;
everything else (breakdowns, idle spend, cache savings, top spenders, right-sizing) is pandas over
that frame, so every total is a sum of run records and reconciles with them exactly.

Formats: ``json`` (the whole report), ``html`` (the same with embedded charts, one standalone
file), ``csv`` (the breakdown by ``--group-by``), ``parquet`` (one row per run, for data tools),
``focus`` (FOCUS 1.2 or 1.3 columns, one row per run and charge period; see ``scheduler.reporting.focus``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..core.errors import SpecError
from ..core.runs import FINAL_STATES
from ..store.report_queries import budget_spend, known_label_keys, read_runs, shape_prices
from .report_budget import budget_table
from .report_changes import as_records, compare, headline
from .report_changes import movers as top_movers
from .report_tables import (  # noqa: F401  (parse_group_by, key_series, breakdown...: public here too)
    FIELDS, LABEL_KEY, NONE, TIME_KEYS, _label_column, breakdown, by_shape, cache_savings, chart_key, check_keys,
    daily_by, daily_by_team, key_series, label_keys, parse_group_by, top_jobs, totals, utilization_histogram,
)

FORMATS = ("csv", "html", "parquet", "json", "focus")
TABLE = "table"  # the command line's terminal summary alone (no file)
RIGHTSIZE_THRESHOLD = 0.30  # runs using under this share of their shape's CPU or memory
RIGHTSIZE_HEADROOM = 1.25  # the smaller shape must hold the p95 usage with this much room
RIGHTSIZE_QUANTILE = 0.95


# -- reading -----------------------------------------------------------------------------------
def load_runs(store, since=None, until=None, labels: Sequence[str] = (), detail: bool = False) -> pd.DataFrame:
    """Finished runs ended in [since, until) as a DataFrame (strings categorical, times as UTC)."""
    df = read_runs(store, since, until, labels, detail)
    df["ended_at"] = pd.to_datetime(df.pop("ended_epoch"), unit="s", utc=True).dt.as_unit("us")
    if detail:
        df["started_at"] = pd.to_datetime(df.pop("started_epoch"), unit="s", utc=True).dt.as_unit("us")
    df = df[df["state"].isin(FINAL_STATES)] if len(df) and not df["state"].isin(FINAL_STATES).all() else df
    df["util"] = df["gpu_util_avg"].fillna(df["cpu_util_avg"]).clip(0.0, 1.0)
    df["idle_usd"] = df["cost_usd"] * (1.0 - df["util"])
    df["spot_saved_usd"] = spot_saving(df, shape_prices(store))
    return df.reset_index(drop=True)


def spot_saving(df: pd.DataFrame, on_demand: dict[str, float]) -> pd.Series:
    """Per run: what its spot attempts would have cost on-demand less what they cost. The on-demand
    price is the shape's in the catalog now (the attempt log records only the price paid), the
    yardstick /metrics' spot savings use; NaN for a run never on spot or on a shape no longer in the
    catalog. Negative where spot cost more than on-demand would have: a report shows it as it was."""
    price = df["shape"].astype(object).map(on_demand).astype(float)
    return price * df["spot_s"] / 3600.0 - df["spot_cost_usd"]


# -- the report --------------------------------------------------------------------------------
@dataclass
class Report:
    since: datetime | None
    until: datetime | None
    generated_at: datetime
    group_by: tuple[str, ...]
    totals: dict[str, Any]
    groups: pd.DataFrame
    daily_by_team: pd.DataFrame
    by_shape: pd.DataFrame
    utilization_histogram: pd.DataFrame
    top_jobs: pd.DataFrame
    cache: pd.DataFrame
    rightsizing: pd.DataFrame
    states: dict[str, int] = field(default_factory=dict)
    previous: tuple[datetime, datetime] | None = None  # the period before, of the same length
    headline: dict[str, Any] = field(default_factory=dict)  # spend, runs, cost per success: now and before
    changes: pd.DataFrame = field(default_factory=pd.DataFrame)  # per group: both periods, ΔC's parts, reason
    movers: pd.DataFrame = field(default_factory=pd.DataFrame)
    budgets: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart_key: str = "team"
    daily_by_key: pd.DataFrame = field(default_factory=pd.DataFrame)  # daily spend by chart_key

    def to_dict(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame) -> list[dict]:
            return json.loads(frame.to_json(orient="records", date_format="iso"))

        return {
            "period": {"since": _iso(self.since), "until": _iso(self.until)},
            "generated_at": _iso(self.generated_at),
            "group_by": list(self.group_by),
            "totals": self.totals,
            "states": self.states,
            "groups": records(self.groups),
            "daily_by_team": records(self.daily_by_team),
            "by_shape": records(self.by_shape),
            "utilization_histogram": records(self.utilization_histogram),
            "top_jobs": records(self.top_jobs),
            "cache": records(self.cache),
            "rightsizing": records(self.rightsizing),
            "previous_period": None if self.previous is None else
            {"since": _iso(self.previous[0]), "until": _iso(self.previous[1])},
            "headline": self.headline,
            "changes": records(as_records(self.changes, self.group_by)),
            "movers": records(as_records(self.movers, self.group_by)),
            "budgets": records(self.budgets),
            "chart_key": self.chart_key,
            "daily_by_key": records(self.daily_by_key),
        }


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_report(store, since=None, until=None, group_by: Sequence[str] | str | None = None,
                 now: datetime | None = None, top: int = 10, movers: int = 5) -> Report:
    """Read the period's runs (and the previous period's) and compute every table of the report."""
    from .rightsizing import advise, job_requirements

    keys = parse_group_by(group_by)
    now = now or store.clock.now()
    df = load_runs(store, since, until, label_keys(keys))
    check_keys(df, keys, known_label_keys(store))
    shapes = store.list("Shape")
    advice = advise(df, shapes, lambda names: job_requirements(store, names))
    cache = cache_savings(df)
    previous = previous_period(since, until, now)
    before = load_runs(store, *previous, label_keys(keys)) if previous else None
    changes = compare(df, before if before is not None else df.iloc[0:0], keys)
    key = chart_key(keys)
    return Report(
        since=since, until=until, generated_at=now, group_by=keys,
        totals={**totals(df, cache), "rightsizing_savings_usd": float(advice["savings_usd"].sum()) if len(advice) else 0.0},
        groups=breakdown(df, keys),
        daily_by_team=daily_by_team(df),
        by_shape=by_shape(df),
        utilization_histogram=utilization_histogram(df),
        top_jobs=top_jobs(df, top),
        cache=cache,
        rightsizing=advice,
        states={str(k): int(v) for k, v in df["state"].value_counts().items() if v},
        previous=previous,
        headline=headline(df, before),
        changes=changes if previous else changes.iloc[0:0],
        movers=top_movers(changes, movers) if previous else changes.iloc[0:0],
        budgets=budget_table(store.list("Budget") if store.names("Budget") else [],
                             lambda start: budget_spend(store, start, now), now),
        chart_key=key,
        daily_by_key=daily_by(df, key),
    )


def previous_period(since: datetime | None, until: datetime | None, now: datetime):
    """[since - length, since): the period before, as long as this one; None without a start."""
    if since is None:
        return None
    length = (until or now) - since
    return (since - length, since)


# -- writing -----------------------------------------------------------------------------------
def write_report(store, fmt: str, out: str | Path, since=None, until=None, group_by=None,
                 now: datetime | None = None, charge_period: str = "month",
                 focus_version: str = "1.2", report: Report | None = None) -> dict[str, Any]:
    """Write one report file; returns a small summary (path, format, runs, cost; rows for FOCUS).
    ``report``: one already built for the same period and keys (the command line's summary), reused."""
    from .focus import CHARGE_PERIODS
    from .focus_spec import FocusVersion

    fmt = (fmt or "").lower()
    if fmt not in FORMATS:
        raise SpecError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}", "format", fmt)
    if charge_period not in CHARGE_PERIODS:
        raise SpecError(f"--charge-period {charge_period!r} is not one of {', '.join(CHARGE_PERIODS)}",
                        "charge_period", charge_period)
    if focus_version not in tuple(FocusVersion):
        raise SpecError(f"--focus-version {focus_version!r} is not one of {', '.join(FocusVersion)}",
                        "focus_version", focus_version)
    path = Path(out)
    if path.is_dir():
        raise SpecError(f"--out {str(path)!r} is a directory; give a file path", "out", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("focus", "parquet"):
        keys = parse_group_by(group_by)
        df = load_runs(store, since, until, label_keys(keys), detail=True)
        check_keys(df, keys, known_label_keys(store))
        if fmt == "focus":
            from .focus import to_focus, write_focus_csv

            table = to_focus(df, label_keys(keys), charge_period=charge_period, version=focus_version)
            write_focus_csv(table, path)
            summary = {"rows": table.num_rows, "focus_version": str(focus_version)}
        else:
            run_table(df, keys).to_parquet(path, index=False)
            summary = {}
        summary.update(runs=int(len(df)), cost_usd=float(df["cost_usd"].sum()))
    else:
        report = report or build_report(store, since, until, group_by, now)
        if fmt == "json":
            _atomic_text(path, json.dumps(report.to_dict(), indent=2))
        elif fmt == "csv":
            report.groups.to_csv(path, index=False)
        else:
            from .report_html import render_html

            _atomic_text(path, render_html(report))
        summary = {"runs": report.totals["runs"], "cost_usd": report.totals["cost_usd"]}
    return {"path": str(path), "format": fmt, **summary}


def run_table(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per run: the record's money and usage fields plus its labels as columns."""
    cols = ["id", "job", "pipeline", "step", "state", "shape", "backend", "started_at", "ended_at", "duration_s",
            "price_per_hour", "cost_usd", "saved_usd", "idle_usd", "util", "cache_hit", "cpu_util_avg",
            "mem_peak_bytes", "gpu_util_avg", "market", "attempts", "preemptions", "lost_s", "spot_cost_usd",
            "spot_saved_usd"]
    out = df[cols].rename(columns={"util": "utilization"})
    out = out.astype({"attempts": int, "preemptions": int})
    for key in label_keys(keys):
        out[key] = df[_label_column(key)]
    return out


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
