"""Spot in the runtime: what a claim writes for the market placement chose, and a preempted attempt's end (the same
run queued again, once). `costwise preempt` is preempt.py."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import attempts, lifecycle, spot
from ..core.errors import UserError
from ..core.money import usd
from ..core.runs import QUEUED, RUNNING, RunRecord
from ..core.specs import JobSpec
from ..core.spot import Market, SpotPolicy
from .faults import crash_point
from .launch import run_dirs

if TYPE_CHECKING:
    from .engine import Engine

GAVE_UP_KEY = spot.GAVE_UP_KEY  # in extra: the deadline took spot away; it is not tried again
CHECKPOINT_SCAN_MAX = 10_000  # files looked at for the newest checkpoint (the folder is the job's)


def claim_values(run: RunRecord, job: JobSpec, choice: spot.MarketChoice, info: dict[str, Any]) -> dict[str, Any]:
    """What the claim writes for the market (a spot: never job's claim is as it always was, less the market)."""
    values: dict[str, Any] = {"market": choice.market, "price_per_hour": choice.price_per_hour}
    if job.spot is SpotPolicy.NEVER:
        return values
    info.update(market=str(choice.market), market_reason=choice.reason)
    if choice.gave_up_spot and not run.extra.get(GAVE_UP_KEY):
        values["extra"] = {**run.extra, GAVE_UP_KEY: True}
    return values


def marked_preempted(engine: "Engine", run: RunRecord) -> bool:
    """Did `costwise preempt` end this spot attempt? (Read from the store: the mark is set before the stop.)"""
    if run.market is not Market.SPOT:
        return False
    current = engine.store.get_run(run.id)
    return preempt_pending(current) and current.attempt == run.attempt


def preempt_pending(run: RunRecord) -> bool:
    """Marked by `costwise preempt` and not canceled meanwhile (a cancel wins)."""
    return run.state == RUNNING and run.preempt_requested_at is not None and run.cancel_requested_at is None


def requeue(engine: "Engine", run: RunRecord, now: datetime) -> RunRecord:
    """Record a preempted attempt (billed for its time at its price, its lost work counted) and queue
    the same run again. Compare-and-set on the state *and* the attempt: of two recorders (a supervisor
    and a new daemon's adoption, say) one requeues, and a run already launched again is not touched."""
    run = engine.store.get_run(run.id)
    job = JobSpec.model_validate(run.spec)
    since = newest_file_age_s(run_dirs(engine.settings, run, job)["checkpoint"], now)
    attempt, values = attempts.preempted_values(run, now, job.checkpoint_interval, since)
    crash_point("before-requeue")
    message = (f"attempt {attempt.number} {attempt.state}: {attempt.seconds:.1f}s on {attempt.market} "
               f"({usd(attempt.cost_usd)}), {attempt.lost_s:.1f}s of work lost; queued again")
    if engine.store.update_run(run.id, expect=lifecycle.move(RUNNING, QUEUED), match={"attempt": run.attempt},
                               message=message, **values):
        crash_point("after-requeue")
    return engine.store.get_run(run.id)


def newest_file_age_s(folder: Path, now: datetime) -> float | None:
    """Seconds since the newest file below ``folder`` was written (links not followed); None if none.
    File times are the real clock's: with a frozen clock the age is only clamped by lost_seconds."""
    newest, seen = None, 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            try:
                mtime = os.lstat(os.path.join(root, name)).st_mtime
            except OSError:
                continue
            newest = mtime if newest is None else max(newest, mtime)
            seen += 1
            if seen >= CHECKPOINT_SCAN_MAX:
                break
    return None if newest is None else max(now.timestamp() - newest, 0.0)


def refuse_unless_preemptible(run: RunRecord) -> None:
    if run.state != RUNNING:
        raise UserError(f"run {run.id}: state {run.state} is not RUNNING; only a live spot attempt can be preempted")
    if run.market is not Market.SPOT:
        raise UserError(f"run {run.id}: market {run.market} is not spot; only a spot attempt can be preempted")
    if run.backend != "local":
        raise UserError(f"run {run.id}: backend {run.backend} is not local; `costwise preempt` plays the "
                        "market for local shapes only")
