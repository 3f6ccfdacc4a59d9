"""The report's tables, pandas over the frame of a period's runs: the breakdown by group-by keys,
totals, daily spend by team, spend by shape, the utilization histogram, top jobs, cache savings."""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import SpecError
from ..store.report_queries import label_column

FIELDS = ("job", "pipeline", "step", "shape", "backend", "state")
TIME_KEYS = ("day", "week", "month")
LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
NONE = "(none)"


_label_column = label_column  # the column a label's values are read into


# -- grouping ----------------------------------------------------------------------------------
def parse_group_by(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'team,job' -> ('team', 'job'); each key is a run field, day/week/month, or a label name."""
    if text is None:
        return ("team", "job")
    keys = [k.strip() for k in (text.split(",") if isinstance(text, str) else text) if k.strip()]
    if not keys:
        raise SpecError(f"--group-by {text!r} names no key (e.g. team,job)", "group_by", text)
    for key in keys:
        if not LABEL_KEY.match(key):
            raise SpecError(f"--group-by key {key!r} is not a field or label name", "group_by", key)
    if len(set(keys)) != len(keys):
        raise SpecError(f"--group-by {','.join(keys)!r} repeats a key", "group_by", ",".join(keys))
    return tuple(keys)


def label_keys(keys: Sequence[str]) -> list[str]:
    """The group-by keys that are labels (team is always read: daily spend is by team)."""
    out = ["team"]
    for key in keys:
        if key not in FIELDS and key not in TIME_KEYS and key not in out:
            out.append(key)
    return out


def key_series(df: pd.DataFrame, key: str) -> pd.Series:
    """The values to group by for one key, '(none)' where a run has no such value."""
    if key in TIME_KEYS:
        day = df["ended_at"].dt.floor("D")
        if key == "week":  # weeks start on Monday
            day = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
        elif key == "month":
            day = day - pd.to_timedelta(day.dt.day - 1, unit="D")
        cat = pd.Categorical(day)
        fmt = "%Y-%m" if key == "month" else "%Y-%m-%d"
        return pd.Series(cat.rename_categories([c.strftime(fmt) for c in cat.categories]), index=df.index)
    col = key if key in FIELDS else _label_column(key)
    series = df[col]
    if series.cat.categories.empty or NONE not in series.cat.categories:
        series = series.cat.add_categories([NONE])
    return series.fillna(NONE)


def check_keys(df: pd.DataFrame, keys: Sequence[str], known_labels: Sequence[str]) -> None:
    """A label key no job declares and no run in the period carries is most likely a typo: say so."""
    for key in keys:
        if key in FIELDS or key in TIME_KEYS or key in known_labels or df.empty:
            continue
        if df[_label_column(key)].isna().all():
            seen = ", ".join(sorted(known_labels)) or "none"
            raise SpecError(
                f"--group-by {key!r} is neither a run field ({', '.join(FIELDS + TIME_KEYS)}) nor a label of any "
                f"run in the period (labels: {seen})", "group_by", key,
            )


def breakdown(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Runs, spend, savings, idle spend and utilization per group (every run in exactly one group)."""
    work = pd.DataFrame({k: key_series(df, k) for k in keys})
    work["runs"] = 1
    work["cost_usd"] = df["cost_usd"]
    work["saved_usd"] = df["saved_usd"]
    work["idle_usd"] = df["idle_usd"].fillna(0.0)
    work["measured_cost"] = df["cost_usd"].where(df["util"].notna(), 0.0)
    work["hours"] = df["duration_s"].fillna(0.0) / 3600.0
    work["cache_hits"] = df["cache_hit"].astype(int)
    work["failed"] = df["state"].isin(("FAILED", "TIMED_OUT")).astype(int)
    work = work.assign(**spot_columns(df))
    out = work.groupby(list(keys), observed=True, sort=False).sum().reset_index()
    measured = out.pop("measured_cost")
    out["utilization"] = np.where(measured > 0, 1.0 - out["idle_usd"] / measured.where(measured > 0, 1.0), np.nan)
    out["share"] = out["cost_usd"] / out["cost_usd"].sum() if out["cost_usd"].sum() else 0.0
    out = out[[c for c in out.columns if c not in SPOT_COLUMNS] + list(SPOT_COLUMNS)]  # new columns last
    out = out.sort_values(["cost_usd"] + list(keys), ascending=[False] + [True] * len(keys), kind="stable")
    for k in keys:
        out[k] = out[k].astype(str)
    return out.reset_index(drop=True)


SPOT_COLUMNS = ("attempts", "preemptions", "lost_hours", "spot_cost_usd", "spot_saved_usd")


def spot_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Per run: attempts, preemptions, lost hours, spend on spot, and the spot saving (0 where none)."""
    return {"attempts": df["attempts"].fillna(0).astype(int), "preemptions": df["preemptions"].fillna(0).astype(int),
            "lost_hours": df["lost_s"].fillna(0.0) / 3600.0, "spot_cost_usd": df["spot_cost_usd"].fillna(0.0),
            "spot_saved_usd": df["spot_saved_usd"].fillna(0.0)}


def spot_totals(df: pd.DataFrame) -> dict[str, Any]:
    """The period's spot figures: attempts, preemptions, lost hours, spot spend, its share and saving."""
    sums = {k: v.sum() for k, v in spot_columns(df).items()}
    cost = float(df["cost_usd"].sum())
    return {"attempts": int(sums["attempts"]), "preemptions": int(sums["preemptions"]),
            "lost_hours": float(sums["lost_hours"]), "spot_cost_usd": float(sums["spot_cost_usd"]),
            "spot_share": float(sums["spot_cost_usd"]) / cost if cost else None,
            "spot_saved_usd": float(sums["spot_saved_usd"])}


def totals(df: pd.DataFrame, cache: pd.DataFrame | None = None) -> dict[str, Any]:
    """The period's totals; the step cache's figures are the cache table's sums (one source for both)."""
    cache = cache_savings(df) if cache is None else cache
    cost = float(df["cost_usd"].sum())
    measured = float(df.loc[df["util"].notna(), "cost_usd"].sum())
    idle = float(df["idle_usd"].sum())
    hits, lookups = int(cache["hits"].sum()), int(cache["lookups"].sum())
    return {
        "runs": int(len(df)),
        "cost_usd": cost,
        "saved_usd": float(cache["saved_usd"].sum()),
        "idle_usd": idle,
        "utilization": (1.0 - idle / measured) if measured > 0 else None,
        "hours": float(df["duration_s"].fillna(0).sum() / 3600.0),
        "cache_hits": hits,
        "cache_lookups": lookups,
        "cache_hit_ratio": (hits / lookups) if lookups else None,
        "failed_cost_usd": float(df.loc[df["state"].isin(("FAILED", "TIMED_OUT", "CANCELED")), "cost_usd"].sum()),
        **spot_totals(df),
    }


def chart_key(keys: Sequence[str]) -> str:
    """What the daily chart stacks by: the first --group-by key that is not a time bucket (else team)."""
    return next((k for k in keys if k not in TIME_KEYS), "team")


def daily_by(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Spend per UTC day and value of ``key`` (columns day, group, cost_usd)."""
    frame = pd.DataFrame({"day": key_series(df, "day"), "group": key_series(df, key), "cost_usd": df["cost_usd"]})
    out = frame.groupby(["day", "group"], observed=True).sum().reset_index()
    out["day"] = out["day"].astype(str)
    out["group"] = out["group"].astype(str)
    return out.sort_values(["day", "group"]).reset_index(drop=True)


def daily_by_team(df: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({"day": key_series(df, "day"), "team": key_series(df, "team"), "cost_usd": df["cost_usd"]})
    out = frame.groupby(["day", "team"], observed=True).sum().reset_index()
    out["day"] = out["day"].astype(str)
    out["team"] = out["team"].astype(str)
    return out.sort_values(["day", "team"]).reset_index(drop=True)


def by_shape(df: pd.DataFrame) -> pd.DataFrame:
    work = pd.DataFrame({"shape": key_series(df, "shape"), "runs": 1, "cost_usd": df["cost_usd"],
                         "idle_usd": df["idle_usd"].fillna(0.0), "hours": df["duration_s"].fillna(0) / 3600.0})
    out = work.groupby("shape", observed=True).sum().reset_index()
    out["shape"] = out["shape"].astype(str)
    return out.sort_values(["cost_usd", "shape"], ascending=[False, True]).reset_index(drop=True)


def utilization_histogram(df: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    util = df["util"]
    measured = util.notna()
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.minimum((util[measured].to_numpy() * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    cost = np.bincount(index, weights=df.loc[measured, "cost_usd"].to_numpy(), minlength=bins)
    return pd.DataFrame({"from": edges[:-1], "to": edges[1:], "runs": counts.astype(int), "cost_usd": cost})


def top_jobs(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    out = breakdown(df, ("job", "team")).head(n)
    return out[["job", "team", "runs", "cost_usd", "share", "idle_usd", "utilization"]]


def cache_savings(df: pd.DataFrame) -> pd.DataFrame:
    """Per pipeline step: cache lookups, hits, what the hits saved. A run counts when it looked the cache
    up (its result is 'hit' or 'miss') or carries savings or a hit without a recorded lookup, so this
    table's sums are every saved dollar of the period (the report's totals read them from here)."""
    cols = ["pipeline", "step", "lookups", "hits", "hit_ratio", "saved_usd", "cost_usd"]
    result = df["cache_result"].astype(object)
    reused = df["cache_hit"].astype(bool) | (df["saved_usd"].fillna(0.0) > 0)
    looked = result.isin(("hit", "miss")) | reused
    steps = df[looked]
    if steps.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("pipeline", "step") else float) for c in cols})
    hit = result[looked].eq("hit") | (result[looked].isna() & reused[looked])
    work = pd.DataFrame({"pipeline": key_series(steps, "pipeline"), "step": key_series(steps, "step"), "lookups": 1,
                         "hits": hit.astype(int), "saved_usd": steps["saved_usd"].fillna(0.0),
                         "cost_usd": steps["cost_usd"]})
    out = work.groupby(["pipeline", "step"], observed=True).sum().reset_index()
    out["hit_ratio"] = out["hits"] / out["lookups"]
    for k in ("pipeline", "step"):
        out[k] = out[k].astype(str)
    return out[cols].sort_values(["saved_usd", "pipeline", "step"], ascending=[False, True, True]).reset_index(drop=True)
