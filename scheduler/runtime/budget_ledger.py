"""Spend per budget and period, read from the store (briefly cached: a dispatch round asks often)."""

from __future__ import annotations

from datetime import datetime

from ..core.budgets import BudgetSpec, covers
from ..core.clock import Clock
from ..core.runs import LIVE_STATES
from ..store.store import Store

SPEND_CACHE_S = 1.0


class BudgetLedger:
    def __init__(self, store: Store, clock: Clock):
        self.store, self.clock = store, clock
        self._spend_cache: dict[str, tuple[float, float]] = {}

    def budgets(self) -> list[BudgetSpec]:
        """The declared budgets (one cheap name read when there are none)."""
        return list(self.store.list("Budget")) if self.store.names("Budget") else []

    def spent(self, budget: BudgetSpec, since: datetime) -> float:
        """Spend of the runs a budget covers since a time: finished cost plus running runs so far."""
        cached = self._spend_cache.get(budget.name)
        mono = self.clock.monotonic()
        if cached and mono - cached[0] < SPEND_CACHE_S:
            return cached[1]
        now = self.clock.now()
        total = 0.0
        for r in self.store.list_runs(since=since, newest_first=False):
            if not covers(budget, r.labels):
                continue
            if r.state in LIVE_STATES and r.started_at is not None:
                total += (r.price_per_hour or 0.0) * (now - r.started_at).total_seconds() / 3600.0
            else:
                total += r.cost_usd
        self._spend_cache[budget.name] = (mono, total)
        return total
