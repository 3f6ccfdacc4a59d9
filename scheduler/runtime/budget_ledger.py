"""Spend per budget and period, read from the store (briefly cached: a dispatch round asks often)."""

from __future__ import annotations

from datetime import datetime

from ..core.budgets import BudgetSpec, covers
from ..core.clock import Clock
from ..store import spend_queries
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
        total = sum(s.usd for s in spend_queries.finished_spend_by_labels(self.store, since) if covers(budget, s.labels))
        for live in spend_queries.live_burn(self.store, since):
            if covers(budget, live.labels):
                total += live.price_per_hour * (now - live.started_at).total_seconds() / 3600.0
        self._spend_cache[budget.name] = (mono, total)
        return total
