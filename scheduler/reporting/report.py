"""`costwise report`: pandas over the run history (contract: DESIGN.md 'Reports').

A report covers the runs that *finished* in ``[since, until)`` (a run is charged when it ends).
It is read with one SQL query selecting only the columns it needs, in chunks, into a DataFrame;
everything else (breakdowns, idle spend, cache savings, top spenders, right-sizing) is pandas over
that frame, so every total is a sum of run records and reconciles with them exactly.

Formats: ``json`` (the whole report), ``html`` (the same with embedded charts, one standalone
file), ``csv`` (the breakdown by ``--group-by``), ``parquet`` (one row per run, for data tools),
``focus`` (FOCUS 1.x columns, one row per run and charge period; see ``scheduler.reporting.focus``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Float, Text, cast, extract, func, select
from sqlalchemy import text as sql_text

from ..store import schema as db
from ..core.errors import SpecError
from ..core.runs import FINAL_STATES
from .report_tables import (  # noqa: F401  (parse_group_by, key_series, breakdown...: public here too)
    FIELDS, LABEL_KEY, NONE, TIME_KEYS, _label_column, breakdown, by_shape, cache_savings, check_keys, daily_by_team,
    key_series, label_keys, parse_group_by, top_jobs, totals, utilization_histogram,
)

FORMATS = ("csv", "html", "parquet", "json", "focus")
RIGHTSIZE_THRESHOLD = 0.30  # runs using under this share of their shape's CPU or memory
RIGHTSIZE_HEADROOM = 1.25  # the smaller shape must hold the p95 usage with this much room
RIGHTSIZE_QUANTILE = 0.95
CHUNK_ROWS = 200_000
UNIX_JULIAN_DAY = 2440587.5


# -- reading -----------------------------------------------------------------------------------
def _epoch(col, dialect: str):
    if dialect == "sqlite":
        return (func.julianday(col) - UNIX_JULIAN_DAY) * 86400.0
    return cast(extract("epoch", col), Float)


def runs_query(dialect: str, since=None, until=None, labels: Sequence[str] = (), detail: bool = False):
    """The finished runs of the period, only the columns a report needs."""
    r = db.runs.c
    cols = [
        r.job, r.pipeline, r.step, r.state, r.shape,
        _epoch(r.ended_at, dialect).label("ended_epoch"),
        r.duration_s, r.cost_usd, r.saved_usd, r.cache_hit, r.cpu_util_avg, r.mem_peak_bytes, r.gpu_util_avg,
        r.extra[("cache", "result")].as_string().label("cache_result"),  # 'hit' / 'miss' for step cache lookups
    ]
    cols += [r.labels[key].as_string().label(_label_column(key)) for key in labels]
    if detail:
        cols += [r.id, r.backend, r.price_per_hour, _epoch(r.started_at, dialect).label("started_epoch"),
                 cast(r.labels, Text).label("labels_json") if dialect == "sqlite" else r.labels.label("labels_json")]
    query = select(*cols).where(r.ended_at.is_not(None))  # a full-history scan, not an index walk
    if since is not None:
        query = query.where(r.ended_at >= since)
    if until is not None:
        query = query.where(r.ended_at < until)
    return query


NUMBER_COLS = {"ended_epoch", "started_epoch", "duration_s", "cost_usd", "saved_usd", "cpu_util_avg",
               "mem_peak_bytes", "gpu_util_avg", "price_per_hour"}


def load_runs(store, since=None, until=None, labels: Sequence[str] = (), detail: bool = False) -> pd.DataFrame:
    """Finished runs ended in [since, until) as a DataFrame (strings categorical, times as UTC)."""
    query = runs_query(store.dialect, since, until, labels, detail)
    names = [c.name for c in query.selected_columns]
    frame = _read_columnar(store, query, names)
    if frame is None:
        frame = _from_chunks(_read(store, query, names), names)
    df = pd.DataFrame(frame)
    df["ended_at"] = pd.to_datetime(df.pop("ended_epoch"), unit="s", utc=True).dt.as_unit("us")
    if detail:
        df["started_at"] = pd.to_datetime(df.pop("started_epoch"), unit="s", utc=True).dt.as_unit("us")
    df = df[df["state"].isin(FINAL_STATES)] if len(df) and not df["state"].isin(FINAL_STATES).all() else df
    df["util"] = df["gpu_util_avg"].fillna(df["cpu_util_avg"]).clip(0.0, 1.0)
    df["idle_usd"] = df["cost_usd"] * (1.0 - df["util"])
    return df.reset_index(drop=True)


def _from_chunks(chunks: dict[str, list], names: list[str]) -> dict[str, Any]:
    from pandas.api.types import union_categoricals

    frame = {}
    for name in names:
        parts = chunks[name]
        if not parts:
            frame[name] = _empty(name)
        elif name == "id":
            frame[name] = pd.array(np.concatenate(parts), dtype="str")
        elif isinstance(parts[0], pd.Categorical):
            frame[name] = union_categoricals(parts) if len(parts) > 1 else parts[0]
        else:
            frame[name] = np.concatenate(parts)
    return frame


def _read_columnar(store, query, names: list[str]) -> dict[str, Any] | None:
    """SQLite through ADBC: rows go straight into Arrow columns in C, not through Python tuples
    (about 2.5x quicker over a million runs). None where that path is not available."""
    if store.dialect != "sqlite" or not store.engine.url.database:
        return None
    try:
        import adbc_driver_sqlite.dbapi as adbc
        import pyarrow as pa
        import pyarrow.compute as pc

        path = store.engine.url.database

        def fetch(part) -> "pa.Table":
            ranged = query if part is None else query.where(sql_text(f"runs.rowid BETWEEN {part[0]} AND {part[1]}"))
            sql = str(ranged.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
            with adbc.connect(path) as conn, conn.cursor() as cursor:
                # connections opening a WAL database together can meet a short lock: wait, as the store does
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                cursor.execute(sql)
                return cursor.fetch_arrow_table()

        parts = _rowid_ranges(store)
        if len(parts) > 1:  # the driver reads in C without the GIL: slices of the table in parallel
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(parts)) as pool:
                table = pa.concat_tables(list(pool.map(fetch, parts)))
        else:
            table = fetch(None)
    except Exception as exc:  # noqa: BLE001 - no driver, or a literal it cannot render: the row path reads it
        logging.getLogger(__name__).debug("columnar read not used: %s", exc)
        return None
    if table.num_rows == 0:
        return None
    frame = {}
    for name in names:
        column = table.column(name).combine_chunks()
        if name == "cache_hit":
            frame[name] = pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(bool)
        elif name == "id":
            frame[name] = pd.array(column.to_numpy(zero_copy_only=False), dtype="str")
        elif name in NUMBER_COLS:
            frame[name] = column.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            encoded = pc.dictionary_encode(column.cast("string")) if column.type != "string" else pc.dictionary_encode(column)
            codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
            frame[name] = pd.Categorical.from_codes(codes, categories=pd.Index(encoded.dictionary.to_pylist(), dtype=object))
    return frame


PARALLEL_READ_ROWS = 200_000  # below this one connection reads the runs table as fast
BUSY_TIMEOUT_MS = 60_000


def _rowid_ranges(store) -> list[tuple[int, int] | None]:
    """Contiguous rowid slices of the runs table, one per core (up to 4), in rowid order."""
    import os

    with store.engine.connect() as conn:
        low, high = conn.execute(sql_text("SELECT min(rowid), max(rowid) FROM runs")).one()
    workers = min(os.cpu_count() or 1, 4)
    if low is None or workers < 2 or high - low < PARALLEL_READ_ROWS:
        return [None]
    step = (high - low) // workers + 1
    return [(start, min(start + step - 1, high)) for start in range(low, high + 1, step)]


def _read(store, query, names: list[str]) -> dict[str, list]:
    """Run one query and convert its rows chunk by chunk (raw DBAPI rows: no per-value processing)."""
    from pandas._libs import lib

    parts: dict[str, list] = {name: [] for name in names}
    with store.engine.connect() as conn:
        result = conn.execute(query)
        cursor = result.cursor
        while True:
            rows = cursor.fetchmany(CHUNK_ROWS)
            if not rows:
                break
            block = lib.to_object_array_tuples(rows if isinstance(rows[0], tuple) else [tuple(r) for r in rows])
            del rows
            for i, name in enumerate(names):
                parts[name].append(_convert(name, block[:, i]))
            del block
        result.close()
    return parts


def _convert(name: str, values: np.ndarray):
    if name == "cache_hit":
        return values.astype(bool)
    if name == "id":
        return values  # unique per run: a category per value would only cost time
    if name in NUMBER_COLS:
        return values.astype(np.float64)  # None -> NaN; PostgreSQL's Decimals become floats
    if name == "labels_json":
        values = np.array([v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values],
                          dtype=object)
    codes, uniques = pd.factorize(values)  # object categories: no per-value string conversion
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=object))


def _empty(name: str):
    if name == "cache_hit":
        return np.array([], dtype=bool)
    if name in NUMBER_COLS:
        return np.array([], dtype=np.float64)
    return pd.Categorical([])


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
        }


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_report(store, since=None, until=None, group_by: Sequence[str] | str | None = None,
                 now: datetime | None = None, top: int = 10) -> Report:
    """Read the period's runs and compute every table of the report."""
    from .rightsizing import advise, job_requirements

    keys = parse_group_by(group_by)
    df = load_runs(store, since, until, label_keys(keys))
    check_keys(df, keys, known_label_keys(store))
    shapes = store.list("Shape")
    advice = advise(df, shapes, lambda names: job_requirements(store, names))
    return Report(
        since=since, until=until, generated_at=now or store.clock.now(), group_by=keys,
        totals={**totals(df), "rightsizing_savings_usd": float(advice["savings_usd"].sum()) if len(advice) else 0.0},
        groups=breakdown(df, keys),
        daily_by_team=daily_by_team(df),
        by_shape=by_shape(df),
        utilization_histogram=utilization_histogram(df),
        top_jobs=top_jobs(df, top),
        cache=cache_savings(df),
        rightsizing=advice,
        states={str(k): int(v) for k, v in df["state"].value_counts().items() if v},
    )


