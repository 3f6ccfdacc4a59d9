"""Placing and claiming queued runs, then launching them (the store side of a dispatch round)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..core import attempts, lifecycle, placement, spot
from ..core.dispatch import DispatchRound, run_request
from ..core.errors import CostwiseError
from ..core.placement import Action
from ..core.runs import FAILED, QUEUED, RUNNING, STARTING, RunRecord
from ..core.specs import JobSpec
from ..core.supervision import deadline_from_claim
from . import spot_runs
from .faults import crash_point
from .finish import finish_unlaunched
from .launch import build_launch

if TYPE_CHECKING:
    from .engine import Engine

ALTERNATIVES_KEPT = 5
CLAIM_TRIES = 5  # a slot taken by someone else between placing and claiming: place again


def new_round(engine: "Engine") -> DispatchRound:
    """One snapshot of shapes, slots and budgets for placing a batch of queued runs."""
    return DispatchRound(engine.shape_index(), engine.store.in_use_by_shape(), budgets=engine.ledger.budgets(),
                         load_history=engine.store.duration_history, spent=engine.ledger.spent)


def try_start(engine: "Engine", run: RunRecord, backends=None, round: DispatchRound | None = None,
              launch: bool = True) -> RunRecord | None:
    """Place and launch a queued run if its shape has room now; None while it must wait.
    With launch=False the run is only placed (STARTING): the caller launches it."""
    job = JobSpec.model_validate(run.spec)
    round = round or new_round(engine)
    req = run_request(run, job, backends)
    for _ in range(CLAIM_TRIES):
        decision = round.decide(run, req, engine.clock.now())
        if decision.action is Action.REFUSE:
            return finish_unlaunched(engine, run.id, FAILED, decision.reason)
        if decision.action is Action.WAIT:
            if run.placement.get("reason") != decision.reason:
                run.placement = {"reason": decision.reason}
                engine.store.update_run(run.id, expect=[QUEUED],  # a placement note, not a move
                                        placement=run.placement, message=decision.reason)
            return None
        placed = _claim(engine, run, job, req, decision, round)
        if placed is not None:
            return launch_run(engine, run.id, placed) if launch else placed
        if engine.store.get_run(run.id).state != QUEUED:
            return None  # canceled, or started by another supervisor
        round = new_round(engine)
    return None


def _claim(engine: "Engine", run: RunRecord, job: JobSpec, req, decision: placement.Decision,
           round: DispatchRound) -> RunRecord | None:
    """Claim a slot of the decided shape; the run as claim_slot wrote it (not read back), or None."""
    shape = round.index.by_name[decision.shape]
    info = _placement_info(req, decision, round, job, engine.clock.now())
    market = spot_runs.claim_values(run, job, _market(decision, shape.price_per_hour), info)
    # the deadline is set with the claim: a run is never live without one, whoever dies when; a
    # preempted run queued again keeps its first claim's (preemptions do not extend max_runtime)
    deadline = run.deadline_at if run.preemptions and run.deadline_at else \
        deadline_from_claim(engine.clock.now(), job.max_runtime)
    claimed = engine.store.claim_slot(
        run.id, shape.name, shape.capacity,
        backend=shape.backend, placement=info, handle=engine.owner, deadline_at=deadline, **market,
    )
    if not claimed:
        return None
    crash_point("after-claim")
    round.took(shape.name)
    return replace(run, state=STARTING, shape=shape.name, backend=shape.backend, placement=info,
                   handle=engine.owner, deadline_at=deadline, **market)


def _market(decision: placement.Decision, price_per_hour: float) -> spot.MarketChoice:
    """The market placement chose among every fitting shape's offers, billed at that market's price."""
    chosen = decision.chosen
    if chosen is None:  # a placement without a candidate: on-demand, as before markets
        return spot.MarketChoice(spot.Market.ON_DEMAND, price_per_hour, "on-demand")
    return spot.MarketChoice(chosen.market, chosen.price_per_hour, chosen.market_reason or "on-demand",
                             gave_up_spot=decision.gave_up_spot)


def _placement_info(req, decision: placement.Decision, round: DispatchRound, job: JobSpec, now: datetime) -> dict:
    ranked = placement.alternatives(req, round.snapshot, round.history(job.name), ALTERNATIVES_KEPT, now)
    return {"reason": decision.reason, "alternatives": [_alternative(c) for c in ranked]}


def _alternative(c: placement.Candidate) -> dict:
    """One offer as a run's record keeps it (a job that allows spot: with its market and the gate's word)."""
    entry = {"shape": c.shape, "expected_cost_usd": c.expected_cost_usd, "price_per_hour": c.price_per_hour,
             "expected_duration_s": c.expected_duration_s, "duration_source": c.duration_source,
             "free_slots": c.free_slots}
    if c.market_reason is not None:
        entry.update(market=str(c.market), market_reason=c.market_reason, market_open=c.market_open,
                     effective_price_per_hour=c.effective_price_per_hour)
    return entry


def launch_run(engine: "Engine", run_id: str, run: RunRecord | None = None) -> RunRecord:
    """Start a STARTING run on its shape (``run``: its record when the caller just wrote it)."""
    run = run or engine.store.get_run(run_id)
    job = JobSpec.model_validate(run.spec)
    shape = engine.shape_index().by_name.get(run.shape)
    if shape is None:
        return finish_unlaunched(engine, run_id, FAILED, f"shape {run.shape!r} was deleted before launch")
    try:
        spec = build_launch(engine.settings, run, job, shape, engine.python_for(shape), create=True,
                            now=engine.clock.now())
        handle = {**engine.owner, **engine.executor(shape.backend).launch(spec)}
    except (CostwiseError, OSError) as exc:
        return finish_unlaunched(engine, run_id, FAILED, f"launch failed: {exc}")
    crash_point("after-spawn")
    now = engine.clock.now()
    started = run.started_at or now  # a retry (or a preempted run's next attempt) keeps the first start and deadline
    running = dict(state=RUNNING, started_at=started, deadline_at=run_deadline(run, job, started),
                   handle=handle, artifacts_dir=str(spec.dirs["artifacts"]), **attempts.launch_values(run, now))
    if engine.store.update_run(run_id, expect=lifecycle.move(STARTING, RUNNING), **running,
                               message=f"launched on {shape.name} ({shape.backend}), attempt {run.attempt + 1}"):
        return replace(run, **running)
    return engine.store.get_run(run_id)


def run_deadline(run: RunRecord, job: JobSpec, started: datetime) -> datetime:
    """When a run must be stopped: the deadline set when it was claimed, else its start + max runtime."""
    return run.deadline_at or started + timedelta(seconds=job.max_runtime)
