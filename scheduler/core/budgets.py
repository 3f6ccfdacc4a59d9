"""Budgets: spend limits per label set and period that hold or refuse runs (pure checks here;
the engine gathers the spend)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from .bounds import MONEY_MAX_USD
from .money import usd
from .specs import NAME_PATTERN, Labels, Spec, register_kind


class BudgetSpec(Spec):
    kind: Literal["Budget"] = "Budget"
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    labels: Labels = {}  # the runs it covers: every label given must match ({} covers every run)
    period: Literal["day", "week", "month"] = "day"
    limit_usd: float = Field(gt=0, le=MONEY_MAX_USD)
    action: Literal["hold", "refuse"] = "hold"


register_kind("Budget", BudgetSpec)


def covers(budget: BudgetSpec, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in budget.labels.items())


def period_start(period: str, now: datetime) -> datetime:
    """Start of the current calendar day / ISO week / month, in UTC."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


class BudgetAction(StrEnum):
    HOLD = "hold"  # the run waits in the queue until the period rolls over or the limit is raised
    REFUSE = "refuse"  # the run ends FAILED at once


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """A budget stopping a run: what it does to the run and the one line that says why."""

    action: BudgetAction
    reason: str

    @property
    def refused(self) -> bool:
        return self.action is BudgetAction.REFUSE


def check(budget: BudgetSpec, spent_usd: float, expected_usd: float) -> BudgetVerdict | None:
    """None when the run may start; else how the budget stops it and why."""
    if spent_usd + expected_usd <= budget.limit_usd:
        return None
    action = BudgetAction(budget.action)
    verb = "refused" if action is BudgetAction.REFUSE else "held"
    return BudgetVerdict(action, (
        f"{verb} by budget {budget.name!r}: {usd(spent_usd)} spent this {budget.period} + "
        f"{usd(expected_usd)} expected > {usd(budget.limit_usd)}"
    ))


def verdict(budget: BudgetSpec, spent_usd: float, expected_usd: float) -> str | None:
    """The reason alone, "held ..." or "refused ...": for callers not yet on ``check`` (to be removed
    once the engine's dispatch reads ``BudgetVerdict.refused``)."""
    found = check(budget, spent_usd, expected_usd)
    return None if found is None else found.reason
