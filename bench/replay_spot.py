"""The replay's spot market (``bench/replay.py --spot``): the same runs on spot, on-demand, or both.

A market layer over the main replay: each run costwise placed keeps its shape, its start and its true
duration, and is then run three ways on that shape's two markets --

* on-demand only -- what the main replay billed;
* always spot -- on spot whenever the shape has a spot price, whatever the deadline (a preempted
  attempt restarts on spot);
* costwise -- the product's own rule (``scheduler.core.spot``): spot when its expected cost (lost work
  and restarts included) beats on-demand *and* the Can't Be Late gate says the slack before the
  deadline covers one more preemption; once the slack is gone it goes on-demand and stays there.

The hidden truth of the market: preemptions are memoryless at ``--interruptions-per-hour`` (default:
the product's documented default rate for the shape, GPU or CPU), drawn from one seeded stream per
run that both spot policies share (common random numbers: the comparison is of the policies, not of
luck). A run checkpoints every ``--checkpoint-interval`` seconds of progress and loses what came after
its last checkpoint; each restart costs ``RESTART_OVERHEAD_S`` billed at the next attempt's price. The
deadline is ``--deadline-factor`` × the run's true duration after it was queued. Spot capacity is a
market of its own (a restart starts at once); the queue wait of the main replay is kept.

What the policy knows is what the daemon knows: the core's expected duration at placement (never the
true one) and the run's own progress. The gate is checked when an attempt starts and again at each
checkpoint while it is on spot; a run whose slack is gone moves to on-demand right after a checkpoint,
losing nothing but a restart.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from scheduler.core.spot import (
    RESTART_OVERHEAD_S,
    SpotPolicy,
    default_interruptions_per_hour,
    expected_spot_cost,
    market_gate,
    remaining_estimate,
)

DEFAULT_CHECKPOINT_INTERVAL_S = 1800.0  # a checkpoint every 30 minutes of training
DEFAULT_DEADLINE_FACTOR = 2.0
EPOCH = datetime(2023, 1, 1, tzinfo=timezone.utc)  # the replay's time zero


@dataclass(frozen=True, slots=True)
class PlacedRun:
    """One run of the main replay, as the market layer sees it."""

    idx: int
    arrival: float
    start: float
    seconds: float  # true (billed) duration on its shape
    expected_s: float | None  # the core's estimate when it was placed
    price: float
    spot_price: float | None
    gpus: float


@dataclass(frozen=True)
class SpotOptions:
    """``--spot``'s settings: the market's hidden truth and the jobs' declarations."""

    interruptions_per_hour: float | None = None  # None: the product's default rate by shape
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    deadline_factor: float = DEFAULT_DEADLINE_FACTOR


@dataclass
class MarketOutcome:
    spend: float = 0.0
    misses: int = 0
    preemptions: int = 0
    lost_s: float = 0.0
    spot_attempts: int = 0
    gave_up_spot: int = 0


def _draws(seed: int, idx: int, per_hour: float):
    rng = random.Random(seed * 1_000_003 + idx)
    while True:
        yield rng.expovariate(per_hour / 3600.0) if per_hour > 0 else math.inf


