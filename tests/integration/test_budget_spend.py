"""A budget's spend is one SUM per label set plus the running runs' burn, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest

from scheduler.core.budgets import BudgetSpec
from scheduler.core.clock import FrozenClock
from scheduler.core.runs import FAILED, QUEUED, RUNNING, SUCCEEDED, RunRecord, new_run_id
from scheduler.runtime.budget_ledger import BudgetLedger
from scheduler.store.store import Store


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
def store(catalog_url, clock):
    s = Store.open(catalog_url, clock)
    yield s
    s.close()


def add(store, clock, state, labels, cost=0.0, queued_ago_h=1.0, started_ago_h=None, price=None):
    now = clock.now()
    run = RunRecord(id=new_run_id(), job="train", state=state, labels=labels, cost_usd=cost,
                    queued_at=now - timedelta(hours=queued_ago_h), price_per_hour=price,
                    started_at=None if started_ago_h is None else now - timedelta(hours=started_ago_h))
    store.create_run(run)


def test_spend_sums_finished_costs_and_live_burn_of_the_runs_a_budget_covers(store, clock):
    ml, web = {"team": "ml", "project": "churn"}, {"team": "web"}
    add(store, clock, SUCCEEDED, ml, cost=1.25)
    add(store, clock, FAILED, {"project": "churn", "team": "ml"}, cost=0.75)  # same labels, other key order
    add(store, clock, SUCCEEDED, web, cost=10.0)
    add(store, clock, SUCCEEDED, ml, cost=100.0, queued_ago_h=30)  # before the period
    add(store, clock, RUNNING, ml, started_ago_h=0.5, price=2.0)  # 1.0 $ so far
    add(store, clock, QUEUED, ml)
    since = clock.now() - timedelta(hours=24)
    ledger = BudgetLedger(store, clock)
    ml_budget = BudgetSpec(name="ml", labels={"team": "ml"}, limit_usd=50)
    assert ledger.spent(ml_budget, since) == pytest.approx(1.25 + 0.75 + 1.0)
    everything = BudgetSpec(name="all", limit_usd=50)
    assert BudgetLedger(store, clock).spent(everything, since) == pytest.approx(1.25 + 0.75 + 10.0 + 1.0)
    assert BudgetLedger(store, clock).spent(BudgetSpec(name="none", labels={"team": "ops"}, limit_usd=1), since) == 0
