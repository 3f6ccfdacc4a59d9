"""Both markets' offers of the fitting shapes, for a request whose job allows spot (placement's
market layer; the arithmetic is core/spot.py's, over numpy columns).

Offer ``i < n`` is fitting shape ``i``'s on-demand offer; offer ``n + j`` is the spot offer of the
``j``-th fitting shape that sells spot. Both offers of a shape share its slots. An offer is priced
for the work the run still needs on that shape (its expected duration less what its preempted
attempts kept, ``remaining_estimate``); a spot offer adds the expected redone work and restarts
(``expected_spot_seconds``) and is open only while the *Can't Be Late* gate (``market_gate``) lets
the run use spot -- judged per shape, since the remaining time on on-demand is that shape's.
``spot: required`` closes every on-demand offer. Closed offers are still listed, with their cost and
the gate's reason, so that `explain` and a run's record say what was given up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .fit import PlacementRequest
from .money import usd
from .spot import RESTART_OVERHEAD_S, Market, MarketGate, SpotPolicy, deadline_slack_s, market_gate, \
    remaining_estimate


def spot_seconds(work_s: np.ndarray, per_hour: np.ndarray, checkpoint_interval_s: float | None,
                 restart_s: float = RESTART_OVERHEAD_S) -> np.ndarray:
    """``spot.expected_spot_seconds`` over arrays (the same formula, element by element)."""
    work = np.asarray(work_s, dtype=float)
    per_hour = np.broadcast_to(np.asarray(per_hour, dtype=float), work.shape)
    segment = np.minimum(checkpoint_interval_s, work) if checkpoint_interval_s else work
    rate = per_hour / 3600.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = rate * segment
        seconds = (work / segment) * (1.0 / rate + restart_s) * np.expm1(exponent)
    seconds = np.where(exponent > 700, np.inf, seconds)
    seconds = np.where(per_hour <= 0, work, seconds)
    return np.where(work <= 0, 0.0, seconds)


def gate_arrays(req: PlacementRequest, now: datetime, remaining_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``market_gate`` over shapes: (spot open, spot closed because the slack is gone) per remaining time."""
    shut = np.zeros(len(remaining_s), dtype=bool)
    if req.spot is SpotPolicy.REQUIRED:
        return ~shut, shut
    if req.spot is SpotPolicy.NEVER:
        return shut, shut
    if req.gave_up_spot:
        return shut, ~shut
    if req.deadline_at is None:
        return ~shut, shut
    interval = req.checkpoint_interval_s
    if not interval:
        return shut, shut
    slack = deadline_slack_s((req.deadline_at - now).total_seconds(), remaining_s, interval)
    checkpointed = remaining_s > interval
    return checkpointed & (slack > 0), checkpointed & (slack <= 0)


@dataclass(frozen=True, slots=True)
class Offer:
    market: Market
    price_per_hour: float
    cost_usd: float  # for the remaining work, redone work and restarts included on spot
    effective_price_per_hour: float  # cost per hour of the remaining work
    reason: str
    open: bool