class _Attempts:
    """One run through its attempts on the markets a policy chooses (adds to an outcome)."""

    def __init__(self, run: PlacedRun, policy: str, rate: float, interval: float, deadline_factor: float,
                 seed: int, out: MarketOutcome):
        self.run, self.policy, self.rate, self.interval, self.out = run, policy, rate, interval, out
        self.deadline = run.arrival + deadline_factor * run.seconds
        self.draws = _draws(seed, run.idx, rate)
        self.now, self.saved, self.restart = run.start, 0.0, 0.0

    def play(self) -> None:
        run, out = self.run, self.out
        while run.spot_price is not None and self._spot_now(self.saved):
            if self._spot_attempt():
                out.misses += self.now > self.deadline + 1e-6
                return
        need = self.restart + run.seconds - self.saved
        out.spend += run.price * need / 3600.0
        self.now += need
        out.misses += self.now > self.deadline + 1e-6

    def _spot_attempt(self) -> bool:
        """Run on spot until done (True), preempted, or moved off at a checkpoint (False)."""
        run, out = self.run, self.out
        out.spot_attempts += 1
        until = next(self.draws)
        need = self.restart + run.seconds - self.saved
        moved_at = self._first_checkpoint_without_slack(min(until, need))
        if moved_at is not None:  # the slack is gone right after a checkpoint: on-demand from here
            out.spend += run.spot_price * moved_at / 3600.0
            out.gave_up_spot += 1
            self.saved += moved_at - self.restart
            self.now, self.restart = self.now + moved_at, RESTART_OVERHEAD_S
            self.policy = "on_demand"
            return False
        if until >= need:
            out.spend += run.spot_price * need / 3600.0
            self.now += need
            return True
        out.spend += run.spot_price * until / 3600.0
        progressed = max(0.0, until - self.restart)
        kept = math.floor(progressed / self.interval) * self.interval if self.interval else 0.0
        out.preemptions += 1
        out.lost_s += progressed - kept
        self.saved, self.now, self.restart = self.saved + kept, self.now + until, RESTART_OVERHEAD_S
        return False

    def _first_checkpoint_without_slack(self, horizon: float) -> float | None:
        """Seconds into this attempt of the first checkpoint at which the gate says on-demand (the
        daemon's supervisor looks at a spot run's slack as it polls; moving right after a checkpoint
        loses nothing but the restart)."""
        if self.policy != "costwise" or not self.interval:
            return None
        k = 1
        while (at := self.restart + k * self.interval) < horizon:
            if not self._gate(self.now + at, self.saved + k * self.interval).spot:
                return at
            k += 1
        return None

    def _gate(self, now: float, progress: float):
        left = remaining_estimate(self.run.expected_s, progress, self.interval or None)
        return market_gate(SpotPolicy.ALLOWED, now=_at(now), deadline_at=_at(self.deadline),
                           remaining_on_demand_s=left, checkpoint_interval_s=self.interval or None)

    def _spot_now(self, progress: float) -> bool:
        if self.policy != "costwise":
            return self.policy == "always_spot"
        gate = self._gate(self.now, progress)
        if not gate.spot:
            self.out.gave_up_spot += gate.gave_up_spot
            self.policy = "on_demand"
            return False
        work = remaining_estimate(self.run.expected_s, progress, self.interval or None)
        spot = expected_spot_cost(self.run.spot_price, work, self.rate, self.interval or None)
        return spot < self.run.price * work / 3600.0


def _at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def replay_markets(runs: list[PlacedRun], *, interruptions_per_hour: float | None, checkpoint_interval_s: float,
                   deadline_factor: float, seed: int) -> dict:
    """The ``--spot`` figures of one replay: each policy's spend, misses, preemptions and lost hours."""
    outcomes = {name: MarketOutcome() for name in ("on_demand", "always_spot", "costwise")}
    for run in runs:
        rate = default_interruptions_per_hour(run.gpus) if interruptions_per_hour is None else interruptions_per_hour
        for name, out in outcomes.items():
            _Attempts(run, name, rate, checkpoint_interval_s, deadline_factor, seed, out).play()
    od, spot, cw = outcomes["on_demand"], outcomes["always_spot"], outcomes["costwise"]
    return {
        "ondemand_only_usd": od.spend,
        "spot_policy_usd": cw.spend,
        "always_spot_usd": spot.spend,
        "spot_saving_vs_ondemand": 1 - cw.spend / od.spend if od.spend else float("nan"),
        "always_spot_saving_vs_ondemand": 1 - spot.spend / od.spend if od.spend else float("nan"),
        "deadline_misses": cw.misses,
        "always_spot_deadline_misses": spot.misses,
        "ondemand_deadline_misses": od.misses,
        "preemptions": cw.preemptions,
        "always_spot_preemptions": spot.preemptions,
        "lost_hours": cw.lost_s / 3600.0,
        "always_spot_lost_hours": spot.lost_s / 3600.0,
        "spot_attempts": cw.spot_attempts,
        "gave_up_spot": cw.gave_up_spot,
        "runs_with_spot_price": sum(1 for r in runs if r.spot_price is not None),
        "interruptions_per_hour": "default by shape (GPU / CPU)" if interruptions_per_hour is None else interruptions_per_hour,
        "checkpoint_interval_s": checkpoint_interval_s,
        "deadline_factor": deadline_factor,
    }