def known_label_keys(store) -> list[str]:
    with store.engine.connect() as conn:
        specs = conn.execute(select(db.catalog.c.spec).where(db.catalog.c.kind == "Job")).scalars()
        keys = {k for spec in specs for k in (spec or {}).get("labels", {})}
    return sorted(keys)


# -- writing -----------------------------------------------------------------------------------
def write_report(store, fmt: str, out: str | Path, since=None, until=None, group_by=None,
                 now: datetime | None = None, charge_period: str = "month") -> dict[str, Any]:
    """Write one report file; returns a small summary (path, format, runs, cost; rows for FOCUS)."""
    from .focus import CHARGE_PERIODS

    fmt = (fmt or "").lower()
    if fmt not in FORMATS:
        raise SpecError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}", "format", fmt)
    if charge_period not in CHARGE_PERIODS:
        raise SpecError(f"--charge-period {charge_period!r} is not one of {', '.join(CHARGE_PERIODS)}",
                        "charge_period", charge_period)
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

            table = to_focus(df, label_keys(keys), charge_period=charge_period)
            write_focus_csv(table, path)
            summary = {"rows": table.num_rows}
        else:
            run_table(df, keys).to_parquet(path, index=False)
            summary = {}
        summary.update(runs=int(len(df)), cost_usd=float(df["cost_usd"].sum()))
    else:
        report = build_report(store, since, until, group_by, now)
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
            "mem_peak_bytes", "gpu_util_avg"]
    out = df[cols].rename(columns={"util": "utilization"})
    for key in label_keys(keys):
        out[key] = df[_label_column(key)]
    return out


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
