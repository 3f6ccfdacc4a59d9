"""Schedules: the catalog's cron / interval schedules kept in APScheduler (SQLAlchemy job store in
the catalog database), and what a fire does.

A fire records a queued run keyed by (kind, name, scheduled time). That key is unique in the
store, so a fire repeated after a crash (APScheduler records the next run time only after the
fire) finds the run already there and launches nothing twice. Misfires after downtime are
coalesced into one run; with `misfire_grace_s` set, fires later than that are skipped instead.
"""

from __future__ import annotations

import logging
import math
import pickle
from datetime import datetime
from typing import Callable

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..core.clock import Clock, SystemClock

log = logging.getLogger("costwise.schedules")
FIRE_FUNC = "scheduler.daemon.schedules:fire_now"
# Where the job function lived before the package was layered: job stores written then still name it.
LEGACY_FIRE_FUNCS = frozenset({"scheduler.schedules:fire_now"})


def schedule_id(kind: str, name: str) -> str:
    return f"{kind.lower()}:{name}"


def trigger_for(schedule):
    if schedule.cron is not None:
        return CronTrigger.from_crontab(schedule.cron, timezone=schedule.timezone)
    return IntervalTrigger(seconds=schedule.interval, timezone=schedule.timezone)


def trigger_signature(schedule) -> str:
    return f"cron={schedule.cron}|interval={schedule.interval}|tz={schedule.timezone}"


def job_name(kind: str, name: str, schedule) -> str:
    """The APScheduler job's name: the costwise job or pipeline it fires, then its trigger (so a
    changed trigger reads as a changed name, which is how sync sees an edit)."""
    return f"{kind.lower()} {name} ({trigger_signature(schedule)})"


_current_fire: Callable[[str, str, datetime | None], None] | None = None


def fire_now(kind: str, name: str) -> None:
    """The job function APScheduler stores; the costwise executor calls the daemon directly."""
    if _current_fire is None:
        raise RuntimeError("no costwise daemon is running in this process")
    _current_fire(kind, name, None)  # None: due now, on the daemon's clock


class FireExecutor(BaseExecutor):
    """Fires inline with the scheduled time, so each fire can be recorded exactly once."""

    def __init__(self, on_fire: Callable[[str, str, datetime | None], None], clock: Clock | None = None):
        super().__init__()
        self.on_fire, self.clock = on_fire, clock or SystemClock()

    def submit_job(self, job, run_times):
        for event in self._fire(job, run_times):
            self._scheduler._dispatch_event(event)

    _do_submit_job = submit_job  # abstract in BaseExecutor; unused, since submit_job fires inline

    def _fire(self, job, run_times) -> list[JobExecutionEvent]:
        events = []
        now = self.clock.now()
        for run_time in run_times:
            grace = job.misfire_grace_time
            if grace is not None and (now - run_time).total_seconds() > grace:
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, run_time))
                continue
            try:
                self.on_fire(*job.args, run_time)
            except Exception:  # noqa: BLE001 - one broken fire must not stop the scheduler
                log.exception("fire of %s at %s failed", job.id, run_time)
            events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_time))
        return events


def locked_job_store(store, tablename: str = "apscheduler_jobs"):
    """APScheduler's SQLAlchemy job store on the catalog, writing under the store's write lock."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    class LockedJobStore(SQLAlchemyJobStore):
        def _reconstitute_job(self, job_state):
            # APScheduler drops a job whose function it cannot import; point an old reference at today's.
            state = pickle.loads(job_state)
            if state.get("func") in LEGACY_FIRE_FUNCS:
                state["func"] = FIRE_FUNC
            return super()._reconstitute_job(pickle.dumps(state, self.pickle_protocol))

        def start(self, scheduler, alias):
            # Its own start creates the table in a deferred transaction (read, then write), which
            # SQLite fails at once with "database is locked" while another writer is busy (a run an
            # alert just started); a write transaction waits its turn instead.
            with store.write() as conn:
                self.jobs_t.create(conn, checkfirst=True)
            super().start(scheduler, alias)  # finds the table: reads only

        def add_job(self, job):
            with store.write_lock():
                super().add_job(job)

        def update_job(self, job):
            with store.write_lock():
                super().update_job(job)

        def remove_job(self, job_id):
            with store.write_lock():
                super().remove_job(job_id)

    return LockedJobStore(engine=store.engine, tablename=tablename)


class ScheduleSync:
    """Keeps APScheduler's jobs equal to the schedules declared in the catalog."""

    def __init__(self, scheduler, store, misfire_grace_s: float | None = None):
        self.scheduler = scheduler
        self.store = store
        self.misfire_grace_s = misfire_grace_s
        self._version = None

    def sync(self, force: bool = False) -> bool:
        version = self.store.catalog_version()
        if version == self._version and not force:
            return False
        wanted = {}
        for kind in ("Job", "Pipeline"):
            for spec in self.store.list(kind):
                if spec.schedule is not None:
                    wanted[schedule_id(kind, spec.name)] = (kind, spec)
        existing = {job.id: job for job in self.scheduler.get_jobs()}
        for job_id, job in existing.items():
            if job_id not in wanted:
                self.scheduler.remove_job(job_id)
        for job_id, (kind, spec) in wanted.items():
            name = job_name(kind, spec.name, spec.schedule)
            current = existing.get(job_id)
            if current is not None and current.name == name:
                continue
            self.scheduler.add_job(
                FIRE_FUNC, trigger_for(spec.schedule), args=(kind, spec.name), id=job_id, name=name,
                executor="costwise", coalesce=True, max_instances=1, replace_existing=True,
                misfire_grace_time=None if self.misfire_grace_s is None else max(1, math.ceil(self.misfire_grace_s)),
            )
        self._version = version
        return True
