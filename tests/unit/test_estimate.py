"""The pure estimator: a run's shape, duration, cost and range; a sweep under its budget; a pipeline's
steps with cache hits predicted from their keys (no store, no files: the readers are plain data)."""

import math
from datetime import datetime, timezone

import pytest

from scheduler.core import spot
from scheduler.core.estimate import (Source, duration_range, estimate_job, sweep_cost, trials_within_budget)
from scheduler.core.estimate_pipeline import Outcome, Readers, estimate_pipeline
from scheduler.core.placement import PlacementRequest
from scheduler.core.shape_index import ShapeIndex
from scheduler.core.specs import JobSpec, ShapeSpec, parse_spec
from scheduler.core.spot import Market, SpotPolicy
from scheduler.core.step_plan import CacheLookup, ConditionDocument, RunSoFar, step_key

NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)
SHAPES = ShapeIndex([
    ShapeSpec(name="small", vcpus=2, memory_gib=4, price_per_hour=0.10, capacity=1),
    ShapeSpec(name="large", vcpus=8, memory_gib=32, price_per_hour=0.80, capacity=1, spot_price_per_hour=0.20),
])


def job(name="train", **kw) -> JobSpec:
    return JobSpec(**{"name": name, "artifact": f"{name}.py", "artifact_hash": "sha256:1",
                      "requirements": {"cpus": 1, "memory_gib": 1}, **kw})


def estimate(j: JobSpec, history=None):
    return estimate_job(j, PlacementRequest.for_job(j), SHAPES, history or {}, NOW)


def test_the_range_is_a_log_normal_around_the_expected_seconds():
    low, high = duration_range(100.0, 0.5)
    median = 100.0 * math.exp(-0.125)
    assert low == pytest.approx(median * math.exp(-1.2816 * 0.5), rel=1e-4)
    assert high == pytest.approx(median * math.exp(1.2816 * 0.5), rel=1e-4)
    assert low < median < 100.0 < high
    assert duration_range(100.0, 0.0) == (100.0, 100.0)


def test_a_job_with_history_is_priced_on_placements_shape():
    est = estimate(job(), {"small": (600.0, 5)})
    assert (est.shape, est.duration_source, est.market) == ("small", Source.HISTORY, Market.ON_DEMAND)
    assert est.expected_cost_usd == pytest.approx(0.10 * est.expected_duration_s / 3600)
    assert est.p10_usd < est.expected_cost_usd < est.p90_usd
    low, high = duration_range(est.expected_duration_s, est.duration_sd)
    assert est.p90_usd == pytest.approx(0.10 * high / 3600)
    more = estimate(job(), {"small": (600.0, 50)})  # more runs: a narrower range
    assert more.p90_usd - more.p10_usd < est.p90_usd - est.p10_usd


def test_declared_unknown_and_refused():
    declared = estimate(job(expected_duration=3600))
    assert declared.duration_source is Source.DECLARED and declared.expected_cost_usd > 0
    unknown = estimate(job())
    assert unknown.shape == "small" and unknown.expected_cost_usd is None and unknown.duration_source is Source.NONE
    refused = estimate(job(requirements={"cpus": 64, "memory_gib": 1}))
    assert refused.shape is None and "no shape fits" in refused.reason


def test_max_runtime_caps_every_figure():
    est = estimate(job(expected_duration=36000, max_runtime=60))
    assert est.expected_duration_s == 60
    assert est.p90_usd == pytest.approx(0.10 * 60 / 3600)


def test_a_spot_job_is_priced_on_the_spot_market_with_preemptions():
    j = job(expected_duration=7200, spot=SpotPolicy.REQUIRED, shape="large", checkpoint_interval=600)
    est = estimate(j)
    assert (est.shape, est.market, est.price_per_hour) == ("large", Market.SPOT, 0.20)
    rate = spot.interruption_rate(None, 0)
    assert est.expected_cost_usd == pytest.approx(spot.expected_spot_cost(0.20, est.expected_duration_s, rate, 600))
    assert est.expected_cost_usd < 0.80 * est.expected_duration_s / 3600


def test_trials_within_budget_follow_budget_allows():
    assert trials_within_budget(10, 1, None, 0.3) == 10
    assert trials_within_budget(10, 1, 1.0, 0.3) == 3  # 0.9 spent: a fourth would pass 1.0
    assert trials_within_budget(10, 1, 0.9, 0.3) == 3  # exactly the budget still starts
    assert trials_within_budget(10, 4, 1.0, 0.3) == 4  # the first wave always starts
    assert trials_within_budget(2, 4, 0.1, 0.3) == 2


def test_a_sweep_costs_its_trials_under_its_budget():
    per = estimate(job(), {"small": (360.0, 3)})  # ~$0.01 a trial
    free = sweep_cost(per, 20, 2, None)
    assert free.trials == 20 and free.expected_usd == pytest.approx(20 * per.expected_cost_usd)
    capped = sweep_cost(per, 20, 2, 0.05)
    assert capped.trials < 20 and capped.expected_usd <= min(20 * per.expected_cost_usd, 0.05)
    assert capped.p10_usd <= capped.expected_usd <= capped.p90_usd <= 0.05 + per.p90_usd
    assert "budget" in capped.reason


