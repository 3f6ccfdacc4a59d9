"""Watching runs: a live run until it ends (deadline, cancel requests, samples, retries), and the
wait loops of callers that do not supervise (`run --wait` without a daemon, another's run)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from ..core import lifecycle
from ..core.durations import format_duration
from ..core.runs import CANCELED, LIVE_STATES, QUEUED, RUNNING, STARTING, TIMED_OUT, RunRecord
from ..core.specs import JobSpec
from ..core.spot import Market
from ..core.supervision import Cadence, Outcome, Seen, watch
from ..executors import ExitStatus
from ..executors.base import capped_grace
from .dispatch import launch_run, run_deadline, try_start
from .faults import crash_point
from .finish import cancel, finish, finish_unlaunched
from .spot_runs import marked_preempted, preempt_pending

if TYPE_CHECKING:
    from .engine import Engine

Progress = Callable[[RunRecord, float], None]


def supervise(engine: "Engine", run: RunRecord, progress: Progress | None = None,
              job: JobSpec | None = None) -> RunRecord:
    """Watch a running run until it ends: deadline, cancel requests, samples, retries (core/supervision.py)."""
    crash_point("supervise")
    clock, executor = engine.clock, engine.executor(run.backend)
    job = job or JobSpec.model_validate(run.spec)
    timed_out = f"max runtime {format_duration(job.max_runtime)} reached"
    if run.deadline_at is None:  # written by an older version: never supervise without one
        run = replace(run, deadline_at=run_deadline(run, job, clock.now()))
    # an executor that samples its runs itself (local: one thread for all) is not woken to sample
    sampled_here = not getattr(executor, "samples_itself", False)
    cadence = Cadence.starting(clock.monotonic(), samples=sampled_here or progress is not None)
    while True:
        # a preempted attempt is no failure: it spends no retry (k8s retries itself: backoffLimit)
        can_retry = run.attempt - run.preemptions < job.retries and not getattr(executor, "retries_itself", False)
        watched = watch(clock, executor, run.handle, run.deadline_at, grace_s=capped_grace(job.stop_grace),
                        can_retry=can_retry, check=lambda: _seen(engine, run.id), cadence=cadence,
                        on_sample=(lambda elapsed: progress(run, elapsed)) if progress else None,
                        on_spot=run.market is Market.SPOT, sample=sampled_here)
        outcome, status = watched.outcome, watched.status
        if outcome is Outcome.RETRY and not marked_preempted(engine, run):
            run = _retry(engine, run, status)
            continue
        if outcome is Outcome.ENDED_ELSEWHERE:
            return engine.store.get_run(run.id)
        if outcome in (Outcome.WATCHDOG, Outcome.DEADLINE):
            return finish(engine, run, executor, status, TIMED_OUT, timed_out, job)
        if outcome is Outcome.CANCEL and marked_preempted(engine, run):
            return finish(engine, run, executor, status)  # recorded as PREEMPTED and queued again
        if outcome is Outcome.CANCEL:
            return finish(engine, run, executor, status, CANCELED, "canceled by request", job)
        return finish(engine, run, executor, status, job=job)  # EXITED, or PREEMPTED: finish queues it again


def _seen(engine: "Engine", run_id: str) -> Seen:
    current = engine.store.get_run(run_id)
    if current.cancel_requested_at is not None or preempt_pending(current):
        return Seen.CANCEL_REQUESTED  # a preempted attempt is stopped as a cancel is, then recorded apart
    return Seen.FINISHED if current.finished else Seen.LIVE


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
                if started.state not in LIVE_STATES:
                    return started
                ended = supervise(engine, started, progress)
                if ended.state != QUEUED:
                    return ended
                run = ended  # its spot attempt was preempted: the same run is placed again
                continue
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
    """Wait for a run someone else supervises (the daemon, another CLI) to finish: woken at once by an
    end recorded in this process (a pipeline step in the daemon), by re-reading every ``poll_s`` for
    one recorded by another."""
    clock = engine.clock
    start = clock.monotonic()
    end = None if timeout is None else start + timeout
    seen = engine.ends.seq
    while True:
        run = engine.store.get_run(run_id)
        if run.finished or (end is not None and clock.monotonic() >= end):
            return run
        if progress:
            progress(run, clock.monotonic() - start)
        wait = poll_s if end is None else max(min(poll_s, end - clock.monotonic()), 0.0)
        seen = engine.ends.wait_on(clock, seen, wait)
