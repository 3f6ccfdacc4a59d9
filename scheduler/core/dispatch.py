"""The decision part of a dispatch round, without I/O: for each queued run, where it goes, or why it
waits or is refused, on one snapshot of free slots, its job's duration history and the budgets."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Callable, Mapping, Sequence

from . import placement
from .attempts import progress_s
from .budgets import BudgetSpec, BudgetVerdict, check, covers, period_start
from .placement import Action
from .runs import RunRecord
from .specs import JobSpec
from .spot import GAVE_UP_KEY

SpendReader = Callable[[BudgetSpec, datetime], float]  # a budget's spend since a time
HistoryReader = Callable[[str], Mapping[str, float]]  # a job's durations per shape


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
    """One snapshot of shapes, slots in use, histories and budgets for placing a batch of queued runs."""

    def __init__(self, index: placement.ShapeIndex, in_use: dict[str, int], histories: dict | None = None,
                 budgets: Sequence[BudgetSpec] = (), load_history: HistoryReader | None = None,
                 spent: SpendReader | None = None):
        self.index, self.in_use = index, in_use
        self.snapshot = index.snapshot(in_use)
        self.histories = {} if histories is None else histories
        self.budgets, self.has_budgets = list(budgets), bool(budgets)
        self._load_history, self._spent = load_history, spent
        self._waiting: set[tuple] = set()

    def has_room(self) -> bool:
        return bool(self.snapshot.has_free.any())

    def history(self, job: str) -> Mapping[str, float]:
        if job not in self.histories:
            self.histories[job] = self._load_history(job) if self._load_history else {}
        return self.histories[job]

    def skips(self, run: RunRecord) -> bool:
        """True when a run alike to this one already waits this round."""
        return alike(run) in self._waiting

    def decide(self, run: RunRecord, req: placement.PlacementRequest, now: datetime) -> placement.Decision:
        """Place, wait or refuse, budgets included (a hold waits; a refusing budget refuses)."""
        decision = placement.place(req, self.snapshot, self.history(req.job), now)
        if decision.action is Action.PLACE and self.has_budgets:
            expected = (decision.chosen.expected_cost_usd if decision.chosen else None) or 0.0
            held = budget_hold(self.budgets, run.labels, expected, now, self._spent)
            if held is not None:
                action = Action.REFUSE if held.refused else Action.WAIT
                decision = placement.Decision(action, None, held.reason, None, decision.cheapest)
        if decision.action is Action.WAIT:
            self._waiting.add(alike(run))
        return decision

    def took(self, shape: str) -> None:
        """A run claimed a slot of this shape: the rest of the round sees it taken."""
        self.snapshot.take(shape)  # in_use is the snapshot's mapping: it counts the slot too
