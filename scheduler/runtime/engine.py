"""The engine: submit, place, launch, supervise and finish runs. Shared by the CLI and the daemon.

Every state change is written to the store before it is acted on, and state moves are
compare-and-set, so two supervisors can never both launch or both finish one run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable

import psutil

from ..core import placement
from ..core.clock import Clock, SystemClock
from ..core.durations import format_duration
from ..core.errors import CostwiseError, SpecError, UserError
from ..executors import Executor, ExitStatus, make_executor
from ..executors.base import capped_grace
from .faults import crash_point
from .launch import build_launch, effective_spec, run_dirs
from .results import build_results, write_results
from ..core.runs import (
    ACTIVE_STATES, CANCELED, FAILED, LIVE_STATES, QUEUED, RUNNING, STARTING, SUCCEEDED, TIMED_OUT,
    RunRecord, new_run_id,
)
from ..store.settings import Settings
from ..core.specs import JobSpec, RunOverrides
from ..store.store import Store

Progress = Callable[[RunRecord, float], None]
ALTERNATIVES_KEPT = 5
CANCEL_CHECK_S = 0.5
INDEX_RECHECK_S = 0.5


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock | None = None,
        python: str = sys.executable,
        executors: dict[str, Executor] | None = None,
    ):
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.python = python
        self._executors = dict(executors or {})
        self._lock = threading.Lock()
        self._index: tuple[tuple, placement.ShapeIndex] | None = None
        self._index_checked = 0.0
        self.owner = _owner()
        self.listeners: list[Callable[[RunRecord], None]] = []  # told once about each finished run
        self._spend_cache: dict[str, tuple[float, float]] = {}
        from .hooks import HookRunner

        self.hooks = HookRunner(self)

    # -- plumbing ------------------------------------------------------------------------------
    def executor(self, backend: str) -> Executor:
        with self._lock:
            if backend not in self._executors:
                self._executors[backend] = make_executor(backend)
            return self._executors[backend]

    def python_for(self, shape) -> str:
        """Local runs use costwise's own interpreter; containers use the image's python3."""
        return self.python if shape.backend == "local" else "python3"

    def shape_index(self) -> placement.ShapeIndex:
        """The catalog's shapes, re-read when the catalog changed (checked at most every 0.5 s)."""
        cached, mono = self._index, self.clock.monotonic()
        if cached is not None and mono - self._index_checked < INDEX_RECHECK_S:
            return cached[1]
        version = self.store.catalog_version()
        if cached is None or cached[0] != version:
            cached = (version, placement.ShapeIndex(self.store.list("Shape")))
            self._index = cached
        self._index_checked = mono
        return cached[1]

    @staticmethod
    def request_for(job: JobSpec, queued_at=None, backends=None) -> placement.PlacementRequest:
        return placement.PlacementRequest(
            job=job.name,
            requirements=job.requirements,
            pinned_shape=job.shape,
            backends=backends,
            has_image=bool(job.image),
            declared_duration_s=job.expected_duration,
            max_wait_s=job.max_wait,
            queued_at=queued_at,
        )

    # -- submit --------------------------------------------------------------------------------
    def submit(
        self,
        job_name: str,
        overrides: RunOverrides = RunOverrides(),
        *,
        job: JobSpec | None = None,
        message: str | None = None,
        **context,
    ) -> RunRecord:
        """Queue a run of a job (bad overrides are refused here, before anything is stored)."""
        job = effective_spec(job or self.store.require("Job", job_name), overrides)
        index = self.shape_index()
        if job.shape is not None and job.shape not in index.by_name:
            raise SpecError(f"--shape {job.shape!r} is not a declared shape", "shape", job.shape)
        from ..store.catalog import check_job_fits

        check_job_fits(job, index.shapes)
        context.setdefault("labels", dict(job.labels))
        run = RunRecord(
            id=new_run_id(),
            job=job.name,
            state=QUEUED,
            queued_at=self.clock.now(),
            spec=job.model_dump(mode="json"),
            overrides=overrides.model_dump(mode="json", exclude_defaults=True),
            **context,
        )
        return self.store.create_run(run, message or "queued")

    # -- placement and launch ------------------------------------------------------------------
    def new_round(self) -> "DispatchRound":
        """One snapshot of shapes, slots and budgets for placing a batch of queued runs."""
        index = self.shape_index()
        in_use = self.store.in_use_by_shape()
        return DispatchRound(self, index, in_use, index.snapshot(in_use), {}, bool(self.store.names("Budget")))

    def try_start(
        self, run: RunRecord, backends=None, round: "DispatchRound | None" = None, launch: bool = True
    ) -> RunRecord | None:
        """Place and launch a queued run if its shape has room now; None while it must wait.
        With launch=False the run is only placed (STARTING): the caller launches it."""
        job = JobSpec.model_validate(run.spec)
        round = round or self.new_round()
        if backends is None and run.extra.get("backends"):
            backends = frozenset(run.extra["backends"])
        req = self.request_for(job, run.queued_at, backends)
        for _ in range(5):  # a slot taken by someone else between placing and claiming: place again
            index, history = round.index, round.history(job.name)
            decision = placement.place(req, round.snapshot, history, self.clock.now())
            if decision.action == "refuse":
                return self._finish_unlaunched(run.id, FAILED, decision.reason)
            if decision.action == "wait":
                if run.placement.get("reason") != decision.reason:
                    run.placement = {"reason": decision.reason}
                    self.store.update_run(run.id, expect=[QUEUED], placement=run.placement, message=decision.reason)
                return None
            held = self.budget_verdict(run, decision) if round.has_budgets else None
            if held is not None:
                if held.startswith("refused"):
                    return self._finish_unlaunched(run.id, FAILED, held)
                if run.placement.get("reason") != held:
                    run.placement = {"reason": held}
                    self.store.update_run(run.id, expect=[QUEUED], placement=run.placement, message=held)
                return None
            shape = index.by_name[decision.shape]
            ranked = placement.alternatives(req, round.snapshot, history, ALTERNATIVES_KEPT)
            info = {
                "reason": decision.reason,
                "alternatives": [
                    {"shape": c.shape, "expected_cost_usd": c.expected_cost_usd, "price_per_hour": c.price_per_hour,
                     "expected_duration_s": c.expected_duration_s, "duration_source": c.duration_source,
                     "free_slots": c.free_slots}
                    for c in ranked
                ],
            }
            # the deadline is set with the claim: a run is never live without one, whoever dies when
            deadline = self.clock.now() + timedelta(seconds=job.max_runtime)
            claimed = self.store.claim_slot(
                run.id, shape.name, shape.capacity,
                backend=shape.backend, price_per_hour=shape.price_per_hour, placement=info, handle=self.owner,
                deadline_at=deadline,
            )
            if claimed:
                crash_point("after-claim")
                round.took(shape.name)
                # what claim_slot wrote, without reading it back (a dispatch round claims many runs)
                placed = replace(run, state=STARTING, shape=shape.name, backend=shape.backend,
                                 price_per_hour=shape.price_per_hour, placement=info, handle=self.owner,
                                 deadline_at=deadline)
                return self.launch(run.id, placed) if launch else placed
            current = self.store.get_run(run.id)
            if current.state != QUEUED:
                return None  # canceled, or started by another supervisor
            round = self.new_round()
        return None

    def launch(self, run_id: str, run: RunRecord | None = None) -> RunRecord:
        """Start a STARTING run on its shape (``run``: its record when the caller just wrote it)."""
        run = run or self.store.get_run(run_id)
        job = JobSpec.model_validate(run.spec)
        shape = self.shape_index().by_name.get(run.shape)
        if shape is None:
            return self._finish_unlaunched(run_id, FAILED, f"shape {run.shape!r} was deleted before launch")
        try:
            spec = build_launch(self.settings, run, job, shape, self.python_for(shape), create=True, now=self.clock.now())
            handle = {**self.owner, **self.executor(shape.backend).launch(spec)}
        except (CostwiseError, OSError) as exc:
            return self._finish_unlaunched(run_id, FAILED, f"launch failed: {exc}")
        crash_point("after-spawn")
        started = run.started_at or self.clock.now()  # a retry keeps the first attempt's start and deadline
        running = dict(state=RUNNING, started_at=started, deadline_at=run_deadline(run, job, started),
                       handle=handle, artifacts_dir=str(spec.dirs["artifacts"]))
        if self.store.update_run(run_id, expect=[STARTING], **running,
                                 message=f"launched on {shape.name} ({shape.backend}), attempt {run.attempt + 1}"):
            return replace(run, **running)
        return self.store.get_run(run_id)

    # -- supervision ---------------------------------------------------------------------------
    def supervise(self, run: RunRecord, progress: Progress | None = None) -> RunRecord:
        """Watch a running run until it ends: deadline, cancel requests, samples, retries."""
        crash_point("supervise")
        executor = self.executor(run.backend)
        job = JobSpec.model_validate(run.spec)
        grace = capped_grace(job.stop_grace)
        if run.deadline_at is None:  # written by an older version: never supervise without one
            run = replace(run, deadline_at=run_deadline(run, job, self.clock.now()))
        start_mono = self.clock.monotonic()
        sample_every, next_sample = 0.02, start_mono + 0.01
        next_check = start_mono + CANCEL_CHECK_S
        while True:
            now_mono = self.clock.monotonic()
            remaining = (run.deadline_at - self.clock.now()).total_seconds()
            timeout = max(0.0, min(remaining, next_sample - now_mono, next_check - now_mono))
            status = executor.wait(run.handle, timeout)
            if status is not None:
                if status.timed_out:  # its own watchdog stopped it (e.g. while nobody supervised it)
                    return self._finish(run, executor, status, TIMED_OUT, f"max runtime {format_duration(job.max_runtime)} reached")
                if (status.exit_code != 0 and run.attempt < job.retries and status.reason != "lost"
                        and not getattr(executor, "retries_itself", False)):  # k8s: backoffLimit retries
                    run = self._retry(run, status)
                    continue
                return self._finish(run, executor, status)
            now_mono = self.clock.monotonic()
            if (run.deadline_at - self.clock.now()).total_seconds() <= 0:
                status = executor.cancel(run.handle, grace)
                return self._finish(run, executor, status, TIMED_OUT, f"max runtime {format_duration(job.max_runtime)} reached")
            if now_mono >= next_check:
                next_check = now_mono + CANCEL_CHECK_S
                current = self.store.get_run(run.id)
                if current.cancel_requested_at is not None:
                    status = executor.cancel(run.handle, grace)
                    return self._finish(run, executor, status, CANCELED, "canceled by request")
                if current.finished:  # finished by someone else (e.g. marked lost)
                    return current
            if now_mono >= next_sample:
                executor.sample(run.handle)
                sample_every = min(sample_every * 2, 2.0)
                next_sample = now_mono + sample_every
                if progress:
                    progress(run, now_mono - start_mono)

    def _retry(self, run: RunRecord, status: ExitStatus) -> RunRecord:
        self.store.update_run(
            run.id, expect=[RUNNING], state=STARTING, attempt=run.attempt + 1,
            message=f"attempt {run.attempt + 1} failed ({status.reason}); retrying",
        )
        self.executor(run.backend).forget(run.handle)
        return self.launch(run.id)

    def run_to_completion(
        self, run: RunRecord, progress: Progress | None = None, poll_s: float = 0.25, backends=None
    ) -> RunRecord:
        """Wait for a slot, then supervise: what `costwise run --wait` does without a daemon."""
        try:
            while True:
                started = self.try_start(run, backends)
                if started is not None:
                    if started.state in LIVE_STATES:
                        return self.supervise(started, progress)
                    return started
                current = self.store.get_run(run.id)
                if current.state != QUEUED:
                    return self.wait_for(run.id) if not current.finished else current
                if current.cancel_requested_at is not None:
                    return self._finish_unlaunched(run.id, CANCELED, "canceled while queued")
                if progress:
                    progress(current, 0.0)
                time.sleep(poll_s)
                run = current
        except KeyboardInterrupt:
            self.cancel(run.id, wait=True)
            raise

    def wait_for(
        self, run_id: str, timeout: float | None = None, poll_s: float = 0.2, progress: Progress | None = None
    ) -> RunRecord:
        """Wait for a run someone else supervises (the daemon, another CLI) to finish."""
        start = time.monotonic()
        end = None if timeout is None else start + timeout
        while True:
            run = self.store.get_run(run_id)
            if run.finished or (end is not None and time.monotonic() >= end):
                return run
            if progress:
                progress(run, time.monotonic() - start)
            time.sleep(poll_s)

    # -- finishing -----------------------------------------------------------------------------
    def _finish(self, run: RunRecord, executor, status: ExitStatus, state: str | None = None, reason: str | None = None) -> RunRecord:
        if state is None:
            state = SUCCEEDED if status.exit_code == 0 else FAILED
            reason = None if state == SUCCEEDED else status.reason
        usage = executor.usage(run.handle)
        executor.forget(run.handle)
        return self._record_end(run, state, reason, status.exit_code, usage)

    def _record_end(
        self, run: RunRecord, state: str, reason: str | None, exit_code=None, usage=None, ended_at=None
    ) -> RunRecord:
        now = ended_at or self.clock.now()
        started = run.started_at
        duration = max((now - started).total_seconds(), 0.0) if started else 0.0
        final = {
            "state": state, "reason": reason, "ended_at": now, "duration_s": duration, "exit_code": exit_code,
            "cost_usd": (run.price_per_hour or 0.0) * duration / 3600.0,
        }
        if usage is not None:
            final.update(cpu_util_avg=usage.cpu_util_avg, mem_peak_bytes=usage.mem_peak_bytes, gpu_util_avg=usage.gpu_util_avg)
        if run.artifacts_dir:
            job = JobSpec.model_validate(run.spec)
            write_results(
                run_dirs(self.settings, run, job)["artifacts"] / "results.json",
                build_results(run, final, run_dirs(self.settings, run, job)),
            )
        changed = self.store.update_run(run.id, expect=ACTIVE_STATES, message=reason or state.lower(), **final)
        record = self.store.get_run(run.id)
        if changed:
            self._finished(record)
        return record

    def _finished(self, record: RunRecord) -> None:
        """Once per run, by whoever recorded its end: lifecycle hooks, then listeners (metrics)."""
        if record.pipeline_run is None and record.spec:
            self.hooks.fire(JobSpec.model_validate(record.spec).hooks, record.state, record.public(), f"run {record.id}")
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - an observer must not break the run's bookkeeping
                pass

    # -- budgets -------------------------------------------------------------------------------
    def budget_verdict(self, run: RunRecord, decision) -> str | None:
        """Why a budget holds or refuses this run now, or None."""
        from ..core.budgets import covers, period_start, verdict

        budgets = [b for b in self.store.list("Budget") if covers(b, run.labels)]
        if not budgets:
            return None
        expected = (decision.chosen.expected_cost_usd if decision.chosen else None) or 0.0
        now = self.clock.now()
        for budget in budgets:
            reason = verdict(budget, self.spent(budget, period_start(budget.period, now)), expected)
            if reason:
                return reason
        return None

    def spent(self, budget, since) -> float:
        """Spend of the runs a budget covers since a time: finished cost plus running runs so far."""
        from ..core.budgets import covers

        cached = self._spend_cache.get(budget.name)
        mono = self.clock.monotonic()
        if cached and mono - cached[0] < 1.0:
            return cached[1]
        now = self.clock.now()
        total = 0.0
        for r in self.store.list_runs(since=since, newest_first=False):
            if not covers(budget, r.labels):
                continue
            if r.state in LIVE_STATES and r.started_at is not None:
                total += (r.price_per_hour or 0.0) * (now - r.started_at).total_seconds() / 3600.0
            else:
                total += r.cost_usd
        self._spend_cache[budget.name] = (mono, total)
        return total

    def _finish_unlaunched(self, run_id: str, state: str, reason: str) -> RunRecord:
        run = self.store.get_run(run_id)
        return self._record_end(run, state, reason)

    # -- cancel --------------------------------------------------------------------------------
    def cancel(self, run_id: str, wait: bool = True) -> RunRecord:
        """Cancel a run: at once while queued; else ask its supervisor, or stop it here if it has none."""
        run = self.store.get_run(run_id)
        if run.finished:
            return run
        now = self.clock.now()
        if self.store.update_run(run_id, expect=[QUEUED], state=CANCELED, ended_at=now, duration_s=0.0,
                                 reason="canceled while queued", message="canceled while queued"):
            return self.store.get_run(run_id)
        self.store.update_run(run_id, cancel_requested_at=now, message="cancel requested")
        run = self.store.get_run(run_id)
        if run.handle.get("owner_pid") == os.getpid() and run.handle.get("owner_ct") == self.owner["owner_ct"]:
            return run if not wait else self.wait_for(run_id, timeout=capped_grace(JobSpec.model_validate(run.spec).stop_grace) + 30)
        if not _owner_alive(run.handle):
            return self._stop_orphan(run)
        if not wait:
            return run
        grace = capped_grace(JobSpec.model_validate(run.spec).stop_grace)
        run = self.wait_for(run_id, timeout=grace + 10)
        return run if run.finished else self._stop_orphan(run)

    def _stop_orphan(self, run: RunRecord) -> RunRecord:
        """Stop a run whose supervisor is gone (its CLI was killed, say) and record it."""
        if run.state == STARTING or not run.backend or "pid" not in run.handle and run.backend == "local":
            return self._record_end(run, CANCELED, "canceled by request")
        executor = self.executor(run.backend)
        status = executor.cancel(run.handle, capped_grace(JobSpec.model_validate(run.spec).stop_grace))
        return self._finish(run, executor, status, CANCELED, "canceled by request")

    # -- dry run -------------------------------------------------------------------------------
    def dry_run(self, job_name: str, overrides: RunOverrides = RunOverrides()) -> dict:
        job = effective_spec(self.store.require("Job", job_name), overrides)
        index = self.shape_index()
        req = self.request_for(job)
        snapshot = index.snapshot(self.store.in_use_by_shape())
        decision = placement.place(req, snapshot, self.store.duration_history(job.name), self.clock.now())
        shape_name = decision.shape or (decision.cheapest.shape if decision.cheapest else None)
        if shape_name is None:
            raise UserError(f"job {job.name!r}: {decision.reason}")
        shape = index.by_name[shape_name]
        run = RunRecord(id="dry-run", job=job.name, spec=job.model_dump(mode="json"))
        spec = build_launch(self.settings, run, job, shape, self.python_for(shape), create=False)
        return {"shape": shape.name, "backend": shape.backend, "placement": decision.reason,
                "launch": self.executor(shape.backend).describe(spec)}


