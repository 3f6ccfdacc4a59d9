"""Placement across markets: a job that allows spot is placed on the cheapest expected offer of every
fitting shape, spot or on-demand, with the deadline gate closing spot offers whose slack is gone."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from scheduler.core.placement import PlacementRequest, ShapeIndex, alternatives, explain, place
from scheduler.core.specs import JobSpec, ShapeSpec
from scheduler.core.spot import Market, expected_spot_cost, expected_spot_seconds, market_gate, SpotPolicy
from scheduler.core.spot_offers import gate_arrays, spot_seconds

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
HOUR = 3600.0


def shape(name, price, spot=None, capacity=1, rate=None, vcpus=4):
    return ShapeSpec(name=name, vcpus=vcpus, memory_gib=16, price_per_hour=price, spot_price_per_hour=spot,
                     spot_interruptions_per_hour=rate, capacity=capacity)


# The example: A sells only on-demand at $1.00/h, B costs $1.20/h on-demand and $0.30/h on spot.
A_B = [shape("A", 1.00), shape("B", 1.20, spot=0.30)]


def job(spot="allowed", **kw):
    spec = {"name": "train", "artifact": "train.py", "requirements": {"cpus": 2, "memory_gib": 4},
            "spot": spot, "checkpoint_interval": 600, "expected_duration": HOUR, "max_runtime": 10 * HOUR, **kw}
    return JobSpec(**{k: v for k, v in spec.items() if v is not None})


def request(spec: JobSpec, queued_at=NOW, **kw) -> PlacementRequest:
    return PlacementRequest.for_job(spec, queued_at, **kw)


def decide(r, shapes=A_B, in_use=None, now=NOW, history=None):
    return place(r, ShapeIndex(shapes).snapshot(dict(in_use or {})), history or {}, now)


def test_a_spot_allowed_job_lands_on_the_dearer_shapes_spot_offer():
    d = decide(request(job()))
    assert (d.action, d.shape, d.market) == ("place", "B", Market.SPOT)
    assert d.chosen.price_per_hour == 0.30
    # the expected cost counts the work preemptions redo: above 0.30 x 1 h, far below A's $1.00
    want = expected_spot_cost(0.30, HOUR, 0.05, 600)
    assert d.chosen.expected_cost_usd == pytest.approx(want) and 0.30 < want < 0.31
    assert "B spot" in d.reason and "preemptions included" in d.reason
    assert d.chosen.market_reason.startswith("spot: expected") and "no deadline" in d.chosen.market_reason
    assert not d.gave_up_spot


def test_without_a_duration_estimate_spot_is_ranked_by_its_price_per_hour_of_work():
    d = decide(request(job(expected_duration=None)))
    assert (d.shape, d.market) == ("B", Market.SPOT)
    assert d.chosen.expected_cost_usd is None and 0.30 < d.chosen.effective_price_per_hour < 0.31
    assert "with preemptions" in d.reason


def test_explain_and_alternatives_list_both_offers_of_a_shape_with_their_costs():
    r = request(job())
    expl = explain(r, A_B, {}, {}, NOW)
    assert [(c.shape, c.market) for c in expl.ranked] == [("B", Market.SPOT), ("A", Market.ON_DEMAND),
                                                         ("B", Market.ON_DEMAND)]
    assert [c.expected_cost_usd for c in expl.ranked[1:]] == pytest.approx([1.00, 1.20])
    assert "spot's" in expl.ranked[2].market_reason  # B on-demand: its own spot offer is cheaper
    assert expl.ranked[1].market_reason == "on-demand: the shape sells no spot capacity"
    assert expl.closed == []
    alts = alternatives(r, ShapeIndex(A_B).snapshot({}), {}, 5, NOW)
    assert [(c.shape, c.market) for c in alts] == [(c.shape, c.market) for c in expl.ranked]


def test_a_deadline_without_slack_closes_every_spot_offer_and_says_why():
    # 1 h of work, a 600 s interval at risk and a restart do not fit in 4,000 s
    r = request(job(deadline=4000))
    d = decide(r)
    assert (d.shape, d.market) == ("A", Market.ON_DEMAND)
    assert d.gave_up_spot  # sticky: the claim records it and spot is not tried again
    expl = explain(r, A_B, {}, {}, NOW)
    assert {c.market for c in expl.ranked} == {Market.ON_DEMAND}
    assert [(c.shape, c.market, c.market_open) for c in expl.closed] == [("B", Market.SPOT, False)]
    assert "slack is gone" in expl.closed[0].market_reason
    assert expl.closed[0].expected_cost_usd == pytest.approx(expected_spot_cost(0.30, HOUR, 0.05, 600))
    alts = alternatives(r, ShapeIndex(A_B).snapshot({}), {}, 5, NOW)
    closed = [c for c in alts if not c.market_open]
    assert [(c.shape, c.market) for c in closed] == [("B", Market.SPOT)]
    assert "slack is gone" in closed[0].market_reason


def test_with_slack_left_the_deadline_keeps_spot_open():
    d = decide(request(job(deadline=3 * HOUR)))
    assert (d.shape, d.market) == ("B", Market.SPOT) and "of slack before the deadline" in d.chosen.market_reason


def test_slack_is_judged_when_placing_not_when_queued():
    queued = NOW - timedelta(hours=2)  # 3 h deadline, 2 h gone: 1 h left for 1 h of work
    d = decide(request(job(deadline=3 * HOUR), queued_at=queued, progress_s=0.0))
    assert (d.shape, d.market, d.gave_up_spot) == ("A", Market.ON_DEMAND, True)


def test_a_run_that_gave_up_spot_before_stays_on_demand():
    r = request(job(deadline=3 * HOUR), gave_up_spot=True)  # slack enough now, but spot was given up
    d = decide(r)
    assert (d.shape, d.market, d.gave_up_spot) == ("A", Market.ON_DEMAND, True)
    assert "not tried again" in explain(r, A_B, {}, {}, NOW).closed[0].market_reason


def test_spot_required_offers_only_spot_and_refuses_where_none_is_sold():
    r = request(job(spot="required"))
    d = decide(r)
    assert (d.shape, d.market) == ("B", Market.SPOT)
    expl = explain(r, A_B, {}, {}, NOW)
    assert [(c.shape, c.market) for c in expl.ranked] == [("B", Market.SPOT)]
    assert {(c.shape, c.market) for c in expl.closed} == {("A", Market.ON_DEMAND), ("B", Market.ON_DEMAND)}
    assert all("spot: required" in c.market_reason for c in expl.closed)
    # B full: a required job waits for B's spot rather than take A's on-demand
    assert decide(r, in_use={"B": 1}).action == "wait"
    refused = decide(r, shapes=[shape("A", 1.00)])
    assert refused.action == "refuse" and "no fitting shape sells spot" in refused.reason


def test_spot_and_on_demand_of_a_shape_share_its_slots():
    r = request(job(), queued_at=NOW - timedelta(hours=1))  # past max_wait: spills at once
    d = decide(r, in_use={"B": 1})
    assert (d.shape, d.market) == ("A", Market.ON_DEMAND)
    assert "spilled over" in d.reason
    snapshot = ShapeIndex(A_B).snapshot({})
    snapshot.take("B")
    assert place(r, snapshot, {}, NOW).shape == "A"


def test_a_dearer_spot_offer_with_frequent_preemptions_loses_to_on_demand():
    # no checkpoints and a preemption every 20 min: an hour on spot is expected to take far longer
    shapes = [shape("A", 1.00), shape("B", 1.20, spot=0.60, rate=3.0)]
    d = decide(request(job(checkpoint_interval=None)), shapes=shapes)
    assert (d.shape, d.market) == ("A", Market.ON_DEMAND)
    closed_or_dear = explain(request(job(checkpoint_interval=None)), shapes, {}, {}, NOW).ranked
    assert [(c.shape, c.market) for c in closed_or_dear][-1] == ("B", Market.SPOT)


@pytest.mark.parametrize("shapes", [A_B, [shape("A", 1.00, spot=0.2, capacity=2), shape("B", 1.20, spot=0.30)]])
@pytest.mark.parametrize("history", [{}, {"A": 500.0, "B": 900.0}])
@pytest.mark.parametrize("in_use", [{}, {"A": 1}, {"A": 1, "B": 1}])
def test_spot_never_jobs_decide_exactly_as_without_spot_prices(shapes, history, in_use):
    plain = [s.model_copy(update={"spot_price_per_hour": None}) for s in shapes]
    for spec in (job(spot="never"), job(spot="never", expected_duration=None)):
        r = request(spec, queued_at=NOW - timedelta(seconds=30))
        assert decide(r, shapes, in_use, history=history) == decide(r, plain, in_use, history=history)
        assert explain(r, shapes, in_use, history, NOW) == explain(r, plain, in_use, history, NOW)


def test_a_preempted_runs_offers_are_priced_for_the_work_left():
    d = decide(request(job(), progress_s=0.25 * HOUR))
    assert (d.shape, d.market) == ("B", Market.SPOT)
    assert d.chosen.expected_cost_usd == pytest.approx(expected_spot_cost(0.30, 0.75 * HOUR, 0.05, 600))
    expl = explain(request(job(), progress_s=0.25 * HOUR), A_B, {}, {}, NOW)
    assert [c.expected_cost_usd for c in expl.ranked[1:]] == pytest.approx([0.75, 0.90])
    # past half its estimate a run is expected to need about as long again (remaining_estimate)
    late = decide(request(job(), progress_s=0.75 * HOUR))
    assert late.chosen.expected_cost_usd == pytest.approx(expected_spot_cost(0.30, 0.75 * HOUR, 0.05, 600))


def test_the_vectorised_spot_seconds_are_the_scalar_formula():
    work = np.array([0.0, 1.0, 100.0, 599.0, 600.0, 3600.0, 86400.0, 1e7])
    for rate in (0.0, 0.05, 0.2, 3.0, 60.0):
        for interval in (None, 60.0, 600.0):
            got = spot_seconds(work, np.full(len(work), rate), interval)
            want = [expected_spot_seconds(w, rate, interval) for w in work]
            assert got == pytest.approx(want, rel=1e-12), (rate, interval)


@pytest.mark.parametrize("policy", list(SpotPolicy))
@pytest.mark.parametrize("deadline_s", [None, 500.0, 4000.0, 5000.0, 20000.0])
@pytest.mark.parametrize("interval", [None, 600.0])
@pytest.mark.parametrize("gave_up", [False, True])
def test_the_vectorised_gate_is_market_gate(policy, deadline_s, interval, gave_up):
    deadline_at = NOW + timedelta(seconds=deadline_s) if deadline_s else None
    r = PlacementRequest(job="j", requirements=job().requirements, spot=policy, checkpoint_interval_s=interval,
                         deadline_at=deadline_at, gave_up_spot=gave_up)
    remaining = np.array([100.0, 600.0, 601.0, 3000.0, 3600.0, 4200.0, 19000.0])
    opened, gone = gate_arrays(r, NOW, remaining)
    for left, is_open, is_gone in zip(remaining, opened, gone):
        gate = market_gate(policy, now=NOW, deadline_at=deadline_at, remaining_on_demand_s=float(left),
                           checkpoint_interval_s=interval, gave_up_before=gave_up)
        assert (bool(is_open), bool(is_gone)) == (gate.spot, gate.gave_up_spot and policy is SpotPolicy.ALLOWED)
