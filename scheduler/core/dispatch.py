"""The decision part of a dispatch round, without I/O: for each queued run, where it goes, or why it
waits or is refused, on one snapshot of free slots, its job's duration history and the budgets --
and what the replay tells placement too: this job's runs in flight per shape, the fleet's priors,
and each full shape's expected wait (core/waits.py) from the runs on it and the runs waiting for it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Callable, Iterable, Mapping, Sequence

from . import placement
from .attempts import progress_s
from .budgets import BudgetSpec, BudgetVerdict, check, covers, period_start
from .fleet_priors import FleetPriors
from .placement import Action
from .runs import RunRecord
from .specs import JobSpec
from .spot import GAVE_UP_KEY
from .waits import LiveRun, WaitBook

SpendReader = Callable[[BudgetSpec, datetime], float]  # a budget's spend since a time
HistoryReader = Callable[[str], Mapping[str, float]]  # a job's durations per shape
LiveReader = Callable[[Sequence[str]], Iterable[LiveRun]]  # the runs holding slots of these shapes


def run_request(run: RunRecord, job: JobSpec, backends=None) -> placement.PlacementRequest:
    """A queued run's request: the backends it was submitted for unless the caller names others; a
    preempted run's request carries the work its attempts kept and whether its deadline took spot away."""
    if backends is None and run.extra.get("backends"):
        backends = frozenset(run.extra["backends"])
    return placement.PlacementRequest.for_job(job, run.queued_at, backends, progress_s=progress_s(run),
                                              gave_up_spot=bool(run.extra.get(GAVE_UP_KEY)))


def budget_hold(
    budgets: Sequence[BudgetSpec], labels: Mapping[str, str], expected_usd: float, now: datetime, spent: SpendReader
) -> BudgetVerdict | None:
    """How the first budget covering these labels holds or refuses a run now, or None."""
    for budget in budgets:
        if covers(budget, labels):
            found = check(budget, spent(budget, period_start(budget.period, now)), expected_usd)
            if found is not None:
                return found
    return None


def alike(run: RunRecord) -> tuple:
    """Runs that would be placed alike: once one of them must wait, the rest of the round skips them."""
    return (run.job, json.dumps(run.spec.get("requirements"), sort_keys=True), run.spec.get("shape"),
            str(run.extra.get("backends")))


class DispatchRound:
    """One snapshot of shapes, slots in use, histories and budgets for placing a batch of queued runs.
    ``in_flight``: each job's live runs per shape; ``load_live``: reads the live runs of full shapes
    (their starts and expected durations), the first time a decision meets them full; ``fleet``:
    the priors learned across jobs."""

    def __init__(self, index: placement.ShapeIndex, in_use: dict[str, int], histories: dict | None = None,
                 budgets: Sequence[BudgetSpec] = (), load_history: HistoryReader | None = None,
                 spent: SpendReader | None = None, in_flight: Mapping[str, Mapping[str, int]] | None = None,
                 load_live: LiveReader | None = None, fleet: FleetPriors | None = None):
        self.index, self.in_use = index, in_use
        self.snapshot = index.snapshot(in_use)
        self.histories = {} if histories is None else histories
        self.budgets, self.has_budgets = list(budgets), bool(budgets)
        self._load_history, self._spent = load_history, spent
        self._waiting: dict[tuple, str | None] = {}  # alike key -> the shape its runs wait for
        self.in_flight = {job: dict(shapes) for job, shapes in (in_flight or {}).items()}
        self.fleet = fleet or FleetPriors()
        self._load_live, self._loaded, self.book = load_live, set(), WaitBook()

    def has_room(self) -> bool:
        return bool(self.snapshot.has_free.any())

    def history(self, job: str) -> Mapping[str, float]:
        if job not in self.histories:
            self.histories[job] = self._load_history(job) if self._load_history else {}
        return self.histories[job]

    def skips(self, run: RunRecord) -> bool:
        """True when a run alike to this one already waits this round (it then waits for the same
        shape: the runs after it count it as ahead of them)."""
        key = alike(run)
        if key not in self._waiting:
            return False
        if self._waiting[key] is not None:
            self.book.waits(self._waiting[key])
        return True

    def request(self, req: placement.PlacementRequest,
                labels: Mapping[str, str] | None = None) -> placement.PlacementRequest:
        """The request with what the round knows beyond the run: its job's runs in flight, the fleet's
        priors (the scaling share among the jobs alike by ``labels``, the job's)."""
        scaling = self.fleet.scaling_for(req.job, labels or {}) if req.scaling_prior is None else req.scaling_prior
        return replace(req, in_flight=self.in_flight.setdefault(req.job, {}), scaling_prior=scaling,
                       slope_prior=self.fleet.slope if req.slope_prior is None else req.slope_prior)

    def decide(self, run: RunRecord, req: placement.PlacementRequest, now: datetime) -> placement.Decision:
        """Place, wait or refuse, budgets included (a hold waits; a refusing budget refuses)."""
        if self._load_live is not None and not self.snapshot.has_free.all():
            self._expected_waits(now)
        decision = placement.place(req, self.snapshot, self.history(req.job), now)
        if decision.action is Action.PLACE and self.has_budgets:
            expected = (decision.chosen.expected_cost_usd if decision.chosen else None) or 0.0
            held = budget_hold(self.budgets, run.labels, expected, now, self._spent)
            if held is not None:
                action = Action.REFUSE if held.refused else Action.WAIT
                decision = placement.Decision(action, None, held.reason, None, decision.cheapest)
        if decision.action is Action.WAIT:
            target = decision.cheapest.shape if decision.cheapest is not None else None
            self._waiting[alike(run)] = target
            if target is not None:
                self.book.waits(target)
        return decision

    def _expected_waits(self, now: datetime) -> None:
        """Every full shape's expected wait, its live runs read the first time it is met full."""
        full = [self.index.shapes[p].name for p in (~self.snapshot.has_free).nonzero()[0].tolist()]
        unread = [name for name in full if name not in self._loaded]
        if unread:
            self._loaded.update(unread)
            self.book.add(self._load_live(unread))
        self.book.fill(self.snapshot, now)

    def took(self, shape: str, job: str | None = None, run_id: str | None = None, expected_s: float | None = None,
             at: datetime | None = None) -> None:
        """A run claimed a slot of this shape: the rest of the round sees it taken, and (given its job,
        id, start and expected duration) in flight and running there."""
        self.snapshot.take(shape)  # in_use is the snapshot's mapping: it counts the slot too
        if job is not None:
            flying = self.in_flight.setdefault(job, {})
            flying[shape] = flying.get(shape, 0) + 1
        if run_id is not None and at is not None:
            self.book.started(shape, run_id, at, expected_s)
