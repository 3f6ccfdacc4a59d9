"""What changed between two periods of the same length: pandas over the two periods' run frames.

A group's spend is ``C = E · a``: E runs that executed (not reused from the cache), each costing
``a = h · p`` on average (hours per run times price per hour). E itself is ``N · e``: N runs asked
for (executed + cache hits) of which the share e executed. The change from the previous period to
this one splits exactly into four parts (each evaluated at the old values on its left, the new on
its right, so they add up to ΔC to the cent)::

    ΔC = ΔN·e₀·a₀        more (or fewer) runs
       + N₁·Δe·a₀        the cache hit ratio fell (or rose): more of the runs paid
       + E₁·Δh·p₀        longer (or shorter) runs
       + E₁·h₁·Δp        a dearer (or cheaper) shape: price per hour

A mover's reason is the part that moved its spend most in the direction it moved.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.runs import CACHED, SKIPPED, SUCCEEDED
from .report_tables import key_series

EFFECTS = ("runs_effect_usd", "cache_effect_usd", "duration_effect_usd", "price_effect_usd")


class MoverReason(StrEnum):
    MORE_RUNS = "more runs"
    FEWER_RUNS = "fewer runs"
    CACHE_FELL = "cache hit ratio fell"
    CACHE_ROSE = "cache hit ratio rose"
    LONGER_RUNS = "longer runs"
    SHORTER_RUNS = "shorter runs"
    DEARER_SHAPE = "a dearer shape"
    CHEAPER_SHAPE = "a cheaper shape"
    NEW = "new this period"
    GONE = "no runs this period"


REASONS = {  # effect column -> (reason when it raised spend, reason when it lowered spend)
    "runs_effect_usd": (MoverReason.MORE_RUNS, MoverReason.FEWER_RUNS),
    "cache_effect_usd": (MoverReason.CACHE_FELL, MoverReason.CACHE_ROSE),
    "duration_effect_usd": (MoverReason.LONGER_RUNS, MoverReason.SHORTER_RUNS),
    "price_effect_usd": (MoverReason.DEARER_SHAPE, MoverReason.CHEAPER_SHAPE),
}


def period_stats(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per group: runs asked for (N), executed (E), spend, executed hours, successes, the dearest shape."""
    counted = df[df["state"] != SKIPPED]
    executed = counted["state"] != CACHED
    work = pd.DataFrame({k: key_series(counted, k).astype(str) for k in keys})
    work["runs"] = 1
    work["executed"] = executed.astype(int)
    work["cost_usd"] = counted["cost_usd"].fillna(0.0)
    work["hours"] = counted["duration_s"].fillna(0.0).where(executed, 0.0) / 3600.0
    work["successes"] = counted["state"].isin((SUCCEEDED, CACHED)).astype(int)
    columns = ["runs", "executed", "cost_usd", "hours", "successes"]
    if work.empty:
        return pd.DataFrame(columns=list(keys) + columns + ["top_shape"]).set_index(list(keys))
    out = work.groupby(list(keys), sort=False)[columns].sum()
    shapes = work.assign(top_shape=counted["shape"].astype(object).fillna("-").to_numpy())
    by_shape = shapes.groupby(list(keys) + ["top_shape"], sort=False)["cost_usd"].sum().reset_index()
    top = by_shape.sort_values("cost_usd", ascending=False, kind="stable").drop_duplicates(list(keys))
    out["top_shape"] = top.set_index(list(keys))["top_shape"]
    return out


def compare(current: pd.DataFrame, previous: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per group seen in either period: both periods' figures, ΔC and its four parts, the reason."""
    keys = list(keys)
    cur, prev = period_stats(current, keys), period_stats(previous, keys)
    both = pd.merge(cur, prev, how="outer", left_index=True, right_index=True, suffixes=("", "_prev"))
    for col in ("runs", "executed", "cost_usd", "hours", "successes"):
        both[col] = both[col].astype(float).fillna(0.0)
        both[f"{col}_prev"] = both[f"{col}_prev"].astype(float).fillna(0.0)
    both["delta_usd"] = both["cost_usd"] - both["cost_usd_prev"]
    effects = _effects(both)
    both = pd.concat([both, effects], axis=1)
    both["reason"] = [_reason(row) for row in both.itertuples()]
    both["detail"] = [_detail(row) for row in both.itertuples()]
    both = both.reset_index()
    order = both["delta_usd"].abs().sort_values(ascending=False, kind="stable").index
    return both.loc[order].reset_index(drop=True)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den > 0)


