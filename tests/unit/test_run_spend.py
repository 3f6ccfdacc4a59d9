"""`costwise show`'s spend line (core/costs.py) for a run billed at more than one price: its attempts'
mix, their billed time, not the last attempt's price over the whole span from first start to end."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core import attempts
from scheduler.core.costs import spend_line, spend_summary
from scheduler.core.runs import RUNNING, SUCCEEDED, RunRecord
from scheduler.core.spot import Market

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spot_then_on_demand() -> RunRecord:
    """100 s on spot at $0.36/h, preempted, queued 60 s, then 60 s on-demand at $1/h."""
    run = RunRecord(id="r-1", job="j", state=RUNNING, market=Market.SPOT, price_per_hour=0.36, started_at=T0,
                    attempts=1)
    _, values = attempts.preempted_values(run, at(100), checkpoint_interval_s=30, since_checkpoint_s=10)
    queued = RunRecord(**{**run.__dict__, **values})
    second = RunRecord(**{**queued.__dict__, **attempts.launch_values(queued, at(160)), "state": RUNNING,
                          "market": Market.ON_DEMAND, "price_per_hour": 1.0})
    final = attempts.final_values(second, SUCCEEDED, at(220))
    return RunRecord(**{**second.__dict__, **final, "state": SUCCEEDED, "ended_at": at(220), "duration_s": 220.0})


def test_a_run_billed_at_two_prices_shows_each_attempts_market_and_price():
    run = spot_then_on_demand()
    summary = spend_summary(run)
    assert summary["billed_hours"] == pytest.approx(160 / 3600)  # the 60 s queued in between are not billed
    assert [(p["market"], p["price_per_hour"], p["seconds"]) for p in summary["price_mix"]] == \
        [("spot", 0.36, 100.0), ("on_demand", 1.0, 60.0)]
    line = spend_line(summary)
    assert "(160.0s over 2 attempts: 100.0s spot at $0.36/h, 60.0s on-demand at $1/h)" in line, line
    assert run.cost_usd == pytest.approx(sum(p["cost_usd"] for p in summary["price_mix"]))


def test_a_run_at_one_price_keeps_its_line():
    run = RunRecord(id="r-2", job="j", state=SUCCEEDED, price_per_hour=0.1, started_at=T0, ended_at=at(6.2),
                    duration_s=6.2, cost_usd=0.1 * 6.2 / 3600)
    summary = spend_summary(run)
    assert summary["price_mix"] is None and summary["attempts"] is None
    assert "(6.2s at $0.1/h)" in spend_line(summary)


def test_a_spot_run_preempted_at_one_price_is_billed_for_its_attempts_only():
    run = spot_then_on_demand()
    same_price = [{**a, "market": "spot", "price_per_hour": 0.36} for a in run.extra[attempts.LOG_KEY]]
    run = RunRecord(**{**run.__dict__, "extra": {**run.extra, attempts.LOG_KEY: same_price}})
    summary = spend_summary(run)
    assert summary["price_mix"] is None and summary["attempts"] == 2
    assert "(160.0s at $0.36/h)" in spend_line(summary)
