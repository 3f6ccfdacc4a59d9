"""Spot (preemptible) capacity: what a spot offer is expected to cost, and when a deadline forbids it.

Pure: times are given by the caller (its clock), nothing is read or stored here.

The expected cost of a spot offer counts the work a preemption throws away and the restart after it,
under memoryless preemptions at a rate λ per hour (the model the replay draws from). A job that
checkpoints every ``c`` seconds runs as segments of length ``c``; a segment that is preempted is
redone from its start after a restart of ``r`` seconds, so a segment takes in expectation
``(1/λ + r)·(e^{λc} − 1)`` seconds (the classic result for restart-from-checkpoint under Poisson
failures, e.g. Daly, "A higher order estimate of the optimum checkpoint interval", FGCS 2006). A job
that never checkpoints is one segment as long as the job.

The deadline rule is the *Can't Be Late* rule (Wu et al., NSDI '24, §4): use spot only while the slack
left — deadline − now − expected remaining time on on-demand − what one more preemption would cost —
stays positive; once it is gone the run goes to on-demand and stays there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .money import usd


class SpotPolicy(StrEnum):
    """What a job allows: ``never`` (the default), ``allowed`` (spot while the deadline permits),
    ``required`` (spot only, even past its deadline)."""

    NEVER = "never"
    ALLOWED = "allowed"
    REQUIRED = "required"


class Market(StrEnum):
    """Which market an attempt runs on (the run record's ``market``; FOCUS's pricing category)."""

    ON_DEMAND = "on_demand"
    SPOT = "spot"


GAVE_UP_KEY = "gave_up_spot"  # in a run's extra: the deadline took spot away; it is not tried again

# Relaunching a preempted run and reloading its checkpoint: the *Can't Be Late* paper's "small
# overhead" setting is 0.05 h (3 minutes); its large one 0.2 h.
RESTART_OVERHEAD_S = 180.0

# Expected interruptions per hour of spot use when a shape does not say (`spot_interruptions_per_hour`).
# Clouds publish no per-hour rate: AWS's Spot Instance Advisor buckets pools by the share of instances
# interrupted per *month* (<5 %, 5–10 %, …, >20 %), i.e. well under 0.001/h for most pools; Azure shows
# eviction-rate bands of the same kind; GCP's preemptible VMs live at most 24 h (≥ 0.042/h), with a
# bathtub-shaped hazard (Kadupitiya et al., arXiv:1911.05160). GPU pools are far scarcer (the
# *Can't Be Late* V100 traces on AWS show spot available only part of each day). So these defaults are
# deliberately conservative constants, not measurements: a GPU spot instance is assumed to be lost
# once every 5 hours, a CPU one once every 20.
DEFAULT_GPU_INTERRUPTIONS_PER_HOUR = 0.2
DEFAULT_CPU_INTERRUPTIONS_PER_HOUR = 0.05
# A rate above one a minute is no market anyone can use; documents are refused beyond it.
INTERRUPTIONS_PER_HOUR_MAX = 60.0


def default_interruptions_per_hour(gpus: float) -> float:
    return DEFAULT_GPU_INTERRUPTIONS_PER_HOUR if gpus > 0 else DEFAULT_CPU_INTERRUPTIONS_PER_HOUR


def interruption_rate(declared: float | None, gpus: float) -> float:
    """Interruptions per hour on a shape's spot market: what it declares, else the default."""
    return default_interruptions_per_hour(gpus) if declared is None else declared


def expected_spot_seconds(work_s: float, per_hour: float, checkpoint_interval_s: float | None,
                          restart_s: float = RESTART_OVERHEAD_S) -> float:
    """Expected wall seconds to finish ``work_s`` seconds of work on spot (lost work and restarts
    included); ``math.inf`` when preemptions come too often for the job to ever finish in expectation."""
    if work_s <= 0:
        return 0.0
    if per_hour <= 0:
        return work_s
    segment = work_s if not checkpoint_interval_s else min(checkpoint_interval_s, work_s)
    rate = per_hour / 3600.0
    exponent = rate * segment
    if exponent > 700:  # e^700 is near the float limit: no such run finishes
        return math.inf
    return (work_s / segment) * (1.0 / rate + restart_s) * math.expm1(exponent)


def expected_spot_cost(spot_price_per_hour: float, work_s: float, per_hour: float,
                       checkpoint_interval_s: float | None, restart_s: float = RESTART_OVERHEAD_S) -> float:
    """Dollars a spot attempt is expected to cost: every second used is billed, redone work included."""
    seconds = expected_spot_seconds(work_s, per_hour, checkpoint_interval_s, restart_s)
    return math.inf if math.isinf(seconds) else spot_price_per_hour * seconds / 3600.0


def work_at_risk_s(checkpoint_interval_s: float | None, remaining_s: float) -> float:
    """The most work one preemption can throw away: a whole checkpoint interval (a run's length is
    only an estimate, so a run "shorter than its interval" may not be), or, with no checkpoints, the
    whole run as far as it is known."""
    return checkpoint_interval_s if checkpoint_interval_s else remaining_s


def remaining_estimate(expected_total_s: float | None, progress_s: float,
                       checkpoint_interval_s: float | None = None, restart_s: float = RESTART_OVERHEAD_S) -> float:
    """Seconds of work a run is expected to still need, for the deadline gate: what its estimate leaves,
    but never less than it has already run -- a run that has outlived half its estimate is expected to
    run about as long again (Gott's "Lindy" rule for lifetimes with heavy tails, Nature 363, 1993; run
    durations are heavy-tailed and the estimates of long runs fall short). With no estimate at all, a
    fresh run is assumed to need at least one checkpoint interval and a restart."""
    if expected_total_s is None:
        return max(progress_s, (checkpoint_interval_s or 0.0) + restart_s)
    return max(expected_total_s - progress_s, progress_s)


