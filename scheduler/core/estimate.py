"""What a run, a sweep or a pipeline run is expected to cost before it runs (pure: no store, no files).

A job's estimate is placement's own decision (``placement.place``) on a snapshot with every slot
free -- the shape a run goes to when nothing else competes for it (a busy fleet may spill a run to
a dearer shape, or make it wait) -- with that candidate's expected duration and where it came from.
The range is the duration model's: the candidate's log-space standard deviation ``sd`` read as a
log-normal around its expected (mean) seconds, p10 / p90 at ``exp(mean_log -+ 1.2816 sd)``. A run
never outlasts its ``max_runtime`` (it is stopped there), so every figure is capped at it. On a
job that allows spot the market is ``spot.choose_market``'s, priced with preemptions' redone work.

A sweep runs its trials under its budget as ``sweeps.budget_allows`` does: the first ``parallel``
trials always start, then one more only while spent + its expected cost stays within the budget --
``min(trials, max(parallel, floor(budget / per trial)))`` trials, at most min(trials x per-trial
cost, budget) but for the first wave.

The pipeline walk is in ``estimate_pipeline`` (core/estimate_pipeline.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Mapping

from . import placement, spot
from .money import usd
from .placement import Action
from .shape_index import ShapeIndex
from .specs import JobSpec, ShapeSpec
from .spot import Market

Z_90 = 1.2815515655446004  # the standard normal's 90th percentile
BUDGET_EPS = 1e-9  # budget / cost that lands on an integer within float noise counts as that integer


class Source(StrEnum):
    """Where an expected duration came from (placement's words), or why a step costs nothing."""

    HISTORY = "history"
    SIMILAR = "similar shapes"
    PRIOR = "prior"
    DECLARED = "declared"
    EXPLORING = "exploring"
    NONE = "none"  # no history and no expected_duration: placement goes by price, the cost is unknown
    CACHED = "cached"


_SOURCES = {s.value: s for s in Source}


def source_of(candidate_source: str) -> Source:
    return _SOURCES.get(candidate_source, Source.NONE)


@dataclass(frozen=True)
class JobEstimate:
    """One run's expected shape, market, duration and cost with its p10-p90 range (None: unknown)."""

    job: str
    shape: str | None
    backend: str | None
    market: Market
    price_per_hour: float | None
    expected_duration_s: float | None
    duration_source: Source
    duration_sd: float | None
    expected_cost_usd: float | None
    p10_usd: float | None
    p90_usd: float | None
    reason: str

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(market=str(self.market), duration_source=str(self.duration_source))
        return out


def duration_range(expected_s: float, sd: float | None) -> tuple[float, float]:
    """(p10, p90) seconds of a log-normal with mean ``expected_s`` and log-space sd ``sd``."""
    if not sd:
        return expected_s, expected_s
    median = expected_s * math.exp(-0.5 * sd * sd)
    return median * math.exp(-Z_90 * sd), median * math.exp(Z_90 * sd)


def estimate_job(job: JobSpec, req: placement.PlacementRequest, index: ShapeIndex, history: Mapping[str, Any],
                 now: datetime) -> JobEstimate:
    """Where a run of ``job`` would go with every slot free, for how long, at what cost."""
    decision = placement.place(req, index.snapshot({}), history, now)
    chosen = decision.chosen or decision.cheapest
    if decision.action is Action.REFUSE or chosen is None:
        return JobEstimate(job.name, None, None, Market.ON_DEMAND, None, None, Source.NONE, None, None, None, None,
                           decision.reason)
    shape = index.by_name[chosen.shape]
    source = source_of(chosen.duration_source)
    if chosen.expected_duration_s is None:
        return JobEstimate(job.name, shape.name, shape.backend, Market.ON_DEMAND, shape.price_per_hour, None,
                           source, None, None, None, None,
                           f"{decision.reason}; the cost is not known (give the job an expected_duration)")
    cap = job.max_runtime
    expected = min(chosen.expected_duration_s, cap)
    low, high = (min(s, cap) for s in duration_range(chosen.expected_duration_s, chosen.duration_sd))
    market, price, cost = _market(job, shape, expected, now)
    return JobEstimate(job.name, shape.name, shape.backend, market, price, expected, source, chosen.duration_sd,
                       cost(expected), cost(low), cost(high), decision.reason)


def _market(job: JobSpec, shape: ShapeSpec, expected_s: float, now: datetime):
    """(market, hourly price there, seconds -> expected USD) for a run placed on ``shape``."""
    deadline_at = now + timedelta(seconds=job.deadline) if job.deadline else None
    rate = spot.interruption_rate(shape.spot_interruptions_per_hour, shape.gpus)
    choice = spot.choose_market(
        job.spot, price_per_hour=shape.price_per_hour, spot_price_per_hour=shape.spot_price_per_hour,
        interruptions_per_hour=rate, expected_s=expected_s, progress_s=0.0,
        checkpoint_interval_s=job.checkpoint_interval, now=now, deadline_at=deadline_at,
    )
    if choice.market is Market.SPOT:
        return choice.market, choice.price_per_hour, lambda s: spot.expected_spot_cost(
            choice.price_per_hour, s, rate, job.checkpoint_interval)
    return choice.market, choice.price_per_hour, lambda s: choice.price_per_hour * s / 3600.0


# -- sweeps ---------------------------------------------------------------------------------------
def trials_within_budget(trials: int, parallel: int, budget_usd: float | None, per_trial_usd: float) -> int:
    """How many trials ``sweeps.budget_allows`` lets start when each costs ``per_trial_usd``."""
    if budget_usd is None or per_trial_usd <= 0:
        return trials
    affordable = math.floor(budget_usd / per_trial_usd + BUDGET_EPS)
    return min(trials, max(min(parallel, trials), affordable))


@dataclass(frozen=True)
class SweepCost:
    trials: int  # trials the budget lets start at the expected per-trial cost
    planned: int
    expected_usd: float | None
    p10_usd: float | None
    p90_usd: float | None
    reason: str


def sweep_cost(per_trial: JobEstimate, planned: int, parallel: int, budget_usd: float | None) -> SweepCost:
    """A sweep's trials under its budget; each bound is taken with the trials that bound would let start."""
    if per_trial.expected_cost_usd is None:
        return SweepCost(planned, planned, None, None, None, f"{planned} trials; the per-trial cost is not known")

    def total(per: float) -> float:
        return trials_within_budget(planned, parallel, budget_usd, per) * per

    expected = total(per_trial.expected_cost_usd)
    bounds = (total(per_trial.p10_usd), total(per_trial.p90_usd))
    count = trials_within_budget(planned, parallel, budget_usd, per_trial.expected_cost_usd)
    why = f"{count} of {planned} trials"
    if count < planned:
        why += f" (its budget of {usd(budget_usd)} stops the rest)"
    return SweepCost(count, planned, expected, min(*bounds, expected), max(*bounds, expected), why)
