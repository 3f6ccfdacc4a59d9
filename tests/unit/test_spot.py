"""The spot market's pure core: expected cost under preemptions, and the Can't Be Late deadline gate."""

import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core.errors import SpecError
from scheduler.core.specs import parse_spec
from scheduler.core.spot import (
    RESTART_OVERHEAD_S,
    Market,
    SpotPolicy,
    choose_market,
    expected_spot_cost,
    expected_spot_seconds,
    interruption_rate,
    lost_seconds,
    market_gate,
    remaining_estimate,
)

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def simulate_spot_seconds(work_s: float, per_hour: float, interval_s: float | None, restart_s: float,
                          rng: random.Random) -> float:
    """One spot run drawn from memoryless preemptions: the wall time until the work is done."""
    rate, done, wall = per_hour / 3600.0, 0.0, 0.0
    saved = 0.0
    while done < work_s:
        segment_end = work_s if not interval_s else min(work_s, saved + interval_s)
        until_preempted = rng.expovariate(rate)
        need = segment_end - done
        if until_preempted >= need:
            wall += need
            done = saved = segment_end
        else:
            wall += until_preempted + restart_s
            done = saved  # back to the last checkpoint
    return wall


@pytest.mark.parametrize("work_s, per_hour, interval_s", [
    (3 * 3600, 0.2, 1800), (3 * 3600, 0.5, None), (600, 1.0, 60), (8 * 3600, 0.1, 3600),
])
def test_expected_seconds_match_a_drawn_market(work_s, per_hour, interval_s):
    rng = random.Random(7)
    drawn = [simulate_spot_seconds(work_s, per_hour, interval_s, RESTART_OVERHEAD_S, rng) for _ in range(4000)]
    mean = sum(drawn) / len(drawn)
    assert expected_spot_seconds(work_s, per_hour, interval_s) == pytest.approx(mean, rel=0.04)


def test_no_preemptions_cost_the_work_itself():
    assert expected_spot_seconds(3600, 0.0, 600) == 3600
    assert expected_spot_seconds(0, 0.5, 600) == 0
    assert expected_spot_cost(1.2, 3600, 0.0, None) == pytest.approx(1.2)


def test_checkpoints_make_spot_cheaper_and_a_hopeless_market_is_infinite():
    never, hourly, often = (expected_spot_seconds(10 * 3600, 0.3, c) for c in (None, 3600, 300))
    assert never > hourly > often > 10 * 3600
    assert math.isinf(expected_spot_seconds(30 * 86400, 60.0, None))
    assert math.isinf(expected_spot_cost(1.0, 30 * 86400, 60.0, None))


def test_default_rates_are_conservative_and_a_declared_rate_wins():
    assert interruption_rate(None, gpus=1) > interruption_rate(None, gpus=0) > 0
    assert interruption_rate(0.0, gpus=8) == 0.0
    assert interruption_rate(2.5, gpus=0) == 2.5


def test_lost_work_is_bounded_by_the_checkpoint_interval():
    assert lost_seconds(1000, 300) == 300
    assert lost_seconds(1000, None) == 1000
    assert lost_seconds(200, 300) == 200
    assert lost_seconds(1000, 300, since_last_checkpoint_s=42) == 42


def gate(policy=SpotPolicy.ALLOWED, deadline_in_s=None, remaining_s=3600.0, interval_s=600.0, **kw):
    deadline = None if deadline_in_s is None else T0 + timedelta(seconds=deadline_in_s)
    return market_gate(policy, now=T0, deadline_at=deadline, remaining_on_demand_s=remaining_s,
                       checkpoint_interval_s=interval_s, **kw)


def test_the_job_decides_first():
    assert not gate(SpotPolicy.NEVER).spot and gate(SpotPolicy.NEVER).on_demand
    required = gate(SpotPolicy.REQUIRED, deadline_in_s=-5)
    assert required.spot and not required.on_demand and "deadline has passed" in required.reason
    free = gate(deadline_in_s=None)
    assert free.spot and free.on_demand


def test_spot_only_while_the_slack_covers_one_more_preemption():
    # 3600 s of work, a 600 s checkpoint interval, a 180 s restart: 4380 s must stay free
    assert gate(deadline_in_s=4381).spot
    late = gate(deadline_in_s=4379)
    assert not late.spot and late.on_demand and late.gave_up_spot
    assert "slack is gone" in late.reason


def test_once_given_up_spot_is_not_tried_again():
    assert not gate(deadline_in_s=10**6, gave_up_before=True).spot


