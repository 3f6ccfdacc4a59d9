"""`costwise preempt RUN_ID`: end a RUNNING spot attempt on a local shape as the market would (for
tests and drills). Like a cancel, it marks the run and its supervisor stops it (SIGTERM, SIGKILL after
its stop_grace), then records the attempt as PREEMPTED and queues the same run again
(spot_runs.requeue); with no live supervisor, it is stopped and recorded here. One party stops and then
requeues, so the next attempt (same run id, same cgroup name) never starts while the last is killed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import UserError
from ..core.runs import RUNNING, RunRecord
from ..core.specs import JobSpec
from ..executors.base import capped_grace
from .finish import owner_alive
from .spot_runs import marked_preempted, refuse_unless_preemptible, requeue

if TYPE_CHECKING:
    from .engine import Engine

RECORD_WAIT_S = 30.0  # beyond the stop grace, for the supervisor to record the attempt


def preempt(engine: "Engine", run_id: str) -> RunRecord:
    run = engine.store.get_run(run_id)
    refuse_unless_preemptible(run)
    if not engine.store.update_run(run.id, expect=[RUNNING], match={"attempt": run.attempt},
                                   preempt_requested_at=engine.clock.now(),
                                   message="preempted: the market takes the spot capacity back"):
        raise UserError(f"run {run.id}: it ended or moved on before it could be preempted")
    grace = capped_grace(JobSpec.model_validate(run.spec).stop_grace)
    if owner_alive(run.handle):
        recorded = _wait_recorded(engine, run, timeout_s=grace + RECORD_WAIT_S)
        if recorded is not None:
            return recorded
    if marked_preempted(engine, run):  # nobody supervises it (or its supervisor died meanwhile)
        engine.executor(run.backend).cancel(run.handle, grace)
        return requeue(engine, run, engine.clock.now())
    return engine.store.get_run(run.id)


def _wait_recorded(engine: "Engine", run: RunRecord, timeout_s: float) -> RunRecord | None:
    """The run once its supervisor recorded the preempted attempt; None if it did not in time or died."""
    end = engine.clock.monotonic() + timeout_s
    while engine.clock.monotonic() < end:
        current = engine.store.get_run(run.id)
        if current.attempt != run.attempt or current.finished:
            return current
        if not owner_alive(current.handle):
            return None
        engine.clock.sleep(0.1)
    return None
