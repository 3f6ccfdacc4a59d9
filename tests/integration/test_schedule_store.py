"""The daemon's APScheduler job store keeps jobs written before the package was layered."""

import pickle
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy
from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.daemon import schedules


def paused_scheduler(store) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(jobstores={"default": schedules.locked_job_store(store)},
                                    executors={"costwise": schedules.FireExecutor(lambda *args: None)},
                                    timezone=timezone.utc)
    scheduler.start(paused=True)
    return scheduler


def test_a_job_stored_under_the_old_module_path_is_kept_with_its_next_fire(app):
    first_fire = datetime.now(timezone.utc) + timedelta(hours=1)
    scheduler = paused_scheduler(app.store)
    scheduler.add_job(schedules.FIRE_FUNC, "interval", hours=2, args=("Job", "nightly"), id="job:nightly",
                      executor="costwise", next_run_time=first_fire)
    scheduler.shutdown(wait=False)
    with app.store.engine.begin() as conn:  # what a daemon of the flat layout left behind
        state = pickle.loads(conn.exec_driver_sql("select job_state from apscheduler_jobs").scalar_one())
        state["func"] = "scheduler.schedules:fire_now"
        conn.execute(sqlalchemy.text("update apscheduler_jobs set job_state = :state"), {"state": pickle.dumps(state)})

    scheduler = paused_scheduler(app.store)
    try:
        (job,) = scheduler.get_jobs()
        assert (job.id, job.func_ref, job.func) == ("job:nightly", schedules.FIRE_FUNC, schedules.fire_now)
        assert job.next_run_time == first_fire
    finally:
        scheduler.shutdown(wait=False)


def test_the_job_store_starts_while_another_writer_holds_the_catalog(app):
    """A daemon became leader while a run an alert had just started was writing: APScheduler's own
    start (read, then CREATE TABLE in one deferred transaction) died with 'database is locked'."""
    import sqlite3
    import threading
    import time

    if app.store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's one-writer lock; PostgreSQL has no such failure")
    other = sqlite3.connect(app.store.engine.url.database, timeout=30, isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("create table if not exists busy (x)")

    def commit_soon():
        time.sleep(0.5)
        other.execute("insert into busy values (1)")
        other.execute("COMMIT")

    writer = threading.Thread(target=commit_soon)
    writer.start()
    try:
        scheduler = paused_scheduler(app.store)  # waits its turn instead of failing
        scheduler.shutdown(wait=False)
    finally:
        writer.join()
        other.close()


def test_apscheduler_jobs_are_named_after_the_costwise_job_and_a_trigger_edit_replaces_them(app, tmp_path):
    from scheduler.store.catalog import apply_documents, load_documents
    from tests.conftest import write

    write(tmp_path / "tick.py", "print('tick')\n")
    shape = "kind: Shape\nname: small\nvcpus: 1\nmemory_gib: 1\nprice_per_hour: 0.1\n---\n"

    def declare(schedule: str) -> None:
        write(tmp_path / "c.yaml", shape + f"kind: Job\nname: nightly-train\nartifact: tick.py\nschedule: {schedule}\n")
        apply_documents(load_documents([tmp_path / "c.yaml"]), app.store, app.settings)

    declare("{cron: '0 3 * * *'}")
    scheduler = paused_scheduler(app.store)
    try:
        sync = schedules.ScheduleSync(scheduler, app.store)
        sync.sync(force=True)
        (job,) = scheduler.get_jobs()
        assert job.id == "job:nightly-train"
        assert job.name == "job nightly-train (cron=0 3 * * *|interval=None|tz=UTC)"
        assert not sync.sync(force=False)  # nothing changed
        declare("{interval: 1h}")
        assert sync.sync()
        (job,) = scheduler.get_jobs()
        assert job.name.startswith("job nightly-train (cron=None|interval=3600")
    finally:
        scheduler.shutdown(wait=False)