def _effects(g: pd.DataFrame) -> pd.DataFrame:
    n0, n1, e0_runs, e1_runs = g["runs_prev"], g["runs"], g["executed_prev"], g["executed"]
    e0, e1 = _ratio(e0_runs, n0), _ratio(e1_runs, n1)
    a0 = _ratio(g["cost_usd_prev"], e0_runs)
    h0, h1 = _ratio(g["hours_prev"], e0_runs), _ratio(g["hours"], e1_runs)
    p0, p1 = _ratio(g["cost_usd_prev"], g["hours_prev"]), _ratio(g["cost_usd"], g["hours"])
    p0, p1 = p0.fillna(p1).fillna(0.0), p1.fillna(p0).fillna(0.0)
    out = pd.DataFrame(index=g.index)
    out["runs_effect_usd"] = ((n1 - n0) * e0 * a0).fillna(0.0)
    out["cache_effect_usd"] = (n1 * (e1.fillna(0.0) - e0) * a0).fillna(0.0)
    out["duration_effect_usd"] = (e1_runs * (h1.fillna(0.0) - h0.fillna(0.0)) * p0).where(e1_runs > 0, 0.0)
    # the last part takes what is left, so the four add up exactly (also where a period has no hours)
    out["price_effect_usd"] = g["delta_usd"] - out[list(EFFECTS[:3])].sum(axis=1)
    fresh = (n0 == 0) | (e0_runs == 0)  # nothing paid before: no old average to weigh a change by
    out.loc[fresh, list(EFFECTS)] = 0.0
    out.loc[fresh & (n0 == 0), "runs_effect_usd"] = g["delta_usd"]  # new: its runs are the change
    out.loc[fresh & (n0 > 0), "cache_effect_usd"] = g["delta_usd"]  # all reused before, paid now
    return out


def _reason(row) -> str:
    if row.runs_prev == 0:
        return MoverReason.NEW
    if row.runs == 0:
        return MoverReason.GONE
    if row.delta_usd == 0:
        return ""
    values = {col: getattr(row, col) for col in EFFECTS}
    col = max(values, key=values.get) if row.delta_usd > 0 else min(values, key=values.get)
    up, down = REASONS[col]
    return up if values[col] > 0 else down


def _detail(row) -> str:
    """The figures behind the reason, e.g. 'runs 12 → 30' or '$0.10/h → $1.60/h (small → big)'."""
    from ..core.money import usd_price

    reason = row.reason
    if reason in (MoverReason.MORE_RUNS, MoverReason.FEWER_RUNS):
        return f"runs {row.runs_prev:,.0f} → {row.runs:,.0f}"
    if reason in (MoverReason.CACHE_FELL, MoverReason.CACHE_ROSE):
        before = 1 - row.executed_prev / row.runs_prev
        return f"cache hits {before:.0%} → {1 - row.executed / row.runs:.0%} of runs"
    if reason in (MoverReason.LONGER_RUNS, MoverReason.SHORTER_RUNS):
        return f"average run {_minutes(row.hours_prev / row.executed_prev)} → {_minutes(row.hours / row.executed)}"
    if reason in (MoverReason.DEARER_SHAPE, MoverReason.CHEAPER_SHAPE):
        shapes = f" ({row.top_shape_prev} → {row.top_shape})" if row.top_shape_prev != row.top_shape else ""
        return (f"{usd_price(row.cost_usd_prev / row.hours_prev)}/h → "
                f"{usd_price(row.cost_usd / row.hours)}/h{shapes}")
    if reason == MoverReason.NEW:
        return f"{row.runs:,.0f} runs"
    if reason == MoverReason.GONE:
        return f"{row.runs_prev:,.0f} runs before"
    return ""


def _minutes(hours: float) -> str:
    minutes = hours * 60.0
    return f"{minutes:,.1f} min" if minutes < 120 else f"{hours:,.1f} h"


def headline(current: pd.DataFrame, previous: pd.DataFrame | None) -> dict[str, float | int | None]:
    """This period's and the previous period's spend, runs, successes and cost per successful run."""
    out: dict[str, float | int | None] = {}
    for prefix, frame in (("", current), ("prev_", previous)):
        if frame is None:
            continue
        cost = float(frame["cost_usd"].sum())
        successes = int(frame["state"].isin((SUCCEEDED, CACHED)).sum())
        out.update({f"{prefix}cost_usd": cost, f"{prefix}runs": int(len(frame)), f"{prefix}successes": successes,
                    f"{prefix}cost_per_success_usd": cost / successes if successes else None})
    if previous is not None:
        prev = out["prev_cost_usd"]
        out["delta_usd"] = out["cost_usd"] - prev
        out["delta_ratio"] = (out["delta_usd"] / prev) if prev else None
    return out


def movers(changes: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The n groups whose spend moved most (either way), with their reason."""
    if changes.empty:
        return changes
    moved = changes[changes["delta_usd"].abs() > 1e-12]
    return moved.head(n).reset_index(drop=True)


def as_records(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The comparison's public columns (JSON, HTML)."""
    cols = [*keys, "runs_prev", "runs", "cost_usd_prev", "cost_usd", "delta_usd", *EFFECTS, "reason", "detail"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    out = frame[cols].copy()
    out["runs_prev"] = out["runs_prev"].astype(int)
    out["runs"] = out["runs"].astype(int)
    out["reason"] = out["reason"].astype(str)
    return out.replace({np.nan: None})