PIPELINE = parse_spec({"kind": "Pipeline", "name": "flow", "parameters": {"mode": "fast"}, "steps": [
    {"name": "a", "job": "a", "outputs": ["a.csv"]},
    {"name": "b", "job": "b", "args": ["${params.mode}"], "inputs": {"a.csv": "a/a.csv"}, "outputs": ["b.csv"]},
    {"name": "c", "job": "c", "inputs": {"b.csv": "b/b.csv"}},
    {"name": "tune", "sweep": {"job": "c", "parameters": {"lr": {"grid": [1, 2, 3]}}, "budget_usd": 100,
                               "objective": {"value": "m.json#loss"}}, "inputs": {"a.csv": "a/a.csv"},
     "outputs": ["m.json"]},
]})
JOBS = {n: job(n) for n in "abc"}
HISTORY = {n: {"small": (1800.0, 4)} for n in "abc"}
A_OUT = {"a.csv": {"sha256": "ab" * 32, "bytes": 3}}


def readers(cached: dict[str, dict]) -> Readers:
    """Cache entries by key; jobs and histories from the tables above."""
    return Readers(
        job_for=lambda step: JOBS.get(step.job_name),
        lookup=lambda step, key: CacheLookup(entry=cached.get(key)),
        condition_for=lambda step, so_far: None,
        estimate_for=lambda j: estimate(j, HISTORY[j.name]),
    )


def a_key() -> str:
    return step_key(PIPELINE.step("a"), JOBS["a"], RunSoFar(params={"mode": "fast"})).key


def test_a_cached_step_is_free_and_the_steps_after_a_rerun_are_misses():
    est = estimate_pipeline(PIPELINE, {"mode": "fast"}, readers({a_key(): {"run_id": "r-1", "outputs": A_OUT,
                                                                          "cost_usd": 0.07}}))
    by = {s.step: s for s in est.steps}
    assert (by["a"].outcome, by["a"].expected_cost_usd, by["a"].source) == (Outcome.CACHED, 0.0, Source.CACHED)
    assert by["a"].saved_usd == 0.07 and est.saved_usd == 0.07
    assert by["b"].outcome is Outcome.RUN and "no earlier run" in by["b"].reason  # its key: a's cached outputs
    assert by["c"].outcome is Outcome.RUN and "upstream step b runs again" in by["c"].reason
    assert by["tune"].outcome is Outcome.SWEEP and by["tune"].trials == 3
    assert by["tune"].expected_cost_usd == pytest.approx(3 * by["c"].expected_cost_usd)
    assert est.expected_cost_usd == pytest.approx(sum(s.expected_cost_usd for s in est.steps))
    assert est.p10_usd < est.expected_cost_usd < est.p90_usd and est.unknown == []


def test_every_step_runs_when_nothing_is_cached_or_all_is_forced():
    cold = estimate_pipeline(PIPELINE, {"mode": "fast"}, readers({}))
    assert {s.step: s.outcome for s in cold.steps} == {"a": Outcome.RUN, "b": Outcome.RUN, "c": Outcome.RUN,
                                                       "tune": Outcome.SWEEP}
    forced = estimate_pipeline(PIPELINE, {"mode": "fast"}, readers({a_key(): {"outputs": A_OUT}}), force_all=True)
    assert forced.steps[0].outcome is Outcome.RUN and forced.steps[0].reason == "forced rerun"
    assert forced.expected_cost_usd == pytest.approx(cold.expected_cost_usd)


def test_conditions_read_from_cached_steps_are_evaluated_others_taken_to_hold():
    spec = parse_spec({"kind": "Pipeline", "name": "p", "steps": [
        {"name": "a", "job": "a", "outputs": ["m.json"]},
        {"name": "deploy", "job": "b", "when": {"value": "a/m.json#auc", "op": ">=", "than": 0.8}},
        {"name": "stop", "fail": "auc too low", "when": {"value": "a/m.json#auc", "op": "<", "than": 0.8}},
        {"name": "ghost", "job": "nowhere"},
    ]})
    key = step_key(spec.step("a"), JOBS["a"], RunSoFar(params={})).key
    seen = []

    def condition_for(step, so_far):
        seen.append((step.name, dict(so_far.outputs)))
        return ConditionDocument(value={"auc": 0.9})

    plain = readers({})
    entry = {"outputs": {"m.json": A_OUT["a.csv"]}}
    cached = Readers(plain.job_for, lambda step, k: CacheLookup(entry=entry if k == key else None), condition_for,
                     plain.estimate_for)
    est = {s.step: s for s in estimate_pipeline(spec, {}, cached).steps}
    assert est["a"].outcome is Outcome.CACHED and est["deploy"].outcome is Outcome.RUN
    assert est["stop"].outcome is Outcome.SKIPPED and "condition false" in est["stop"].reason
    assert seen[0][1] == {"a": {"m.json": A_OUT["a.csv"]}}  # the document is read from a's cached outputs
    assert est["ghost"].outcome is Outcome.UNKNOWN and est["ghost"].expected_cost_usd is None
    cold = {s.step: s for s in estimate_pipeline(spec, {}, readers({})).steps}
    assert cold["deploy"].outcome is Outcome.RUN and cold["stop"].outcome is Outcome.FAILS  # a runs: both held
    assert cold["stop"].expected_cost_usd == 0.0
    total = estimate_pipeline(spec, {}, readers({}))
    assert total.unknown == ["ghost"]
    assert total.expected_cost_usd == pytest.approx(cold["a"].expected_cost_usd + cold["deploy"].expected_cost_usd)
