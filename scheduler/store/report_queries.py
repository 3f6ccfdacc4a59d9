"""The run history as a report reads it: one query for the finished runs of a period (only the columns a
report needs) read into DataFrame columns, and the catalog facts reports look up (label keys, job needs).

On SQLite the runs are read through ADBC straight into Arrow columns, in parallel rowid slices (the
driver reads in C without the GIL); elsewhere, or where that path fails, the rows are read in chunks.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Float, Text, cast, extract, func, select
from sqlalchemy import text as sql_text

from . import schema as db
from . import spend_queries
from .metrics_queries import spot_columns

CHUNK_ROWS = 200_000
UNIX_JULIAN_DAY = 2440587.5
PARALLEL_READ_ROWS = 200_000  # below this one connection reads the runs table as fast
BUSY_TIMEOUT_MS = 60_000
NUMBER_COLS = {"ended_epoch", "started_epoch", "duration_s", "cost_usd", "saved_usd", "cpu_util_avg",
               "mem_peak_bytes", "gpu_util_avg", "price_per_hour", "attempts", "preemptions", "lost_s",
               "spot_cost_usd", "spot_s"}
log = logging.getLogger(__name__)


def label_column(key: str) -> str:
    """The column a run label is read into."""
    return f"label:{key}"


def _epoch(col, dialect: str):
    if dialect == "sqlite":
        return (func.julianday(col) - UNIX_JULIAN_DAY) * 86400.0
    return cast(extract("epoch", col), Float)


def runs_query(dialect: str, since=None, until=None, labels: Sequence[str] = (), detail: bool = False):
    """The runs that ended in [since, until), only the columns a report needs (times as epoch seconds).
    Spot: ``spot_cost_usd`` / ``spot_s`` are the run's spot attempts' cost and seconds (null for a run never
    on spot), split per attempt exactly as /metrics splits them (``metrics_queries.spot_columns``)."""
    r = db.runs.c
    spot_cost, spot_s = spot_columns(dialect)
    cols = [
        r.job, r.pipeline, r.step, r.state, r.shape,
        _epoch(r.ended_at, dialect).label("ended_epoch"),
        r.duration_s, r.cost_usd, r.saved_usd, r.cache_hit, r.cpu_util_avg, r.mem_peak_bytes, r.gpu_util_avg,
        r.extra[("cache", "result")].as_string().label("cache_result"),  # 'hit' / 'miss' for step cache lookups
        r.attempts, r.preemptions, r.lost_s, spot_cost.label("spot_cost_usd"), spot_s.label("spot_s"),
    ]
    cols += [r.labels[key].as_string().label(label_column(key)) for key in labels]
    if detail:
        cols += [r.id, r.backend, r.market, r.price_per_hour, _epoch(r.started_at, dialect).label("started_epoch"),
                 cast(r.labels, Text).label("labels_json") if dialect == "sqlite" else r.labels.label("labels_json")]
    query = select(*cols).where(r.ended_at.is_not(None))  # a full-history scan, not an index walk
    if since is not None:
        query = query.where(r.ended_at >= since)
    if until is not None:
        query = query.where(r.ended_at < until)
    return query


def read_runs(store, since=None, until=None, labels: Sequence[str] = (), detail: bool = False) -> pd.DataFrame:
    """The runs that ended in [since, until) as read: strings categorical, numbers float, times epoch seconds."""
    query = runs_query(store.dialect, since, until, labels, detail)
    names = [c.name for c in query.selected_columns]
    frame = read_columnar(store, query, names)
    if frame is None:
        frame = _from_chunks(_read_rows(store, query, names), names)
    return pd.DataFrame(frame)


def known_label_keys(store) -> list[str]:
    """Every label key a Job in the catalog declares."""
    with store.engine.connect() as conn:
        specs = conn.execute(select(db.catalog.c.spec).where(db.catalog.c.kind == "Job")).scalars()
        keys = {k for spec in specs for k in (spec or {}).get("labels", {})}
    return sorted(keys)


def shape_prices(store) -> dict[str, float]:
    """Each catalog shape's on-demand price per hour (what a spot attempt would have cost instead)."""
    with store.engine.connect() as conn:
        specs = conn.execute(select(db.catalog.c.name, db.catalog.c.spec).where(db.catalog.c.kind == "Shape"))
        return {name: float((spec or {}).get("price_per_hour") or 0.0) for name, spec in specs}


