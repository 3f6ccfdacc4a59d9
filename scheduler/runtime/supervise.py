"""Watching runs: a live run until it ends (deadline, cancel requests, samples, retries), and the
wait loops of callers that do not supervise (`run --wait` without a daemon, another's run)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from ..core import lifecycle
from ..core.durations import format_duration
from ..core.runs import CANCELED, LIVE_STATES, QUEUED, RUNNING, STARTING, TIMED_OUT, RunRecord
from ..core.specs import JobSpec
from ..executors import ExitStatus
from ..executors.base import capped_grace
from .dispatch import launch_run, run_deadline, try_start
from .faults import crash_point
from .finish import cancel, finish, finish_unlaunched

if TYPE_CHECKING:
    from .engine import Engine

Progress = Callable[[RunRecord, float], None]
CANCEL_CHECK_S = 0.5
FIRST_SAMPLE_S, FIRST_SAMPLE_EVERY_S, MAX_SAMPLE_EVERY_S = 0.01, 0.02, 2.0


def supervise(engine: "Engine", run: RunRecord, progress: Progress | None = None) -> RunRecord:
    """Watch a running run until it ends: deadline, cancel requests, samples, retries."""
    crash_point("supervise")
    clock, executor = engine.clock, engine.executor(run.backend)
    job = JobSpec.model_validate(run.spec)
    grace = capped_grace(job.stop_grace)
    timed_out = f"max runtime {format_duration(job.max_runtime)} reached"
    if run.deadline_at is None:  # written by an older version: never supervise without one
        run = replace(run, deadline_at=run_deadline(run, job, clock.now()))
    start_mono = clock.monotonic()
    sample_every, next_sample = FIRST_SAMPLE_EVERY_S, start_mono + FIRST_SAMPLE_S
    next_check = start_mono + CANCEL_CHECK_S
    while True:
        now_mono = clock.monotonic()
        remaining = (run.deadline_at - clock.now()).total_seconds()
        status = executor.wait(run.handle, max(0.0, min(remaining, next_sample - now_mono, next_check - now_mono)))
        if status is not None:
            if status.timed_out:  # its own watchdog stopped it (e.g. while nobody supervised it)
                return finish(engine, run, executor, status, TIMED_OUT, timed_out)
            if (status.exit_code != 0 and run.attempt < job.retries and not status.is_lost
                    and not getattr(executor, "retries_itself", False)):  # k8s: backoffLimit retries
                run = _retry(engine, run, status)
                continue
            return finish(engine, run, executor, status)
        now_mono = clock.monotonic()
        if (run.deadline_at - clock.now()).total_seconds() <= 0:
            return finish(engine, run, executor, executor.cancel(run.handle, grace), TIMED_OUT, timed_out)
        if now_mono >= next_check:
            next_check = now_mono + CANCEL_CHECK_S
            current = engine.store.get_run(run.id)
            if current.cancel_requested_at is not None:
                status = executor.cancel(run.handle, grace)
                return finish(engine, run, executor, status, CANCELED, "canceled by request")
            if current.finished:  # finished by someone else (e.g. marked lost)
                return current
        if now_mono >= next_sample:
            executor.sample(run.handle)
            sample_every = min(sample_every * 2, MAX_SAMPLE_EVERY_S)
            next_sample = now_mono + sample_every
            if progress:
                progress(run, now_mono - start_mono)


def _retry(engine: "Engine", run: RunRecord, status: ExitStatus) -> RunRecord:
    engine.store.update_run(
        run.id, expect=lifecycle.move(RUNNING, STARTING), state=STARTING, attempt=run.attempt + 1,
        message=f"attempt {run.attempt + 1} failed ({status.reason}); retrying",
    )
    engine.executor(run.backend).forget(run.handle)
    return launch_run(engine, run.id)


def run_to_completion(engine: "Engine", run: RunRecord, progress: Progress | None = None, poll_s: float = 0.25,
                      backends=None) -> RunRecord:
    """Wait for a slot, then supervise: what `costwise run --wait` does without a daemon."""
    try:
        while True:
            started = try_start(engine, run, backends)
            if started is not None:
                return supervise(engine, started, progress) if started.state in LIVE_STATES else started
            current = engine.store.get_run(run.id)
            if current.state != QUEUED:
                return wait_for(engine, run.id) if not current.finished else current
            if current.cancel_requested_at is not None:
                return finish_unlaunched(engine, run.id, CANCELED, "canceled while queued")
            if progress:
                progress(current, 0.0)
            engine.clock.sleep(poll_s)
            run = current
    except KeyboardInterrupt:
        cancel(engine, run.id, wait=True)
        raise


def wait_for(engine: "Engine", run_id: str, timeout: float | None = None, poll_s: float = 0.2,
             progress: Progress | None = None) -> RunRecord:
    """Wait for a run someone else supervises (the daemon, another CLI) to finish."""
    clock = engine.clock
    start = clock.monotonic()
    end = None if timeout is None else start + timeout
    while True:
        run = engine.store.get_run(run_id)
        if run.finished or (end is not None and clock.monotonic() >= end):
            return run
        if progress:
            progress(run, clock.monotonic() - start)
        clock.sleep(poll_s)
