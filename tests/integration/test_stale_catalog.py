"""A catalog entry stored under older bounds (an earlier costwise accepted it) is skipped, not fatal."""

import logging
import math
from datetime import timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import insert

from scheduler.core.clock import FrozenClock
from scheduler.core.errors import SpecError
from scheduler.core.specs import parse_spec
from scheduler.daemon.schedules import FireExecutor, ScheduleSync
from scheduler.store import schema as db
from scheduler.store.store import Store

GOOD = {"kind": "Job", "name": "good", "artifact": "/x/good.py", "schedule": {"interval": 3600}}


@pytest.fixture
def store(catalog_url):
    s = Store.open(catalog_url, FrozenClock())
    yield s
    s.close()


def store_as_an_older_costwise_did(store, name: str, interval: float) -> None:
    doc = {**GOOD, "name": name, "schedule": {"interval": interval}}
    now = store.clock.now()
    with store.engine.begin() as conn:
        conn.execute(insert(db.catalog).values(kind="Job", name=name, spec=doc, version=1, created_at=now, updated_at=now))


@pytest.fixture(params=["nan", "too short"])
def stale_interval(request, store) -> float:
    if request.param == "nan":
        if store.dialect != "sqlite":
            pytest.skip("PostgreSQL's json type cannot hold NaN, so no older costwise stored one there")
        return math.nan
    return 0.25  # below today's minimum interval


def test_listing_skips_a_stale_entry_with_one_warning_and_reading_it_says_why(store, stale_interval, caplog):
    store.apply([parse_spec(GOOD)])
    store_as_an_older_costwise_did(store, "old", stale_interval)
    with caplog.at_level(logging.WARNING, logger="scheduler.store.store"):
        assert [spec.name for spec in store.list("Job")] == ["good"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "stored Job 'old' is no longer valid" in warning and "interval" in warning
    with pytest.raises(SpecError, match=r"^stored Job 'old' is no longer valid: .*interval.*; apply it again$") as raised:
        store.require("Job", "old")
    assert "\n" not in str(raised.value)


def test_schedules_sync_past_a_stale_entry(store, stale_interval):
    store.apply([parse_spec(GOOD)])
    store_as_an_older_costwise_did(store, "old", stale_interval)
    scheduler = BackgroundScheduler(executors={"costwise": FireExecutor(lambda *args: None)}, timezone=timezone.utc)
    scheduler.start(paused=True)
    try:
        assert ScheduleSync(scheduler, store).sync()
        assert [job.id for job in scheduler.get_jobs()] == ["job:good"]
    finally:
        scheduler.shutdown(wait=False)
