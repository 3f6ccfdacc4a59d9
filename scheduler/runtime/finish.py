"""Recording how a run ended (results.json, then hooks and listeners once), and cancelling one."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import psutil

from ..core import attempts, lifecycle
from ..core.runs import CANCELED, FAILED, QUEUED, RUNNING, STARTING, SUCCEEDED, RunRecord
from ..core.specs import JobSpec
from ..core.spot import Market
from ..executors import ExitStatus
from ..executors.base import capped_grace
from . import spot_runs
from .launch import run_dirs
from .results import build_results, write_results

if TYPE_CHECKING:
    from .engine import Engine


def finish(engine: "Engine", run: RunRecord, executor, status: ExitStatus, state: str | None = None,
           reason: str | None = None, job: JobSpec | None = None) -> RunRecord:
    """Record the end of a run the executor saw end (its usage read before the handle is dropped;
    ``job``: its spec when the caller has it validated)."""
    if state is None and status.is_preempted and _still_this_spot_attempt(engine, run):
        executor.forget(run.handle)  # the market ended this attempt (container killed, pod disrupted)
        return spot_runs.requeue(engine, run, engine.clock.now())
    if state is None:
        state = SUCCEEDED if status.exit_code == 0 else FAILED
        reason = None if state == SUCCEEDED else status.reason
    usage = executor.usage(run.handle)
    executor.forget(run.handle)
    return record_end(engine, run, state, reason, status.exit_code, usage, job=job)


def _still_this_spot_attempt(engine: "Engine", run: RunRecord) -> bool:
    """A spot attempt still live and not being canceled (a cancel wins): its preemption requeues it."""
    if run.market is not Market.SPOT:
        return False
    current = engine.store.get_run(run.id)
    return current.state == RUNNING and current.attempt == run.attempt and current.cancel_requested_at is None


def record_end(engine: "Engine", run: RunRecord, state: str, reason: str | None, exit_code=None, usage=None,
               ended_at: datetime | None = None, job: JobSpec | None = None) -> RunRecord:
    """Write results.json, then the end (compare-and-set on the states it may come from); the record
    returned is ``run`` with what was written, not read back, unless another recorder won."""
    now = ended_at or engine.clock.now()
    if state in (SUCCEEDED, FAILED) and spot_runs.marked_preempted(engine, run):
        # the market ended it (`costwise preempt`), whoever saw it end: not the run's end, an attempt's
        return spot_runs.requeue(engine, run, now)
    started = run.started_at
    duration = max((now - started).total_seconds(), 0.0) if started else 0.0
    final = {
        "state": state, "reason": reason, "ended_at": now, "duration_s": duration, "exit_code": exit_code,
        "cost_usd": (run.price_per_hour or 0.0) * duration / 3600.0,
    }
    if run.market is Market.SPOT or run.preemptions:
        final.update(attempts.final_values(run, state, now))  # cost: the sum of its attempts
    if usage is not None:
        final.update(cpu_util_avg=usage.cpu_util_avg, mem_peak_bytes=usage.mem_peak_bytes,
                     gpu_util_avg=usage.gpu_util_avg)
    if run.artifacts_dir:
        job = job or JobSpec.model_validate(run.spec)
        dirs = run_dirs(engine.settings, run, job)
        write_results(dirs["artifacts"] / "results.json", build_results(run, final, dirs))
    changed = engine.store.update_run(run.id, expect=lifecycle.sources(state), message=reason or state.lower(),
                                      **final)
    if not changed or (state == CANCELED and run.cancel_requested_at is None):
        return engine.store.get_run(run.id)  # another recorder's end, or a cancel request this record lacks
    record = replace(run, **final)
    tell_finished(engine, record, job)
    return record


def tell_finished(engine: "Engine", record: RunRecord, job: JobSpec | None = None) -> None:
    """Once per run, by whoever recorded its end: lifecycle hooks, then listeners (metrics)."""
    if record.pipeline_run is None and record.spec:
        engine.hooks.fire((job or JobSpec.model_validate(record.spec)).hooks, record.state, record.public(),
                          f"run {record.id}")
    for listener in engine.listeners:
        try:
            listener(record)
        except Exception:  # noqa: BLE001 - an observer must not break the run's bookkeeping
            pass
    engine.ends.notify()


def finish_unlaunched(engine: "Engine", run_id: str, state: str, reason: str) -> RunRecord:
    return record_end(engine, engine.store.get_run(run_id), state, reason)


def cancel(engine: "Engine", run_id: str, wait: bool = True) -> RunRecord:
    """Cancel a run: at once while queued; else ask its supervisor, or stop it here if it has none."""
    run = engine.store.get_run(run_id)
    if run.finished:
        return run
    now = engine.clock.now()
    if engine.store.update_run(run_id, expect=lifecycle.move(QUEUED, CANCELED), state=CANCELED, ended_at=now,
                               duration_s=0.0, reason="canceled while queued", message="canceled while queued"):
        return engine.store.get_run(run_id)
    engine.store.update_run(run_id, cancel_requested_at=now, message="cancel requested")
    run = engine.store.get_run(run_id)
    grace = capped_grace(JobSpec.model_validate(run.spec).stop_grace)
    if run.handle.get("owner_pid") == os.getpid() and run.handle.get("owner_ct") == engine.owner["owner_ct"]:
        return run if not wait else engine.wait_for(run_id, timeout=grace + 30)
    if not owner_alive(run.handle):
        return stop_orphan(engine, run)
    if not wait:
        return run
    run = engine.wait_for(run_id, timeout=grace + 10)
    return run if run.finished else stop_orphan(engine, run)


def stop_orphan(engine: "Engine", run: RunRecord) -> RunRecord:
    """Stop a run whose supervisor is gone (its CLI was killed, say) and record it."""
    if run.state == STARTING or not run.backend or "pid" not in run.handle and run.backend == "local":
        return record_end(engine, run, CANCELED, "canceled by request")
    executor = engine.executor(run.backend)
    status = executor.cancel(run.handle, capped_grace(JobSpec.model_validate(run.spec).stop_grace))
    return finish(engine, run, executor, status, CANCELED, "canceled by request")


def this_process() -> dict:
    """Who supervises: a pid and its start time (a reused pid is not the same owner)."""
    me = psutil.Process()
    return {"owner_pid": me.pid, "owner_ct": me.create_time()}


def owner_alive(handle: dict) -> bool:
    pid = handle.get("owner_pid")
    if pid is None:
        return False
    try:
        return abs(psutil.Process(pid).create_time() - handle.get("owner_ct", 0)) < 0.01
    except psutil.Error:
        return False