class MarketOffers:
    """The on-demand and spot offers of a request's fitting shapes (see the module's docstring)."""

    def __init__(self, req: PlacementRequest, index, pos: np.ndarray, mu: np.ndarray | None, now: datetime | None):
        self.req, self.mu = req, mu
        self.now = now or req.queued_at or req.deadline_at  # no clock given: judged as at queueing
        self.n = len(pos)
        if mu is None:  # no duration estimate: what the gate assumes (an interval and a restart)
            left = remaining_estimate(None, req.progress_s, req.checkpoint_interval_s)
            self.remaining = np.full(self.n, left)
        else:
            self.remaining = np.maximum(np.exp(mu) - req.progress_s, req.progress_s)
        self.price = index.price[pos]
        spot_price = index.spot_price[pos]
        self.rows = np.flatnonzero(~np.isnan(spot_price))
        self.spot_price = spot_price[self.rows]
        left = self.remaining[self.rows]
        self.spot_s = spot_seconds(left, index.spot_rate[pos[self.rows]], req.checkpoint_interval_s)
        self.spot_open, gone = gate_arrays(req, self.now, left)
        self.on_demand_open = req.spot is not SpotPolicy.REQUIRED
        self.open = np.concatenate([np.full(self.n, self.on_demand_open), self.spot_open])
        # the deadline took spot away from every shape that sells it: sticky from this claim on
        self.gave_up_spot = req.spot is SpotPolicy.ALLOWED and (
            req.gave_up_spot or bool(gone.any() and not self.spot_open.any()))

    def row(self, i: int) -> int:
        return i if i < self.n else int(self.rows[i - self.n])

    def shape_rows(self) -> np.ndarray:
        return np.concatenate([np.arange(self.n), self.rows])

    def refusal(self) -> str | None:
        """Why no offer is open (``spot: required`` where no fitting shape sells spot), else None."""
        if self.on_demand_open or self.spot_open.any():
            return None
        return "spot: required, and no fitting shape sells spot capacity"

    def expand(self, cost: np.ndarray, optimistic: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(listed, cost, optimistic) log costs over the offers from the on-demand ones per shape
        (``Estimates``' units: log price + log seconds, or log price in price order); ``cost`` is
        ``listed`` with the closed offers at infinity."""
        r = self.rows
        with np.errstate(divide="ignore"):
            if self.mu is None:  # price order: spot at its price per hour of work, preemptions included
                spot = np.log(self.spot_price) + np.log(self.spot_s / self.remaining[r])
            else:
                if self.req.progress_s:
                    shift = np.log(self.remaining) - self.mu
                    cost, optimistic = cost + shift, (optimistic + shift if optimistic is not cost else None)
                spot = np.log(self.spot_price) + np.log(self.spot_s)
        known = np.isfinite(cost[r])  # a shape placement holds back (one trial at a time) holds both
        listed = np.concatenate([cost, np.where(known, spot, np.inf)])
        gated = np.where(self.open, listed, np.inf)
        if optimistic is cost or optimistic is None:
            return listed, gated, gated
        with np.errstate(invalid="ignore"):
            spot_optimistic = np.where(known, spot + (optimistic[r] - cost[r]), np.inf)
        return listed, gated, np.where(self.open, np.concatenate([optimistic, spot_optimistic]), np.inf)

    def offer(self, i: int) -> Offer:
        """Offer ``i`` with its market, price, expected cost and the reason for its market."""
        row = self.row(i)
        on_demand_usd = self.price[row] * self.remaining[row] / 3600.0
        j = i - self.n if i >= self.n else self._spot_of(row)
        spot_usd = None if j is None else self.spot_price[j] * self.spot_s[j] / 3600.0
        hours = self.remaining[row] / 3600.0
        if i >= self.n:
            gate = self.gate(row)
            reason = gate.reason if not self.spot_open[j] else \
                f"spot: expected {usd(spot_usd)} with preemptions vs {usd(on_demand_usd)} on-demand; {gate.reason}"
            return Offer(Market.SPOT, float(self.spot_price[j]), float(spot_usd), _per_hour(spot_usd, hours), reason,
                         bool(self.spot_open[j]))
        return Offer(Market.ON_DEMAND, float(self.price[row]), float(on_demand_usd), float(self.price[row]),
                     self._on_demand_reason(row, j, on_demand_usd, spot_usd), self.on_demand_open)

    def gate(self, row: int) -> MarketGate:
        return market_gate(self.req.spot, now=self.now, deadline_at=self.req.deadline_at,
                           remaining_on_demand_s=float(self.remaining[row]),
                           checkpoint_interval_s=self.req.checkpoint_interval_s, gave_up_before=self.req.gave_up_spot)

    def _spot_of(self, row: int) -> int | None:
        j = int(np.searchsorted(self.rows, row))
        return j if j < len(self.rows) and self.rows[j] == row else None

    def _on_demand_reason(self, row: int, j: int | None, on_demand_usd: float, spot_usd: float | None) -> str:
        if not self.on_demand_open or (j is not None and not self.spot_open[j]):
            return self.gate(row).reason
        if j is None:
            return "on-demand: the shape sells no spot capacity"
        if spot_usd >= on_demand_usd:
            return f"on-demand: spot's expected {usd(spot_usd)} with preemptions is not below {usd(on_demand_usd)}"
        return f"on-demand: {usd(on_demand_usd)} expected; spot's {usd(spot_usd)} with preemptions is lower"


def _per_hour(usd: float, hours: float) -> float:
    return float(usd / hours) if hours > 0 else float("inf")
