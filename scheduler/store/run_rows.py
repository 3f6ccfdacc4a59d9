"""A run row as a RunRecord (what the store and the reader below share), and the run history of a SQLite
catalog read with the stdlib's sqlite3.

`costwise runs` without a daemon reads one table, and SQLAlchemy's import alone took 0.15-0.3 s of a
command line meant to answer in 0.3 s. `read_sqlite_runs` answers what Store.list_runs answers for the
filters `costwise runs` has (job, state, since, limit; newest first): the same columns
(core.runs.RUN_FIELD_NAMES) decoded by the types the catalog's own DDL declares (schema.py's: DATETIME
as SQLAlchemy's SQLite dialect writes it, naive UTC; JSON as text), through the same `record_from_row`.
It declines (None) wherever it could read otherwise than the store: a catalog at another schema
version (the store migrates or refuses it), a column missing, anything sqlite3 raises; the caller then
opens the store. tests/integration/test_run_rows.py holds it to Store.list_runs, filter by filter.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ..core.runs import RUN_FIELD_NAMES, RunRecord
from .schema_version import SCHEMA_VERSION

JSON_FIELDS = ("spec", "overrides", "labels", "placement", "handle", "extra")
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's SQLite DATETIME stores a (naive UTC) time


def record_from_row(row: Mapping[str, Any]) -> RunRecord:
    """A runs row (its columns decoded) as a RunRecord; NULL JSON columns read as empty."""
    data = {name: row[name] for name in RUN_FIELD_NAMES}
    for key in JSON_FIELDS:
        data[key] = data[key] or {}
    data["cache_hit"] = bool(data["cache_hit"])
    return RunRecord(**data)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite catalog URL (as schema.make_engine reads it); None for any other catalog."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url.split("///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None


def read_sqlite_runs(path: Path, job: str | None = None, state: str | None = None, since: datetime | None = None,
                     limit: int | None = None) -> list[RunRecord] | None:
    """Store.list_runs(job=, state=, since=, limit=) of the SQLite catalog at ``path``, or None (see above)."""
    if not path.is_file():
        return None  # the store creates an empty catalog
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)) as conn:
            decoders = _decoders(conn)
            if decoders is None:
                return None
            rows = conn.execute(*_query(job, state, since, limit))
            names = [d[0] for d in rows.description]
            return [record_from_row({name: decoders[name](value) for name, value in zip(names, row)}) for row in rows]
    except sqlite3.Error:
        return None


def _decoders(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """A decoder per run column by its declared type; None unless the catalog is at this schema version
    with every column."""
    version = conn.execute("SELECT value FROM costwise_meta WHERE key = 'schema_version'").fetchone()
    if version is None or version[0] != str(SCHEMA_VERSION):
        return None
    declared = {name: decl.upper() for _, name, decl, *_ in conn.execute("PRAGMA table_info(runs)")}
    if not set(RUN_FIELD_NAMES) <= set(declared):
        return None
    kinds = {"DATETIME": _utc_datetime, "JSON": _json}
    return {name: kinds.get(declared[name], _same) for name in RUN_FIELD_NAMES}


def _query(job, state, since, limit) -> tuple[str, list[Any]]:
    where, params = [], []
    for column, value in (("job", job), ("state", state)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if since:
        where.append("queued_at >= ?")
        naive_utc = since if since.tzinfo is None else since.astimezone(timezone.utc).replace(tzinfo=None)
        params.append(naive_utc.strftime(SQLITE_DATETIME))  # as schema.UTCDateTime binds it
    sql = f"SELECT {', '.join(RUN_FIELD_NAMES)} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY queued_at DESC, id DESC"
    if limit:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def _utc_datetime(value):
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def _json(value):
    return None if value is None else json.loads(value)


def _same(value):
    return value
