"""Cheapest-fit placement: pure functions over a snapshot of shapes, usage and run history.

No I/O, no clock of its own (``now`` is passed in). ``place`` is the fast decision the engine, the
daemon and the replay call for every queued run; ``explain`` ranks every shape with its reasons for
people. Expected durations come from ``duration_model`` (the job's own runs shrunk towards the
hardware prior of ``priors``), so a shape this job never ran on is priced by what its hardware is
worth, and one with little evidence may be tried (exploration, below).

Exploring: a fitting shape whose hardware class has fewer than ``EXPLORE_RUNS`` runs of this job is
ranked by an optimistic cost, ``EXPLORE_Z`` standard deviations of its class's speed-up below its
expected cost (a lower confidence bound; of the "job scales" hypothesis's part of the expected cost
only, see ``duration_model``). It is tried when that beats the incumbent; each run there
narrows the bound, and after ``EXPLORE_RUNS`` runs it competes on its expected cost alone -- so
exploration stops where it keeps losing. A job without any history is not explored with: its first
run goes by price. Its next runs while the first are still running (a job whose runs overlap) go
where the prior's speed-ups say they are cheapest (the unknown base duration cancels in the
ranking) -- but only where the caller has learned that its fleet's jobs follow the prior's order
(``slope_prior`` > 0): otherwise they would all follow the price order to the cheapest, often
slowest, hardware before the first result comes back, and where the prior's order is wrong for a
fleet they would follow it instead.

Wait or spill: when the cheapest expected shape is full, the snapshot's ``expected_wait_s`` (from
the caller, by core/waits.py: the runs ahead and the running runs' expected remaining time,
``expected_wait``; the daemon's dispatch round and the replay fill it alike) says
how long a slot will take. A run spills at once to the cheapest free shape when the expected wait
passes what is left of its ``max_wait``; it waits for a full shape only when that saves at least
``MIN_SAVING`` of the cost now plus ``VALUE_OF_TIME_PER_HOUR`` per hour of waiting (0 by default:
costwise counts money, and ``max_wait`` is the user's bound on time). Without wait estimates it
waits up to ``max_wait`` for a real saving, then spills (as where a running run's expected
duration is unknown: one placed without history or a declared ``expected_duration``).

Markets: for a job that allows spot, every fitting shape that sells spot offers a second candidate,
its spot offer, priced with the redone work and restarts preemptions are expected to cost and open
only while the deadline's slack allows (``spot_offers``); the two offers of a shape share its slots,
and placement picks among all offers by expected cost as above. ``spot: never`` jobs see only the
on-demand offers, exactly as before markets were known.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import duration_model as dm
from .fit import FIT_RULES, PlacementRequest, fit_problems, fits, unfit_message  # noqa: F401 (this module's API)
from .shape_index import MASK_CACHE_SIZE, FitView, ShapeIndex, Snapshot, fit_mask, fit_view  # noqa: F401
from .specs import Requirements, ShapeSpec
from .placement_types import MARKET_WORDS, Action, Candidate, Decision, Explanation  # noqa: F401 (this module's API)
from .placement_types import eta as _eta, usd_or_unknown as _usd, why as _why
from .spot import Market, SpotPolicy
from .spot_offers import MarketOffers


EXPLORE_Z = 0.6
EXPLORE_RUNS = 2
MIN_SAVING = 0.05  # below 5 % the estimates' own error is larger than the saving
VALUE_OF_TIME_PER_HOUR = 0.0
PRICE_ORDER = "none (price order)"
PRIOR_ORDER = "none (price and the prior's speed-ups)"
LINDY = 1.0  # a run past its expected end is expected to last as long again as it already has


def expected_remaining(expected_s: float | None, elapsed_s: float) -> float | None:
    """Seconds a running run is expected still to need (past its estimate: ``LINDY`` x its age)."""
    if expected_s is None:
        return None
    return expected_s - elapsed_s if elapsed_s < expected_s else LINDY * elapsed_s


def expected_wait(free_slots: int, remaining_s: Sequence[float], ahead: int = 0) -> float:
    """Seconds until a slot is this run's: ``ahead`` runs queued before it take the first releases;
    past the running runs' ends, each further round of releases is taken to last as long again as
    the mean remaining time."""
    k = ahead - max(free_slots, 0)
    if k < 0:
        return 0.0
    releases = sorted(remaining_s)
    if not releases:
        return math.inf
    rounds, slot = divmod(k, len(releases))
    return releases[slot] + rounds * 2 * sum(releases) / len(releases)


class Estimates:
    """A request's view with its fitted durations: log costs, optimistic log costs, candidates, over
    its offers (``pos``: each offer's shape; the fitting shapes themselves unless the job allows spot)."""

    def __init__(self, req: PlacementRequest, index: ShapeIndex, history: Mapping[str, Any],
                 now: datetime | None = None):
        self.index, self.view = index, fit_view(req, index)
        entries = dm.history_entries(history, index.position) if history else []
        view = self.view
        self.fit, self.relative = None, False  # relative: ranked by price and the prior, no duration known
        if len(view.pos) and (entries or req.declared_duration_s is not None):
            scaling = dm.SCALING_PRIOR if req.scaling_prior is None else req.scaling_prior
            slope = dm.SLOPE_MEAN if req.slope_prior is None else req.slope_prior
            self.fit = dm.fit(index.prior[view.gpu_job], view.log_speed, view.class_id, view.view_of, entries,
                              req.declared_duration_s, scaling, slope, explore_z=EXPLORE_Z, explore_runs=EXPLORE_RUNS)
        if self.fit is None:
            self.cost = self.optimistic = view.log_price
            if len(view.pos) and not entries and req.declared_duration_s is None:
                self._while_the_first_runs(req, index)
        else:
            self.cost = view.log_price + self.fit.mu
            self.optimistic = self.cost
            if entries:  # a lower confidence bound where the job has (almost) no runs on that hardware
                self.optimistic = view.log_price + self.fit.optimistic_mu
                if req.in_flight:
                    self._one_trial_at_a_time(req.in_flight, index)
        self.pos, self.listed, self.markets = view.pos, self.cost, None
        if req.spot is not SpotPolicy.NEVER and len(view.pos):
            self.markets = MarketOffers(req, index, view.pos, None if self.fit is None else self.fit.mu, now)
            self.listed, self.cost, self.optimistic = self.markets.expand(self.cost, self.optimistic)
            self.pos = view.pos[self.markets.shape_rows()]

    def _while_the_first_runs(self, req: PlacementRequest, index: ShapeIndex) -> None:
        """A job without a known duration whose first runs are still running: rank by price and the
        prior's speed-ups, where the fleet says its jobs follow the prior (see the module docstring)."""
        if req.slope_prior is None or req.slope_prior <= 0 or not req.in_flight or req.spot is not SpotPolicy.NEVER:
            return
        if not any(n > 0 and name in index.position for name, n in req.in_flight.items()):
            return
        scaling = dm.SCALING_PRIOR if req.scaling_prior is None else req.scaling_prior
        self.cost = self.optimistic = self.view.log_price + dm.relative_log_seconds(
            index.prior[self.view.gpu_job], self.view.class_id, scaling, req.slope_prior)
        self.relative = True

    def _one_trial_at_a_time(self, in_flight: Mapping[str, int], index: ShapeIndex) -> None:
        """Hardware this job has not proven itself on takes one of its runs at a time: a job whose
        runs overlap would otherwise send every one of them to a prior's guess before the first
        comes back."""
        class_ids = index.prior[self.view.gpu_job].class_id_list
        trying = {class_ids[index.position[name]] for name, n in in_flight.items() if n > 0 and name in index.position}
        incumbent = int(self.fit.class_runs.argmax())
        blocked = [k for k in trying if self.fit.class_runs[k] < EXPLORE_RUNS and k != incumbent]
        if blocked:
            mask = np.isin(self.view.class_id, blocked)
            if not mask.all():
                self.cost = np.where(mask, np.inf, self.cost)
                self.optimistic = np.where(mask, np.inf, self.optimistic)

    def candidate(self, i: int, snapshot_in_use: Mapping[str, int], exploring: bool = False,
                  wait_s: float | None = None) -> Candidate:
        """Offer ``i`` (a fitting shape's own row unless the job allows spot) as a candidate."""
        if self.markets is not None:
            return self._market_candidate(i, snapshot_in_use, exploring, wait_s)
        return self._row_candidate(i, snapshot_in_use, exploring, wait_s)

    def _row_candidate(self, i: int, snapshot_in_use: Mapping[str, int], exploring: bool,
                       wait_s: float | None) -> Candidate:
        shape = self.index.shapes[int(self.view.pos[i])]
        free = max(shape.capacity - snapshot_in_use.get(shape.name, 0), 0)
        wait = None if wait_s is None or math.isnan(wait_s) else float(wait_s)
        if self.fit is None:
            source = PRIOR_ORDER if self.relative else PRICE_ORDER
            return Candidate(shape.name, shape.backend, shape.price_per_hour, None, source, None, free, None, wait)
        seconds = math.exp(self.fit.mu[i])
        class_id = int(self.view.class_id[i])
        source = "exploring" if exploring else self.fit.source(i, class_id)
        return Candidate(shape.name, shape.backend, shape.price_per_hour, seconds, source,
                         shape.price_per_hour * seconds / 3600.0, free, math.sqrt(self.fit.var(i, class_id)), wait)

    def _market_candidate(self, i: int, snapshot_in_use: Mapping[str, int], exploring: bool,
                          wait_s: float | None) -> Candidate:
        base = self._row_candidate(self.markets.row(i), snapshot_in_use, exploring, wait_s)
        offer = self.markets.offer(i)
        return replace(base, market=offer.market, price_per_hour=offer.price_per_hour,
                       expected_cost_usd=None if self.fit is None else offer.cost_usd, market_reason=offer.reason,
                       market_open=offer.open,
                       effective_price_per_hour=offer.effective_price_per_hour if offer.market is Market.SPOT else None)


class DurationModel:
    """Expected duration of one job per shape (``explain``'s view of ``duration_model``, for people)."""

    def __init__(self, index: ShapeIndex, history: Mapping[str, Any], declared: float | None, gpu_job: bool = True):
        self.index = index
        req = PlacementRequest(job="?", requirements=Requirements(gpus=1 if gpu_job else 0, cpus=0, memory_gib=0),
                               has_image=True, declared_duration_s=declared)
        self.estimates = Estimates(req, index, history)

    def estimate(self, shape: ShapeSpec) -> tuple[float | None, str]:
        i = self.estimates.view.view_of.get(self.index.position[shape.name])
        if i is None:
            return None, "does not fit"
        c = self.estimates.candidate(i, {})
        return c.expected_duration_s, c.duration_source


def place(
    req: PlacementRequest,
    snapshot: Snapshot,
    history: Mapping[str, Any],
    now: datetime,
) -> Decision:
    """Where the run goes now: the cheapest expected fitting offer with a free slot (or one worth
    exploring), or wait for a full one that saves money in time, or refuse."""
    est = Estimates(req, snapshot.index, history, now)
    if est.markets is None:
        return _place(req, est, snapshot, now)
    refused = est.markets.refusal()
    if refused:
        return Decision(Action.REFUSE, None, refused)
    decision = _place(req, est, snapshot, now)
    if est.markets.gave_up_spot and decision.market is Market.ON_DEMAND:
        decision = replace(decision, gave_up_spot=True)
    return decision


def _place(req: PlacementRequest, est: Estimates, snapshot: Snapshot, now: datetime) -> Decision:
    pos = est.pos
    if not len(pos):
        return Decision(Action.REFUSE, None, "no shape fits the requirements")
    free = snapshot.has_free[pos]
    if est.markets is not None:
        free = free & est.markets.open  # a closed offer is never placed on
    if est.fit is None and est.markets is None and not est.relative:  # price order, which is index order
        best, best_free = 0, int(free.argmax())
    else:
        best = int(est.cost.argmin())  # first minimum: ties go to the lower price, then the name
        best_free = int(np.where(free, est.cost, np.inf).argmin())
    if not free[best_free]:
        cheapest = est.candidate(best, snapshot.in_use, wait_s=snapshot.wait_s[pos[best]])
        return Decision(Action.WAIT, None, f"every fitting shape is full; cheapest is {cheapest.shape}{_eta(cheapest)}",
                        None, cheapest)
    pick = int(np.where(free, est.optimistic, np.inf).argmin()) if est.optimistic is not est.cost else best_free
    exploring = pick != best_free and est.optimistic[pick] < est.cost[best]
    if not exploring:
        pick = best_free
    chosen = est.candidate(pick, snapshot.in_use, exploring)
    if free[best] or exploring:
        cheapest = chosen if pick == best else est.candidate(best, snapshot.in_use)
        if exploring:
            return Decision(Action.PLACE, chosen.shape, f"exploring {_why(chosen)}; best known is {_why(cheapest)}",
                            chosen, cheapest)
        return Decision(Action.PLACE, chosen.shape, f"cheapest fitting shape: {_why(chosen)}", chosen, cheapest)
    return _wait_or_spill(req, est, snapshot, best, pick, chosen, now)


def _wait_or_spill(req, est: Estimates, snapshot: Snapshot, best: int, pick: int, chosen: Candidate,
                   now: datetime) -> Decision:
    """The cheapest expected offer is full; a dearer one (``chosen``, offer ``pick``) is free."""
    pos = est.pos
    waited = (now - req.queued_at).total_seconds() if req.queued_at else 0.0
    waits = snapshot.wait_s[pos]
    cheapest = est.candidate(best, snapshot.in_use, wait_s=waits[best])
    if waited >= req.max_wait_s:
        return Decision(Action.PLACE, chosen.shape, f"spilled over after waiting {waited:.0f}s for {cheapest.shape} "
                        f"(full, max_wait {req.max_wait_s:g}s): {_why(chosen)}", chosen, cheapest)
    money = np.exp(est.cost) / 3600.0  # expected USD per shape
    now_usd = money[pick]
    if math.isnan(waits[best]):  # no wait estimates: wait up to max_wait for a real saving
        if money[best] * (1 + MIN_SAVING) < now_usd:
            return Decision(Action.WAIT, None, f"waiting for {cheapest.shape} (full); spills to {chosen.shape} after "
                            f"max_wait {req.max_wait_s:g}s", None, cheapest)
        return Decision(Action.PLACE, chosen.shape, f"{cheapest.shape} is full and would save under {MIN_SAVING:.0%}: "
                        f"{_why(chosen)}", chosen, cheapest)
    left = req.max_wait_s - waited
    with np.errstate(invalid="ignore"):
        later_usd = money + VALUE_OF_TIME_PER_HOUR * waits / 3600.0
        worth = ~snapshot.has_free[pos] & (waits <= left) & (later_usd * (1 + MIN_SAVING) < now_usd)
    if worth.any():
        target = int(np.where(worth, later_usd, np.inf).argmin())
        goal = cheapest if target == best else est.candidate(target, snapshot.in_use, wait_s=waits[target])
        return Decision(Action.WAIT, None, f"waiting ~{goal.expected_wait_s:.0f}s for {goal.shape} (full): expected "
                        f"{_usd(goal.expected_cost_usd)} there vs {_usd(chosen.expected_cost_usd)} now on "
                        f"{chosen.shape}", None, goal)
    if waits[best] > left:
        why = f"expected wait {waits[best]:.0f}s for {cheapest.shape} passes max_wait {req.max_wait_s:g}s"
    else:
        why = f"waiting for {cheapest.shape} would save under {MIN_SAVING:.0%}"
    return Decision(Action.PLACE, chosen.shape, f"spilled over at once ({why}): {_why(chosen)}", chosen, cheapest)


def alternatives(req: PlacementRequest, snapshot: Snapshot, history: Mapping[str, Any], k: int = 5,
                 now: datetime | None = None) -> list[Candidate]:
    """The k fitting offers with the lowest expected cost, in ``explain``'s order, without looking at
    every shape in Python (what a run's record keeps, on the dispatch path); offers the market gate
    closed are among them, marked so, with the gate's reason."""
    est = Estimates(req, snapshot.index, history, now)
    best = np.argsort(est.listed, kind="stable")[:k]  # stable: ties keep (price, name) order
    return [est.candidate(int(i), snapshot.in_use) for i in best]


def explain(
    req: PlacementRequest,
    shapes: Iterable[ShapeSpec],
    in_use: Mapping[str, int],
    history: Mapping[str, Any],
    now: datetime | None = None,
) -> Explanation:
    """Every shape: the fitting ones' offers ranked by expected cost (both markets' where the job
    allows spot; those the market gate closed apart, with why), the others with why they do not fit."""
    index = shapes if isinstance(shapes, ShapeIndex) else ShapeIndex(shapes)
    est = Estimates(req, index, history, now)
    offers = [est.candidate(i, in_use) for i in range(len(est.pos))]
    rejected = [(s.name, p) for s in index.shapes if (p := fit_problems(req, s))]
    ranked = sorted((c for c in offers if c.market_open), key=lambda c: c.sort_key)
    closed = sorted((c for c in offers if not c.market_open), key=lambda c: c.sort_key)
    return Explanation(ranked, rejected, closed)
