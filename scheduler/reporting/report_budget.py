"""Budget vs actual, with a run-rate forecast to the end of each budget's period (pandas, no I/O).

Actual is what the budget itself counts (``store.spend_queries``, as the engine's ledger reads it:
runs queued in the period, finished cost plus what running runs have cost so far). The forecast
carries the period's spend rate so far to its end: ``spent × period length / elapsed``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Callable, Iterable

import pandas as pd

from ..core.budgets import BudgetSpec, covers, period_start

COLUMNS = ["budget", "labels", "period", "period_start", "period_end", "limit_usd", "spent_usd", "share",
           "forecast_usd", "forecast_share", "status"]


class BudgetStatus(StrEnum):
    OVER = "over"  # spent more than the limit already
    HEADED_OVER = "forecast over"  # under the limit, but at this rate the period ends over it
    ON_TRACK = "on track"


def period_end(period: str, start: datetime) -> datetime:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def budget_table(budgets: Iterable[BudgetSpec], spend_since: Callable[[datetime], pd.DataFrame],
                 now: datetime) -> pd.DataFrame:
    """One row per budget. ``spend_since(start)``: a frame of label sets and their spend (``labels``, ``usd``)."""
    rows, frames = [], {}
    for budget in sorted(budgets, key=lambda b: b.name):
        start = period_start(budget.period, now)
        end = period_end(budget.period, start)
        if start not in frames:
            frames[start] = spend_since(start)
        spend = frames[start]
        spent = float(spend.loc[[covers(budget, labels) for labels in spend["labels"]], "usd"].sum()) if len(spend) else 0.0
        elapsed = (now - start).total_seconds()
        forecast = spent * (end - start).total_seconds() / elapsed if elapsed > 0 else spent
        status = (BudgetStatus.OVER if spent > budget.limit_usd else
                  BudgetStatus.HEADED_OVER if forecast > budget.limit_usd else BudgetStatus.ON_TRACK)
        rows.append({
            "budget": budget.name, "labels": ",".join(f"{k}={v}" for k, v in sorted(budget.labels.items())) or "(all)",
            "period": budget.period, "period_start": start, "period_end": end, "limit_usd": budget.limit_usd,
            "spent_usd": spent, "share": spent / budget.limit_usd, "forecast_usd": forecast,
            "forecast_share": forecast / budget.limit_usd, "status": str(status),
        })
    return pd.DataFrame(rows, columns=COLUMNS)
