"""Placing and claiming queued runs, then launching them (the store side of a dispatch round)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..core import attempts, lifecycle, placement, spot
from ..core.dispatch import DispatchRound, run_request
from ..core.errors import CostwiseError
from ..core.placement import Action
from ..core.runs import FAILED, QUEUED, RUNNING, STARTING, RunRecord
from ..core.specs import JobSpec
from ..core.supervision import deadline_from_claim
from ..store import dispatch_queries
from . import spot_runs
from .faults import crash_point
from .finish import finish_unlaunched
from .launch import build_launch

if TYPE_CHECKING:
    from .engine import Engine

ALTERNATIVES_KEPT = 5
CLAIM_TRIES = 5  # a slot taken by someone else between placing and claiming: place again


def new_round(engine: "Engine") -> DispatchRound:
    """One snapshot of shapes, slots and budgets for placing a batch of queued runs, with each job's runs
    in flight, the fleet's priors and the live runs of full shapes (round_inputs.py), as the replay has."""
    index, by_job = engine.shape_index(), dispatch_queries.live_by_job(engine.store)
    return DispatchRound(index, dispatch_queries.in_use(by_job), budgets=engine.ledger.budgets(),
                         load_history=engine.store.duration_history, spent=engine.ledger.spent, in_flight=by_job,
                         load_live=lambda shapes: dispatch_queries.live_runs(engine.store, shapes),
                         fleet=engine.fleet.get(index))


@dataclass(frozen=True)
class Claim:
    """A slot placement chose for a queued run, written with the rest of its round's claims."""

    run: RunRecord  # the run as it reads once claimed: STARTING on its shape, with placement, market, deadline
    job: JobSpec
    capacity: int
    values: dict


def try_start(engine: "Engine", run: RunRecord, backends=None, round: DispatchRound | None = None,
              launch: bool = True) -> RunRecord | None:
    """Place and launch a queued run if its shape has room now; None while it must wait.
    With launch=False the run is only placed (STARTING): the caller launches it."""
    round = round or new_round(engine)
    for _ in range(CLAIM_TRIES):
        outcome = decide(engine, run, round, backends)
        if not isinstance(outcome, Claim):
            return outcome
        placed = claim_all(engine, [outcome])
        if placed:
            return launch_run(engine, run.id, placed[0], outcome.job) if launch else placed[0]
        if engine.store.get_run(run.id).state != QUEUED:
            return None  # canceled, or started by another supervisor
        round = new_round(engine)
    return None


def decide(engine: "Engine", run: RunRecord, round: DispatchRound, backends=None) -> Claim | RunRecord | None:
    """Where a queued run goes this round: the Claim to write (its slot taken in the round already),
    its finished record when it is refused, or None while it waits (a new reason noted on it)."""
    job = JobSpec.model_validate(run.spec)
    req = round.request(run_request(run, job, backends), job.labels)
    decision = round.decide(run, req, engine.clock.now())
    if decision.action is Action.REFUSE:
        return finish_unlaunched(engine, run.id, FAILED, decision.reason)
    if decision.action is Action.WAIT:
        if run.placement.get("reason") != decision.reason:
            run.placement = {"reason": decision.reason}
            engine.store.update_run(run.id, expect=[QUEUED],  # a placement note, not a move
                                    placement=run.placement, message=decision.reason)
        return None
    shape = round.index.by_name[decision.shape]
    info = _placement_info(req, decision, round, job, engine.clock.now())
    market = spot_runs.claim_values(run, job, _market(decision, shape.price_per_hour), info)
    # the deadline is set with the claim: a run is never live without one, whoever dies when; a
    # preempted run queued again keeps its first claim's (preemptions do not extend max_runtime)
    deadline = run.deadline_at if run.preemptions and run.deadline_at else \
        deadline_from_claim(engine.clock.now(), job.max_runtime)
    values = dict(backend=shape.backend, placement=info, handle=engine.owner, deadline_at=deadline, **market)
    # the rest of the round sees it taken (a claim lost to another claimer ends the round's view)
    round.took(shape.name, req.job, run.id, info.get(dispatch_queries.EXPECTED_KEY), engine.clock.now())
    return Claim(replace(run, state=STARTING, shape=shape.name, **values), job, shape.capacity, values)


def claim_all(engine: "Engine", claims: list[Claim]) -> list[RunRecord]:
    """Write a round's claims in one transaction (each compare-and-set on QUEUED and its shape's free
    slots, as Store.claim_slot); the runs claimed, as written (not read back), in the claims' order."""
    if not claims:
        return []
    won = engine.store.claim_slots([(c.run.id, c.run.shape, c.capacity, c.values) for c in claims])
    if won:
        crash_point("after-claim")
    return [c.run for c in claims if c.run.id in won]


