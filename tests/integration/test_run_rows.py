"""store/run_rows.read_sqlite_runs, the run history of a SQLite catalog read without SQLAlchemy (what
`costwise runs` without a daemon uses), answers exactly what Store.list_runs answers, filter by filter,
and declines (None, the store then answers) on a catalog it could read otherwise."""

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core.runs import RunRecord
from scheduler.store.run_rows import read_sqlite_runs, sqlite_path

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def history(app, settings):
    """Runs of two jobs in every kind of state and column: equal queue times (ties broken by id), whole
    seconds and microseconds, JSON columns empty and full, NULLs."""
    store = app.store
    for i in range(12):
        queued = T0 + timedelta(seconds=i // 2, microseconds=(0 if i % 3 else 250_001 * (i % 2)))
        store.create_run(RunRecord(
            id=f"r-{i:010d}", job="train" if i % 2 else "prep", state=("QUEUED", "RUNNING", "SUCCEEDED", "FAILED")[i % 4],
            queued_at=queued, started_at=queued + timedelta(seconds=1) if i % 4 else None,
            ended_at=queued + timedelta(seconds=3, microseconds=7) if i % 4 > 1 else None,
            duration_s=2.5 if i % 4 > 1 else None, exit_code=(None, None, 0, 1)[i % 4], cost_usd=0.001 * i,
            cache_hit=i == 6, reused_from="r-0000000000" if i == 6 else None, mem_peak_bytes=2**40 + i,
            spec={"kind": "Job", "name": "x", "args": ["a", i]} if i % 2 else {}, labels={"team": "ml"} if i % 5 else {},
            placement={"reason": "cheapest", "alternatives": [{"shape": "s", "price_per_hour": 0.1}]}, extra={"n": i},
            market="spot" if i == 5 else "on_demand", attempts=i % 3, preemptions=int(i == 5), lost_s=1.5 * (i == 5)))
    return store, sqlite_path(settings.db_url)


@pytest.mark.parametrize("filters", [
    {}, {"limit": 1}, {"limit": 5}, {"limit": 500}, {"job": "train"}, {"job": "none"}, {"state": "SUCCEEDED"},
    {"state": "FAILED", "job": "train"}, {"since": T0 + timedelta(seconds=3)},
    {"since": T0 + timedelta(seconds=2, microseconds=250_001)}, {"since": (T0 + timedelta(seconds=2)).replace(tzinfo=None)},
    {"since": (T0 + timedelta(seconds=4)).astimezone(timezone(timedelta(hours=-5)))},
    {"job": "prep", "state": "QUEUED", "since": T0, "limit": 2},
], ids=repr)
def test_it_reads_what_the_store_lists(history, filters):
    store, path = history
    assert read_sqlite_runs(path, **filters) == store.list_runs(**filters)


def test_it_declines_a_catalog_the_store_would_migrate_or_refuse(history, tmp_path):
    store, path = history
    assert read_sqlite_runs(tmp_path / "none.db") is None  # the store would create it
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE costwise_meta SET value = '2' WHERE key = 'schema_version'")
    assert read_sqlite_runs(path) is None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE costwise_meta SET value = '1' WHERE key = 'schema_version'")
        conn.execute("ALTER TABLE runs DROP COLUMN lost_s")
    assert read_sqlite_runs(path) is None
    path.write_bytes(b"not a database at all, but long enough to be read as one" * 100)
    assert read_sqlite_runs(path) is None


@pytest.mark.parametrize("url, path", [
    ("sqlite:////abs/catalog.db", "/abs/catalog.db"), ("sqlite:///rel.db", "rel.db"), ("sqlite://", None),
    ("sqlite:///:memory:", None), ("sqlite:///x.db?mode=ro", None), ("postgresql+psycopg://h/db", None),
])
def test_only_a_plain_sqlite_file_is_read_directly(url, path):
    found = sqlite_path(url)
    assert (str(found) if found else None) == path