def test_with_no_estimate_a_fresh_run_needs_room_for_two_checkpoint_intervals_and_two_restarts():
    # assumed to need one interval and a restart, plus what one preemption can cost
    assert gate(deadline_in_s=2 * 600 + 2 * RESTART_OVERHEAD_S + 1, remaining_s=None).spot
    assert not gate(deadline_in_s=2 * 600 + 2 * RESTART_OVERHEAD_S - 1, remaining_s=None).spot


def test_remaining_never_below_what_the_run_has_already_run():
    assert remaining_estimate(3600, 600) == 3000
    assert remaining_estimate(3600, 2400) == 2400  # past half its estimate: as long again
    assert remaining_estimate(None, 0, 600) == 600 + RESTART_OVERHEAD_S
    assert remaining_estimate(None, 5000, 600) == 5000


def test_a_run_the_gate_lets_on_spot_still_meets_its_deadline_after_the_worst_preemption():
    rng = random.Random(3)
    for _ in range(2000):
        work = rng.uniform(60, 20_000)
        interval = rng.choice([None, 60.0, 600.0, 3600.0])
        deadline_in = rng.uniform(work, 3 * work + 4000)
        verdict = gate(deadline_in_s=deadline_in, remaining_s=work, interval_s=interval)
        if not verdict.spot:
            continue
        # preempted after t seconds on spot, losing what was not checkpointed, then on-demand to the end
        t = rng.uniform(0, work)
        saved = 0.0 if interval is None else (t // interval) * interval
        finish = t + RESTART_OVERHEAD_S + (work - saved)
        assert finish <= deadline_in + 1e-6


def test_market_names_are_the_contract():
    assert [m.value for m in Market] == ["on_demand", "spot"]
    assert [p.value for p in SpotPolicy] == ["never", "allowed", "required"]


@pytest.mark.parametrize("fields, words", [
    ({"spot": "sometimes"}, "spot='sometimes'"),
    ({"deadline": "3h", "max_runtime": "2h"}, "deadline 10800s"),
    ({"checkpoint_interval": "0s"}, "checkpoint_interval"),
])
def test_bad_spot_fields_are_one_line_naming_the_field(fields, words):
    with pytest.raises(SpecError) as caught:
        parse_spec({"kind": "Job", "name": "j", "artifact": "a.py", **fields})
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_spot_fields_parse_with_their_defaults():
    job = parse_spec({"kind": "Job", "name": "j", "artifact": "a.py"})
    assert job.spot is SpotPolicy.NEVER and job.deadline is None and job.checkpoint_interval is None
    job = parse_spec({"kind": "Job", "name": "j", "artifact": "a.py", "spot": "allowed",
                      "checkpoint_interval": "10m", "deadline": "6h"})
    assert (job.spot, job.checkpoint_interval, job.deadline) == (SpotPolicy.ALLOWED, 600.0, 21600.0)
    with pytest.raises(SpecError):
        parse_spec({"kind": "Shape", "name": "s", "vcpus": 1, "memory_gib": 1, "price_per_hour": 1,
                    "spot_interruptions_per_hour": -1})


def choice(policy=SpotPolicy.ALLOWED, spot=0.3, deadline_in_s=None, expected_s=3600.0, **kw):
    deadline = None if deadline_in_s is None else T0 + timedelta(seconds=deadline_in_s)
    args = dict(price_per_hour=1.0, spot_price_per_hour=spot, interruptions_per_hour=0.2, expected_s=expected_s,
                progress_s=0.0, checkpoint_interval_s=600.0, now=T0, deadline_at=deadline)
    return choose_market(policy, **{**args, **kw})


def test_a_run_goes_to_spot_when_allowed_sold_and_cheaper():
    assert choice().market is Market.SPOT and choice().price_per_hour == 0.3
    assert choice(SpotPolicy.NEVER).market is Market.ON_DEMAND
    assert choice(spot=None).market is Market.ON_DEMAND
    dear = choice(spot=0.99, interruptions_per_hour=5.0)  # preemptions eat the discount
    assert dear.market is Market.ON_DEMAND and "not below" in dear.reason
    assert choice(SpotPolicy.REQUIRED, spot=0.99, interruptions_per_hour=5.0).market is Market.SPOT


def test_a_run_whose_slack_is_gone_is_placed_on_demand():
    late = choice(deadline_in_s=3700)
    assert late.market is Market.ON_DEMAND and late.gave_up_spot and "slack" in late.reason
    assert choice(deadline_in_s=10 * 3600).market is Market.SPOT