class DispatchRound:
    """Shapes, slots in use, histories and budgets read once for a batch of placements."""

    def __init__(self, engine: Engine, index, in_use, snapshot, histories, has_budgets):
        self.engine, self.index, self.in_use, self.snapshot = engine, index, in_use, snapshot
        self.histories, self.has_budgets = histories, has_budgets

    def history(self, job: str) -> dict[str, float]:
        if job not in self.histories:
            self.histories[job] = self.engine.store.duration_history(job)
        return self.histories[job]

    def took(self, shape: str) -> None:
        self.in_use[shape] = self.in_use.get(shape, 0) + 1
        position = self.index.position[shape]
        self.snapshot.free[position] -= 1
        self.snapshot.has_free[position] = self.snapshot.free[position] > 0


def run_deadline(run: RunRecord, job: JobSpec, started: datetime) -> datetime:
    """When a run must be stopped: the deadline set when it was claimed, else its start + max runtime."""
    return run.deadline_at or started + timedelta(seconds=job.max_runtime)


def _owner() -> dict:
    me = psutil.Process()
    return {"owner_pid": me.pid, "owner_ct": me.create_time()}


def _owner_alive(handle: dict) -> bool:
    pid = handle.get("owner_pid")
    if pid is None:
        return False
    try:
        return abs(psutil.Process(pid).create_time() - handle.get("owner_ct", 0)) < 0.01
    except psutil.Error:
        return False
