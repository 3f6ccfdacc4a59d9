"""A run's attempts on the spot market (core/attempts.py): a preempted attempt billed at its price with its
lost work counted, the same run queued again, and the run's cost the sum of its attempts."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core import attempts
from scheduler.core.runs import PREEMPTED, QUEUED, RUNNING, SUCCEEDED, RunRecord
from scheduler.core.spot import Market

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spot_run(**kw) -> RunRecord:
    return RunRecord(id="r-1", job="j", state=RUNNING, market=Market.SPOT, price_per_hour=0.36,
                     started_at=T0, attempts=1, **kw)


def relaunched(run: RunRecord, values: dict, now: datetime) -> RunRecord:
    """The run as the requeue then the next launch leave it (what the store would hold)."""
    queued = RunRecord(**{**run.__dict__, **values})
    launch = attempts.launch_values(queued, now)
    return RunRecord(**{**queued.__dict__, **launch, "state": RUNNING})


def test_a_preempted_attempt_is_billed_at_its_price_and_queues_the_same_run_again():
    run = spot_run()
    attempt, values = attempts.preempted_values(run, at(100), checkpoint_interval_s=30, since_checkpoint_s=12)
    assert (attempt.state, attempt.seconds, attempt.lost_s) == (PREEMPTED, 100, 12)
    assert attempt.cost_usd == pytest.approx(0.36 * 100 / 3600)
    assert values["state"] == QUEUED and (values["attempt"], values["preemptions"]) == (1, 1)
    assert values["lost_s"] == 12 and values["cost_usd"] == pytest.approx(attempt.cost_usd)
    assert values["handle"] == {} and values["preempt_requested_at"] is None and values["shape"] is None


def test_without_a_checkpoint_file_the_lost_work_is_at_most_one_interval():
    _, values = attempts.preempted_values(spot_run(), at(100), checkpoint_interval_s=30, since_checkpoint_s=None)
    assert values["lost_s"] == 30
    _, values = attempts.preempted_values(spot_run(), at(100), checkpoint_interval_s=None, since_checkpoint_s=None)
    assert values["lost_s"] == 100  # no checkpoints: the whole attempt is redone


def test_the_next_attempt_bills_from_its_own_launch_and_the_run_costs_the_sum_of_its_attempts():
    run = spot_run()
    _, values = attempts.preempted_values(run, at(100), checkpoint_interval_s=30, since_checkpoint_s=10)
    second = relaunched(run, values, at(160))  # 60 s queued between the attempts: not billed
    assert second.attempts == 2 and attempts.attempt_start(second) == at(160)
    assert attempts.progress_s(second) == 90  # 100 s run, 10 s of it lost
    second = RunRecord(**{**second.__dict__, "market": Market.ON_DEMAND, "price_per_hour": 1.0})
    final = attempts.final_values(second, SUCCEEDED, at(220))
    log = final["extra"][attempts.LOG_KEY]
    assert [a["state"] for a in log] == [PREEMPTED, SUCCEEDED] and [a["market"] for a in log] == ["spot", "on_demand"]
    assert final["cost_usd"] == pytest.approx(0.36 * 100 / 3600 + 1.0 * 60 / 3600)


def test_a_second_launch_of_the_same_attempt_keeps_its_start():
    """A retry after a preemption is the same billing span, as retries always were."""
    run = spot_run()
    _, values = attempts.preempted_values(run, at(100), checkpoint_interval_s=30, since_checkpoint_s=10)
    second = relaunched(run, values, at(160))
    assert "extra" not in attempts.launch_values(second, at(200))  # already marked for this preemption


def test_a_run_never_preempted_launches_as_before():
    run = RunRecord(id="r-2", job="j", state=RUNNING, started_at=T0)
    assert attempts.launch_values(run, at(5)) == {"attempts": 1}
    assert attempts.attempt_start(run) == T0 and attempts.progress_s(run) == 0


def test_an_old_row_without_the_new_columns_reads_as_on_demand_with_its_attempts():
    old = RunRecord(id="r-3", job="j", state=SUCCEEDED, started_at=T0, attempt=1, market=None, attempts=None,
                    preemptions=None, lost_s=None)
    assert (old.market, old.attempts, old.preemptions, old.lost_s) == (Market.ON_DEMAND, 2, 0, 0.0)
