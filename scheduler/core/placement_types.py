"""What placement decides and says: its candidates (one per offer: a shape on a market), its
ordered actions, its decisions and explanations, and the text of its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .money import usd, usd_price
from .spot import Market


@dataclass(frozen=True, slots=True)
class Candidate:
    shape: str
    backend: str
    price_per_hour: float
    expected_duration_s: float | None
    duration_source: str  # history | similar shapes | prior | declared | exploring | none (price order | ...)
    expected_cost_usd: float | None
    free_slots: int
    duration_sd: float | None = None  # log-space standard deviation of the estimate
    expected_wait_s: float | None = None
    market: Market = Market.ON_DEMAND  # price_per_hour is this market's
    market_reason: str | None = None  # None: the job never uses spot
    market_open: bool = True  # False: the market gate closed this offer (listed, not chosen)
    effective_price_per_hour: float | None = None  # spot: per hour of work, preemptions included

    @property
    def sort_key(self) -> tuple:
        cost = self.expected_cost_usd if self.expected_cost_usd is not None else \
            (self.effective_price_per_hour or self.price_per_hour)
        return (cost, self.price_per_hour, self.shape, self.market != Market.ON_DEMAND)


class Action(StrEnum):
    """What a decision does with a run, ordered from best to worst (PLACE < WAIT < REFUSE), so the
    worse of two verdicts is ``max(a, b)``; members equal their old strings ("place", ...)."""

    PLACE = "place"
    WAIT = "wait"
    REFUSE = "refuse"

    @property
    def rank(self) -> int:
        return _ACTION_RANK[self]

    def __lt__(self, other): return self.rank < Action(other).rank  # noqa: E704
    def __le__(self, other): return self.rank <= Action(other).rank  # noqa: E704
    def __gt__(self, other): return self.rank > Action(other).rank  # noqa: E704
    def __ge__(self, other): return self.rank >= Action(other).rank  # noqa: E704


_ACTION_RANK = {Action.PLACE: 0, Action.WAIT: 1, Action.REFUSE: 2}


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    shape: str | None
    reason: str
    chosen: Candidate | None = None
    cheapest: Candidate | None = None
    gave_up_spot: bool = False  # the deadline's slack took spot away from every shape (sticky)

    @property
    def market(self) -> Market | None:
        return self.chosen.market if self.chosen else None


@dataclass(frozen=True)
class Explanation:
    ranked: list[Candidate]
    rejected: list[tuple[str, list[str]]] = field(default_factory=list)
    closed: list[Candidate] = field(default_factory=list)  # offers the market gate closed, with why


def usd_or_unknown(value: float | None) -> str:
    return "?" if value is None else usd(value)


def eta(c: Candidate) -> str:
    return "" if c.expected_wait_s is None else f" (a slot expected in ~{c.expected_wait_s:.0f}s)"


def why(c: Candidate) -> str:
    name = c.shape if c.market_reason is None else f"{c.shape} {MARKET_WORDS[c.market]}"
    spot = c.market is Market.SPOT
    if c.expected_cost_usd is None:
        with_preemptions = f"{usd_price(c.effective_price_per_hour)}/h with preemptions; " if spot else ""
        order = c.duration_source.removeprefix("none (").removesuffix(")")
        return f"{name} at {usd_price(c.price_per_hour)}/h ({with_preemptions}no duration history: {order})"
    return (
        f"{name} expected {usd(c.expected_cost_usd)} "
        f"({c.expected_duration_s:.1f}s from {c.duration_source} at {usd_price(c.price_per_hour)}/h"
        f"{', preemptions included' if spot else ''})"
    )


MARKET_WORDS = {Market.ON_DEMAND: "on-demand", Market.SPOT: "spot"}