def lost_seconds(attempt_s: float, checkpoint_interval_s: float | None,
                 since_last_checkpoint_s: float | None = None) -> float:
    """Work a preempted attempt lost: the time since its last checkpoint when that is known, else
    the most it can have lost (its checkpoint interval, or the whole attempt)."""
    bound = attempt_s if not checkpoint_interval_s else min(checkpoint_interval_s, attempt_s)
    if since_last_checkpoint_s is None:
        return max(bound, 0.0)
    return max(0.0, min(since_last_checkpoint_s, attempt_s))


def deadline_slack_s(to_deadline_s, remaining_s, checkpoint_interval_s: float | None,
                     restart_s: float = RESTART_OVERHEAD_S):
    """The *Can't Be Late* slack: the time to the deadline less the remaining work on on-demand, the
    work one more preemption can lose and its restart (floats, or numpy arrays of remaining times)."""
    return to_deadline_s - remaining_s - work_at_risk_s(checkpoint_interval_s, remaining_s) - restart_s


@dataclass(frozen=True)
class MarketGate:
    """Which markets a run may use right now, and why (shown in placement reasons)."""

    spot: bool
    on_demand: bool
    reason: str
    slack_s: float | None = None

    @property
    def gave_up_spot(self) -> bool:
        """Spot was allowed by the job but the deadline took it away (sticky from then on)."""
        return not self.spot and self.on_demand and self.slack_s is not None


def market_gate(policy: SpotPolicy, *, now: datetime, deadline_at: datetime | None,
                remaining_on_demand_s: float | None, checkpoint_interval_s: float | None,
                gave_up_before: bool = False, restart_s: float = RESTART_OVERHEAD_S) -> MarketGate:
    """The *Can't Be Late* gate (Wu et al., NSDI '24): spot only while the slack left stays positive.

    The slack keeps room for one more preemption (its lost work and a restart), so a run that is
    preempted right after it was placed on spot can still finish on on-demand by its deadline."""
    if policy is SpotPolicy.NEVER:
        return MarketGate(spot=False, on_demand=True, reason="the job says spot: never")
    if policy is SpotPolicy.REQUIRED:
        late = deadline_at is not None and now > deadline_at
        why = "spot: required (never falls back" + (", and its deadline has passed)" if late else ")")
        return MarketGate(spot=True, on_demand=False, reason=why)
    if gave_up_before:
        return MarketGate(spot=False, on_demand=True, slack_s=0.0,
                          reason="on-demand since its slack ran out (spot is not tried again)")
    if deadline_at is None:
        return MarketGate(spot=True, on_demand=True, reason="spot allowed, no deadline")
    remaining = remaining_on_demand_s if remaining_on_demand_s is not None else \
        remaining_estimate(None, 0.0, checkpoint_interval_s, restart_s)
    if not checkpoint_interval_s or remaining <= checkpoint_interval_s:
        # a preemption would throw all of it away, and how long "all" is, is only an estimate
        return MarketGate(spot=False, on_demand=True,
                          reason="on-demand: with a deadline, spot needs a checkpoint before the run's expected end")
    slack = deadline_slack_s((deadline_at - now).total_seconds(), remaining, checkpoint_interval_s, restart_s)
    if slack > 0:
        return MarketGate(spot=True, on_demand=True, slack_s=slack,
                          reason=f"spot allowed: {slack:,.0f}s of slack before the deadline")
    return MarketGate(spot=False, on_demand=True, slack_s=slack,
                      reason=f"on-demand: the slack is gone ({slack:,.0f}s) and the deadline must be met")


@dataclass(frozen=True)
class MarketChoice:
    """The market a placed run starts on, its hourly price there, and why."""

    market: Market
    price_per_hour: float
    reason: str
    gave_up_spot: bool = False


def choose_market(policy: SpotPolicy, *, price_per_hour: float, spot_price_per_hour: float | None,
                  interruptions_per_hour: float, expected_s: float | None, progress_s: float,
                  checkpoint_interval_s: float | None, now: datetime, deadline_at: datetime | None,
                  gave_up_before: bool = False) -> MarketChoice:
    """On-demand or spot for a run placed on a shape: spot when the job allows it, the shape sells it,
    the deadline gate lets it, and its expected cost (redone work and restarts included) is lower."""
    on_demand = MarketChoice(Market.ON_DEMAND, price_per_hour, "on-demand")
    if policy is SpotPolicy.NEVER:
        return on_demand
    if spot_price_per_hour is None:
        return MarketChoice(Market.ON_DEMAND, price_per_hour, "on-demand: the shape sells no spot capacity")
    left = remaining_estimate(expected_s, progress_s, checkpoint_interval_s)
    gate = market_gate(policy, now=now, deadline_at=deadline_at, remaining_on_demand_s=left,
                       checkpoint_interval_s=checkpoint_interval_s, gave_up_before=gave_up_before)
    if not gate.spot:
        return MarketChoice(Market.ON_DEMAND, price_per_hour, gate.reason, gave_up_spot=gate.gave_up_spot)
    spot_usd = expected_spot_cost(spot_price_per_hour, left, interruptions_per_hour, checkpoint_interval_s)
    on_demand_usd = price_per_hour * left / 3600.0
    if policy is SpotPolicy.REQUIRED or spot_usd < on_demand_usd:
        return MarketChoice(Market.SPOT, spot_price_per_hour,
                            f"spot: expected {usd(spot_usd)} with preemptions vs {usd(on_demand_usd)} on-demand; {gate.reason}")
    return MarketChoice(Market.ON_DEMAND, price_per_hour,
                        f"on-demand: spot's expected {usd(spot_usd)} with preemptions is not below {usd(on_demand_usd)}")