def budget_spend(store, since, now) -> pd.DataFrame:
    """What budgets count since a time, per label set (``labels``, ``usd``): the finished runs' cost and
    what the running runs have cost so far, read by the same queries the engine's budget ledger reads."""
    rows = [(s.labels, s.usd) for s in spend_queries.finished_spend_by_labels(store, since)]
    rows += [(live.labels, live.price_per_hour * max((now - live.started_at).total_seconds(), 0.0) / 3600.0)
             for live in spend_queries.live_burn(store, since)]
    return pd.DataFrame(rows, columns=["labels", "usd"])


def job_docs(store, names: Iterable[str]) -> dict[str, dict]:
    """The stored documents of the named jobs, straight from the catalog rows (no full parse)."""
    names = list(names)
    out: dict[str, dict] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(names), 500):
            rows = conn.execute(
                select(db.catalog.c.name, db.catalog.c.spec)
                .where(db.catalog.c.kind == "Job", db.catalog.c.name.in_(names[i:i + 500]))
            )
            out.update({name: spec or {} for name, spec in rows})
    return out


# -- the columnar reader (SQLite) ------------------------------------------------------------------
def read_columnar(store, query, names: list[str]) -> dict[str, Any] | None:
    """SQLite through ADBC: rows go straight into Arrow columns in C, not through Python tuples
    (about 2.5x quicker over a million runs). None where that path is not available."""
    if store.dialect != "sqlite" or not store.engine.url.database:
        return None
    try:
        import pyarrow as pa

        parts = rowid_ranges(store)
        if len(parts) > 1:  # the driver reads in C without the GIL: slices of the table in parallel
            with ThreadPoolExecutor(len(parts)) as pool:
                table = pa.concat_tables(list(pool.map(lambda part: _fetch_arrow(store, query, part), parts)))
        else:
            table = _fetch_arrow(store, query, None)
    except Exception as exc:  # noqa: BLE001 - no driver, or a literal it cannot render: the row path reads it
        log.debug("columnar read not used: %s", exc)
        return None
    if table.num_rows == 0:
        return None
    return {name: _arrow_column(name, table.column(name).combine_chunks()) for name in names}


def _fetch_arrow(store, query, part: tuple[int, int] | None):
    import adbc_driver_sqlite.dbapi as adbc

    ranged = query if part is None else query.where(sql_text(f"runs.rowid BETWEEN {part[0]} AND {part[1]}"))
    sql = str(ranged.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    with adbc.connect(store.engine.url.database) as conn, conn.cursor() as cursor:
        # connections opening a WAL database together can meet a short lock: wait, as the store does
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute(sql)
        return cursor.fetch_arrow_table()


def _arrow_column(name: str, column):
    import pyarrow.compute as pc

    if name == "cache_hit":
        return pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(bool)
    if name == "id":
        return pd.array(column.to_numpy(zero_copy_only=False), dtype="str")
    if name in NUMBER_COLS:
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    encoded = pc.dictionary_encode(column.cast("string") if column.type != "string" else column)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    return pd.Categorical.from_codes(codes, categories=pd.Index(encoded.dictionary.to_pylist(), dtype=object))


def rowid_ranges(store) -> list[tuple[int, int] | None]:
    """Contiguous rowid slices of the runs table, one per core (up to 4), in rowid order."""
    with store.engine.connect() as conn:
        low, high = conn.execute(sql_text("SELECT min(rowid), max(rowid) FROM runs")).one()
    workers = min(os.cpu_count() or 1, 4)
    if low is None or workers < 2 or high - low < PARALLEL_READ_ROWS:
        return [None]
    step = (high - low) // workers + 1
    return [(start, min(start + step - 1, high)) for start in range(low, high + 1, step)]


# -- the row reader (PostgreSQL, or where ADBC is not available) -------------------------------------
def _read_rows(store, query, names: list[str]) -> dict[str, list]:
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


def _empty(name: str):
    if name == "cache_hit":
        return np.array([], dtype=bool)
    if name in NUMBER_COLS:
        return np.array([], dtype=np.float64)
    return pd.Categorical([])
