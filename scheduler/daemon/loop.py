"""`costwise daemon`: schedules, dispatch, deadlines, restarts, the HTTP API and /metrics.

One active daemon per catalog (leader lock); others wait as standbys. The leader:
- keeps APScheduler's jobs equal to the catalog's schedules (checked every second);
- dispatches queued runs and pipeline runs (placement, capacity, max_wait spill-over, budgets);
- supervises every live run (deadlines, cancel requests, utilization) in a thread of its own;
- at start, and every few seconds, adopts runs whose supervisor is gone (after a crash or a
  `kill -9`, a killed `costwise run --wait`, or one of its own supervisor threads that died), or
  records how they ended when nothing of them is left (TIMED_OUT when the run's own watchdog
  stopped it at its deadline, else by its exit code, else FAILED with reason `lost`);
- on SIGTERM stops launching and returns; runs that are still going are adopted by the next leader.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timezone

from ..core.clock import Clock, SystemClock
from ..core.errors import CostwiseError, UserError
from ..core.runs import LIVE_STATES, RunRecord
from ..runtime.engine import Engine
from ..runtime.finish import owner_alive
from ..runtime.pipeline_runner import PipelineRunner
from ..store import heartbeat
from ..store.leader import leader_lock
from ..store.settings import Settings
from ..store.store import Store
from . import adoption
from .dispatching import Dispatching
from .workers import Workers
from ..runtime.changes import Changes

log = logging.getLogger("costwise.daemon")
HEARTBEAT_S = 1.0
RECONCILE_S = 5.0


class Daemon(Dispatching):
    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 9464,
        token: str | None = None,
        misfire_grace_s: float | None = None,
        alert_map: dict[str, str] | None = None,
        poll_s: float = 1.0,  # a fallback only: submits, fires and ends wake the loop at once
        standby_poll_s: float = 1.0,
        clock: Clock | None = None,
        metrics_labels: str | None = None,
    ):
        from ..reporting.metrics_labels import ENV, allocation_labels

        # the cost-allocation labels of /metrics (COSTWISE_METRICS_LABELS): a bad one refuses to start (exit 2)
        self.metrics_labels = allocation_labels(metrics_labels if metrics_labels is not None else os.environ.get(ENV))
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            raise UserError(f"--host {host!r} is not loopback: give an API token (--token or COSTWISE_API_TOKEN)")
        self.settings = settings
        self.host, self.port, self.token = host, port, token
        self.misfire_grace_s = misfire_grace_s
        self.alert_map = dict(alert_map or {})
        self.poll_s, self.standby_poll_s = poll_s, standby_poll_s
        self.clock = clock or SystemClock()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.changes = Changes()  # what API followers of a run wait on
        self.is_leader = False
        self._supervised: set[str] = set()
        self.workers = Workers()  # supervisor threads, reused
        self._pipelines: set[str] = set()
        self._lock = threading.Lock()
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.scheduler = None
        self.http = None

    # -- lifecycle -----------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM / SIGINT (or stop()); returns the process exit code."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.store = Store.open(self.settings.db_url, self.clock)
        self.engine = Engine(self.settings, self.store, self.clock)
        self.engine.listeners.append(lambda _run: self.wake.set())
        self.engine.listeners.append(self.changes.notify)
        self._wake_on_submit()
        from ..reporting.metrics import make_registry

        # a standby serves only costwise_leader 0 and its own measurements: sum() over both is the leader's
        self.registry, self.metrics, _ = make_registry(self.store, clock=self.clock, prime=True,
                                                       labels=self.metrics_labels, leader=lambda: self.is_leader)
        from .api import start_api

        self.http = start_api(self, self.host, self.port)
        self.port = self.http.server_port
        log.info("costwise daemon listening on http://%s:%d (standby until it holds the leader lock)", self.host, self.port)
        lock = leader_lock(self.store, self.settings.home)
        try:
            while not self.stopping.is_set() and not lock.try_acquire():
                self.clock.wait(self.stopping, self.standby_poll_s)
            if self.stopping.is_set():
                return 0
            self._lead(lock)
            return 0 if self.stopping.is_set() else 3  # 3: lost the leader lock
        finally:
            self._shutdown(lock)

    def _wake_on_submit(self) -> None:
        """Every run queued in this process (API, schedules, pipeline steps) wakes the dispatch loop
        at once; runs queued by another process wake it through POST /wake."""
        submit = self.engine.submit

        def submit_and_wake(*args, **kwargs):
            run = submit(*args, **kwargs)
            self.wake.set()
            self.changes.notify()
            return run

        self.engine.submit = submit_and_wake

    def stop(self, *_args) -> None:
        self.stopping.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _lead(self, lock) -> None:
        self.is_leader = True
        log.info("leader: scheduling and dispatching")
        self._heartbeat()
        self.reconcile()
        self._start_scheduler()
        dispatcher = threading.Thread(target=self._dispatch_loop, name="dispatch", daemon=True)
        dispatcher.start()
        next_reconcile = self.clock.monotonic() + RECONCILE_S
        while not self.clock.wait(self.stopping, HEARTBEAT_S):
            if not lock.still_held():
                log.error("lost the leader lock; stopping")
                return
            try:
                self._heartbeat()
                self.sync.sync()
                if self.clock.monotonic() >= next_reconcile:
                    self.reconcile()
                    next_reconcile = self.clock.monotonic() + RECONCILE_S
            except Exception:  # noqa: BLE001 - a database hiccup: try again on the next beat
                log.exception("housekeeping failed")

    def _shutdown(self, lock) -> None:
        self.stopping.set()
        self.wake.set()
        if self.scheduler is not None and self.scheduler.running:  # (a failed start must not be masked)
            self.scheduler.shutdown(wait=False)
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        if self.is_leader:
            self._clear_heartbeat()
        lock.release()
        self.store.close()

    # -- heartbeat: how the CLI knows a daemon is up -------------------------------------------
    def _heartbeat(self) -> None:
        url = f"http://{self.host}:{self.port}"
        heartbeat.beat(self.store, url, os.getpid(), self.clock.now().timestamp())
        try:  # the beacon is for CLIs on this host; the row above is the truth
            heartbeat.write_beacon(self.settings.home, heartbeat.Beacon(
                url, os.getpid(), time.time(), socket.gethostname(), heartbeat.catalog_id(self.settings.db_url),
                bool(self.token)))
        except OSError as exc:
            log.warning("cannot write the daemon beacon under %s: %s", self.settings.home, exc)

    def _clear_heartbeat(self) -> None:
        heartbeat.clear(self.store)
        heartbeat.clear_beacon(self.settings.home, os.getpid())

    # -- schedules -----------------------------------------------------------------------------
    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        from . import schedules

        self.scheduler = BackgroundScheduler(
            jobstores={"default": schedules.locked_job_store(self.store)},
            executors={"costwise": schedules.FireExecutor(self.fire, self.clock)},
            timezone=timezone.utc,
        )
        schedules._current_fire = self.fire
        self.sync = schedules.ScheduleSync(self.scheduler, self.store, self.misfire_grace_s)
        self.scheduler.start(paused=True)
        self.sync.sync(force=True)
        self.scheduler.resume()

    def fire(self, kind: str, name: str, scheduled: datetime | None) -> None:
        """A due schedule (None: due now): queue one run, keyed by its scheduled time so a repeat adds nothing."""
        scheduled = scheduled or self.clock.now()
        self.metrics.observe_lag((self.clock.now() - scheduled).total_seconds())
        key = f"{kind}:{name}:{scheduled.astimezone(timezone.utc).isoformat()}"
        try:
            if kind == "Job":
                self.engine.submit(name, message=f"scheduled for {scheduled.isoformat()}", fire_key=key,
                                   extra={"trigger": "schedule"})
            else:
                PipelineRunner(self.engine).submit(name, trigger="schedule", fire_key=key)
        except CostwiseError as exc:
            log.warning("schedule of %s %s not started: %s", kind.lower(), name, exc)
        self.wake.set()

    def _start_pipeline(self, prun_id: str, resume: bool) -> None:
        with self._lock:
            if prun_id in self._pipelines:
                return
            self._pipelines.add(prun_id)

        def execute():
            try:
                PipelineRunner(self.engine, dispatched=True).execute(prun_id, resume=resume)
            except Exception:  # noqa: BLE001
                log.exception("pipeline run %s failed", prun_id)
            finally:
                with self._lock:
                    self._pipelines.discard(prun_id)
                self.changes.notify()

        threading.Thread(target=execute, name=f"pipeline-{prun_id}", daemon=True).start()

    # -- restarts ------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Adopt live runs and pipeline runs whose supervisor is gone; settle the ones that are lost."""
        for run in self.store.list_runs(state=LIVE_STATES, newest_first=False, limit=None):
            with self._lock:
                if run.id in self._supervised:
                    continue
            if owner_alive(run.handle) and not self._owned_here(run.handle):
                continue  # a `costwise run --wait` elsewhere watches it
            try:
                self.adopt(run)
            except Exception:  # noqa: BLE001 - one odd run must not stop the others' adoption
                log.exception("adopting %s failed", run.id)
        for prun in self.store.pipeline_runs.list(state="RUNNING", limit=None):
            owner = (prun.get("extra") or {}).get("owner", {})
            if prun["id"] in self._pipelines or owner_alive(owner):
                continue
            self._start_pipeline(prun["id"], resume=True)

    def _owned_here(self, handle: dict) -> bool:
        return handle.get("owner_pid") == os.getpid() and handle.get("owner_ct") == self.engine.owner["owner_ct"]

    def adopt(self, run: RunRecord) -> None:
        """Supervise a live run nobody watches, or record how it ended (see adoption.py)."""
        adoption.adopt(self, run)


def daemon_url(store, max_age_s: float = 5.0) -> str | None:
    """The leader's API address if a daemon has beaten its heart recently, else None."""
    last = heartbeat.last_beat(store)
    if last is None:
        return None
    url, _pid, at = last
    return url if store.clock.now().timestamp() - at <= max_age_s else None
