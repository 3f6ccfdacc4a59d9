"""/metrics over a history with spot and preempted runs (SQLite and PostgreSQL): spend split by market per
attempt, the spot saving against the shape's on-demand price, preempted attempts counted once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.core.runs import RunRecord
from scheduler.reporting.metrics import SETTLE_S, make_registry, render
from tests.integration.test_metrics import T0, clock, finish, finish_spot, sample, scrape, store  # noqa: F401

OD = 0.1  # cpu-small's on-demand price in test_metrics' catalog
SPOT = 0.03


def history(store):
    finish_spot(store, "r-spot000001", [("spot", SPOT, 600.0, 60.0), ("spot", SPOT, 600.0, 0.0)])  # preempted once
    finish_spot(store, "r-mix0000001", [("spot", SPOT, 600.0, 30.0), ("on_demand", OD, 300.0, 0.0)])  # fell back
    finish(store, "r-od00000001", seconds=60.0)  # on-demand only
    # a spot row without an attempt log (written by hand or an older costwise): spot for its whole cost
    finish(store, "r-old0000001", seconds=60.0, market="spot", price_per_hour=SPOT, cost_usd=SPOT * 60 / 3600)
    # a spot run on a shape since deleted from the catalog: its spend counts, its saving cannot be known
    finish_spot(store, "r-gone000001", [("spot", SPOT, 3600.0, 0.0)], job="gone", shape="retired")


def spot_figures(families) -> dict:
    money = {m: sample(families, "costwise_spend_dollars", "_total", job_name="train", market=m)
             for m in ("spot", "on_demand")}
    return dict(money, saved=sample(families, "costwise_spot_savings_dollars", "_total", job_name="train"),
                preempted=sample(families, "costwise_preemptions", "_total", job_name="train", shape="cpu-small"))


def test_spend_is_split_by_market_per_attempt_with_the_spot_saving(store):
    history(store)
    families, _ = scrape(make_registry(store, CollectorRegistry())[0])
    spot_s = 1200 + 600 + 60
    assert spot_figures(families) == pytest.approx({
        "spot": SPOT * spot_s / 3600, "on_demand": OD * (300 + 60) / 3600,
        "saved": (OD - SPOT) * spot_s / 3600, "preempted": 2})
    # idle spend by market too: cost × (1 − 0.25 CPU utilization)
    assert sample(families, "costwise_idle_spend_dollars", "_total", job_name="train", market="spot") == pytest.approx(
        SPOT * spot_s / 3600 * 0.75)
    assert sample(families, "costwise_spend_dollars", "_total", job_name="gone", market="spot") == pytest.approx(SPOT)
    assert not [s for s in families["costwise_spot_savings_dollars"].samples if s.labels["job_name"] == "gone"]
    # runs that never used spot add no spot series, no saving and no preemption series
    finish(store, "r-od00000002", job="plain")
    families, _ = scrape(make_registry(store, CollectorRegistry())[0])
    plain = [s.labels for f in ("costwise_spend_dollars", "costwise_spot_savings_dollars", "costwise_preemptions")
             for s in families[f].samples if s.labels["job_name"] == "plain"]
    assert plain == [{"job_name": "plain", "pipeline": "", "step": "", "shape": "cpu-small", "market": "on_demand",
                      "team": "ml"}]


def test_spot_figures_are_counted_once_as_runs_settle_and_after_a_restart(store, clock):
    history(store)
    registry = make_registry(store, CollectorRegistry())[0]
    before = spot_figures(scrape(registry)[0])
    clock.advance(SETTLE_S * 2)  # the recent runs are folded into the settled totals
    assert spot_figures(scrape(registry)[0]) == pytest.approx(before)
    assert spot_figures(scrape(make_registry(store, CollectorRegistry())[0])[0]) == pytest.approx(before)


def test_unfinished_spot_runs_show_their_spend_by_market_and_their_preemptions(store, clock):
    """A run preempted on spot and running again: the billed attempt on its market, the current one on
    its own; its preemption in the running gauge until it ends, then in the counter, never both."""
    log = [{"attempt": 1, "state": "PREEMPTED", "market": "spot", "price_per_hour": SPOT, "seconds": 3600.0,
            "cost_usd": SPOT, "lost_s": 0.0}]
    store.create_run(RunRecord(
        id="r-live000001", job="train", state="RUNNING", shape="cpu-small", queued_at=T0, started_at=T0,
        market="on_demand", price_per_hour=OD, cost_usd=SPOT, preemptions=1, attempts=2, labels={"team": "ml"},
        extra={"attempt_log": log, "attempt_started": {"at": (T0 + timedelta(hours=1)).isoformat(),
                                                       "after_preemptions": 1}}))
    store.create_run(RunRecord(id="r-wait000001", job="train", state="QUEUED", queued_at=T0, market="spot",
                               price_per_hour=0.0, cost_usd=0.0, preemptions=1, labels={"team": "ml"}))
    registry = make_registry(store, CollectorRegistry())[0]
    clock.advance(7200)  # an hour into its second attempt
    families, _ = scrape(registry)
    live = dict(job_name="train", shape="cpu-small")
    assert sample(families, "costwise_running_spend_dollars", market="spot", **live) == pytest.approx(SPOT)
    assert sample(families, "costwise_running_spend_dollars", market="on_demand", **live) == pytest.approx(OD)
    assert sample(families, "costwise_running_burn_dollars_per_hour", market="on_demand", **live) == OD
    assert sample(families, "costwise_running_preemptions", **live) == 1
    assert sample(families, "costwise_running_preemptions", job_name="train", shape="") == 1  # free to price 0
    assert not families["costwise_preemptions"].samples
    log.append({"attempt": 2, "state": "SUCCEEDED", "market": "on_demand", "price_per_hour": OD, "seconds": 3600.0,
                "cost_usd": OD, "lost_s": 0.0})
    store.update_run("r-live000001", state="SUCCEEDED", ended_at=clock.now(), duration_s=7200.0, cost_usd=SPOT + OD,
                     extra={"attempt_log": log})
    families, _ = scrape(registry)
    assert sample(families, "costwise_preemptions", "_total", **live) == 1
    assert not [s for s in families["costwise_running_preemptions"].samples if s.labels["shape"] == "cpu-small"]
    assert sample(families, "costwise_spend_dollars", "_total", market="spot", **live) == pytest.approx(SPOT)
    assert sample(families, "costwise_spend_dollars", "_total", market="on_demand", **live) == pytest.approx(OD)
    assert sample(families, "costwise_spot_savings_dollars", "_total", **live) == pytest.approx(OD - SPOT)


def test_fast_rendering_matches_prometheus_client_with_spot_series(store):
    history(store)
    registry = make_registry(store, CollectorRegistry())[0]

    def samples(text: str) -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name != "costwise_metrics_collect_seconds" and not s.name.endswith("_created")}

    fast = samples(render(registry).decode())
    assert fast == samples(generate_latest(registry).decode())
    assert any(name == "costwise_spot_savings_dollars_total" for name, _ in fast)