def _market(decision: placement.Decision, price_per_hour: float) -> spot.MarketChoice:
    """The market placement chose among every fitting shape's offers, billed at that market's price."""
    chosen = decision.chosen
    if chosen is None:  # a placement without a candidate: on-demand, as before markets
        return spot.MarketChoice(spot.Market.ON_DEMAND, price_per_hour, "on-demand")
    return spot.MarketChoice(chosen.market, chosen.price_per_hour, chosen.market_reason or "on-demand",
                             gave_up_spot=decision.gave_up_spot)


def _placement_info(req, decision: placement.Decision, round: DispatchRound, job: JobSpec, now: datetime) -> dict:
    ranked = placement.alternatives(req, round.snapshot, round.history(job.name), ALTERNATIVES_KEPT, now)
    info = {"reason": decision.reason, "alternatives": [_alternative(c) for c in ranked]}
    if decision.chosen is not None and decision.chosen.expected_duration_s is not None:
        info[dispatch_queries.EXPECTED_KEY] = decision.chosen.expected_duration_s  # later rounds' expected waits
    return info


def _alternative(c: placement.Candidate) -> dict:
    """One offer as a run's record keeps it (a job that allows spot: with its market and the gate's word)."""
    entry = {"shape": c.shape, "expected_cost_usd": c.expected_cost_usd, "price_per_hour": c.price_per_hour,
             "expected_duration_s": c.expected_duration_s, "duration_source": c.duration_source,
             "free_slots": c.free_slots}
    if c.market_reason is not None:
        entry.update(market=str(c.market), market_reason=c.market_reason, market_open=c.market_open,
                     effective_price_per_hour=c.effective_price_per_hour)
    return entry


def launch_run(engine: "Engine", run_id: str, run: RunRecord | None = None, job: JobSpec | None = None) -> RunRecord:
    """Start a STARTING run on its shape (``run``, ``job``: its record and spec when the caller has them)."""
    run = run or engine.store.get_run(run_id)
    return launch_all(engine, [(run, job or JobSpec.model_validate(run.spec))])[0]


def launch_all(engine: "Engine", runs: list[tuple[RunRecord, JobSpec]]) -> list[RunRecord]:
    """Start STARTING runs one after the other, then write their moves to RUNNING in one transaction
    (each compare-and-set on STARTING). A launcher killed between a spawn and that write leaves a
    STARTING run whose process is found by its wrapper's command line (daemon/adoption.py), as before."""
    ended, spawned = {}, []
    for run, job in runs:
        got = _spawn(engine, run, job)
        if isinstance(got, RunRecord):
            ended[run.id] = got
        else:
            spawned.append((run, *got))
    moved = engine.store.update_runs([(run.id, lifecycle.move(STARTING, RUNNING), message, values)
                                      for run, values, message in spawned])
    for (run, values, _), ok in zip(spawned, moved):
        ended[run.id] = replace(run, **values) if ok else engine.store.get_run(run.id)
    return [ended[run.id] for run, _ in runs]


def _spawn(engine: "Engine", run: RunRecord, job: JobSpec) -> RunRecord | tuple[dict, str]:
    """Start a run's process: the values that make it RUNNING and their event's message, or the
    run's finished record when it could not start."""
    shape = engine.shape_index().by_name.get(run.shape)
    if shape is None:
        return finish_unlaunched(engine, run.id, FAILED, f"shape {run.shape!r} was deleted before launch")
    try:
        spec = build_launch(engine.settings, run, job, shape, engine.python_for(shape), create=True,
                            now=engine.clock.now())
        handle = {**engine.owner, **engine.executor(shape.backend).launch(spec)}
    except (CostwiseError, OSError) as exc:
        return finish_unlaunched(engine, run.id, FAILED, f"launch failed: {exc}")
    crash_point("after-spawn")
    now = engine.clock.now()
    started = run.started_at or now  # a retry (or a preempted run's next attempt) keeps the first start and deadline
    running = dict(state=RUNNING, started_at=started, deadline_at=run_deadline(run, job, started),
                   handle=handle, artifacts_dir=str(spec.dirs["artifacts"]), **attempts.launch_values(run, now))
    return running, f"launched on {shape.name} ({shape.backend}), attempt {run.attempt + 1}"


def run_deadline(run: RunRecord, job: JobSpec, started: datetime) -> datetime:
    """When a run must be stopped: the deadline set when it was claimed, else its start + max runtime."""
    return run.deadline_at or started + timedelta(seconds=job.max_runtime)
