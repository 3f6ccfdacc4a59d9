"""The report's "what changed": two periods of a week each and a monthly budget, written as run records.

Each job moves for one reason the test knows: etl runs three times as often, train runs three times
as long, fat moved to a dearer shape, the pipeline step lost its cache hits, old stopped, new started.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core.budgets import BudgetSpec
from scheduler.core.clock import FrozenClock
from scheduler.core.money import usd
from scheduler.core.runs import RunRecord
from scheduler.core.specs import ShapeSpec
from scheduler.reporting import report
from scheduler.reporting.report_html import render_html
from scheduler.reporting.report_changes import EFFECTS, MoverReason
from scheduler.reporting.report_summary import summary_lines
from scheduler.store.store import Store

PREV, CUR, NOW = (datetime(2026, 3, d, tzinfo=timezone.utc) for d in (1, 8, 15))
PRICES = {"small": 0.10, "big": 1.60, "highmem": 0.90, "gpu-a10": 1.00}
SHAPES = [ShapeSpec(name="small", vcpus=2, memory_gib=4, price_per_hour=0.10, capacity=4),
          ShapeSpec(name="big", vcpus=16, memory_gib=64, price_per_hour=1.60, capacity=2),
          ShapeSpec(name="highmem", vcpus=2, memory_gib=64, price_per_hour=0.90, capacity=2),
          ShapeSpec(name="gpu-a10", vcpus=8, memory_gib=32, gpus=1, gpu_type="A10", price_per_hour=1.00, capacity=1)]
BUDGET = BudgetSpec(name="ml-monthly", labels={"team": "ml"}, period="month", limit_usd=20.0)


@pytest.fixture
def store(catalog_url):
    s = Store.open(catalog_url, FrozenClock(NOW))
    s.apply(SHAPES + [BUDGET])
    yield s
    s.close()


class History:
    def __init__(self, store):
        self.store, self.n = store, 0

    def run(self, start, job, shape, minutes, team="ml", state="SUCCEEDED", **extra):
        self.n += 1
        start = start + timedelta(hours=self.n)
        duration = minutes * 60.0
        price = PRICES[shape]
        cached = state == "CACHED"
        self.store.create_run(RunRecord(
            id=f"r-{self.n:04d}", job=job, state=state, shape=shape, backend="local", queued_at=start,
            started_at=start, ended_at=start + timedelta(seconds=0 if cached else duration),
            duration_s=0.0 if cached else duration, cost_usd=0.0 if cached else price * duration / 3600.0,
            price_per_hour=price, cpu_util_avg=0.5, mem_peak_bytes=2**30, labels={"team": team}, **extra))


def two_weeks(store) -> History:
    h = History(store)
    for start, etl_runs, train_min, fat_shape, hits in ((PREV, 2, 30, "small", 3), (CUR, 6, 90, "highmem", 0)):
        for _ in range(etl_runs):
            h.run(start, "etl", "small", 60, team="data")
        for _ in range(2):
            h.run(start, "train", "gpu-a10", train_min)
            h.run(start, "fat", fat_shape, 60, team="data")
        for i in range(4):  # one pipeline step, looked up in the cache four times a week
            hit = i < hits
            h.run(start, "features", "big", 60, state="CACHED" if hit else "SUCCEEDED", pipeline="daily",
                  step="features", cache_hit=hit, saved_usd=1.60 if hit else 0.0,
                  extra={"cache": {"result": "hit" if hit else "miss"}})
    h.run(PREV, "old", "small", 30, team="data")
    h.run(CUR, "new", "big", 30, team="data", state="FAILED")
    return h


def test_movers_and_their_reasons_from_the_decomposition(store):
    two_weeks(store)
    rep = report.build_report(store, since=CUR, until=NOW, group_by="job")
    assert rep.previous == (PREV, CUR)
    rows = rep.changes.set_index("job")
    expected = {  # job: (previous spend, spend, reason)
        "features": (1.60, 6.40, MoverReason.CACHE_FELL), "train": (1.00, 3.00, MoverReason.LONGER_RUNS),
        "fat": (0.20, 1.80, MoverReason.DEARER_SHAPE), "etl": (0.20, 0.60, MoverReason.MORE_RUNS),
        "new": (0.0, 0.80, MoverReason.NEW), "old": (0.05, 0.0, MoverReason.GONE),
    }
    for job, (before, after, reason) in expected.items():
        row = rows.loc[job]
        assert (row["cost_usd_prev"], row["cost_usd"]) == pytest.approx((before, after)), job
        assert row["reason"] == reason, (job, row[list(EFFECTS)].to_dict())
        # the four parts add up to the change exactly
        assert math.fsum(row[list(EFFECTS)]) == pytest.approx(after - before, abs=1e-12), job
    # each reason's part carries the whole change where only that one thing moved
    assert rows.loc["features", "cache_effect_usd"] == pytest.approx(4 * (1 - 0.25) * 1.60)
    assert rows.loc["train", "duration_effect_usd"] == pytest.approx(2.0)
    assert rows.loc["fat", "price_effect_usd"] == pytest.approx(1.6)
    assert rows.loc["etl", "runs_effect_usd"] == pytest.approx(0.4)
    assert rows.loc["fat", "detail"] == "$0.1/h → $0.9/h (small → highmem)"
    assert rows.loc["train", "detail"] == "average run 30.0 min → 90.0 min"
    assert rows.loc["features", "detail"] == "cache hits 75% → 0% of runs"
    assert list(rep.movers["job"]) == ["features", "train", "fat", "new", "etl"]  # biggest |Δ| first, five


def test_headline_compares_the_period_with_the_one_before(store):
    two_weeks(store)
    rep = report.build_report(store, since=CUR, until=NOW, group_by="team")
    h = rep.headline
    prev = 0.20 + 1.00 + 0.20 + 1.60 + 0.05
    cur = 0.60 + 3.00 + 1.80 + 6.40 + 0.80
    assert (h["prev_cost_usd"], h["cost_usd"]) == pytest.approx((prev, cur))
    assert h["delta_usd"] == pytest.approx(cur - prev)
    assert h["delta_ratio"] == pytest.approx((cur - prev) / prev)
    # successes: cached runs deliver too; the failed run does not
    assert (h["prev_successes"], h["successes"]) == (11, 14)
    assert h["cost_per_success_usd"] == pytest.approx(cur / 14)
    assert rep.totals["saved_usd"] == 0.0 and rep.totals["cache_hit_ratio"] == 0.0
    by_team = rep.changes.set_index("team")
    assert by_team["cost_usd"].sum() == pytest.approx(cur)
    assert by_team.loc["ml", "cost_usd_prev"] == pytest.approx(1.00 + 1.60)


def test_budget_vs_actual_with_a_run_rate_forecast(store):
    two_weeks(store)
    store.create_run(RunRecord(id="r-live", job="train", state="RUNNING", shape="gpu-a10", backend="local",
                               queued_at=NOW - timedelta(hours=3), started_at=NOW - timedelta(hours=2),
                               price_per_hour=1.00, labels={"team": "ml"}))
    rep = report.build_report(store, since=CUR, until=NOW, group_by="job")
    budget = rep.budgets.set_index("budget").loc["ml-monthly"]
    finished_ml = 1.00 + 1.60 + 3.00 + 6.40  # team ml: train and features, both weeks
    spent = finished_ml + 2 * 1.00  # the running train: two hours at $1.00/h so far
    assert budget["spent_usd"] == pytest.approx(spent)
    assert (budget["period_start"], budget["period_end"]) == (PREV, datetime(2026, 4, 1, tzinfo=timezone.utc))
    assert budget["forecast_usd"] == pytest.approx(spent * 31 / 14)  # 14 of March's 31 days gone
    assert budget["status"] == "forecast over"  # $14 of $20 spent, about $31 by April 1
    text = "\n".join(summary_lines(rep))
    assert f"ml-monthly (team=ml, month): {usd(spent)} of $20.00" in text
    assert f"forecast {usd(spent * 31 / 14)} by 2026-04-01" in text


def test_summary_lines_say_what_changed_and_why(store):
    two_weeks(store)
    rep = report.build_report(store, since=CUR, until=NOW, group_by="job")
    text = "\n".join(summary_lines(rep))
    assert "(previous period 2026-03-01 00:00 → 2026-03-08 00:00)" in text
    assert f"spend {usd(12.60)} (previous {usd(3.05)}: +{usd(9.55)}, +313%)" in text
    assert "features: $1.60 → $6.40 (+$4.80): cache hit ratio fell, cache hits 75% → 0% of runs" in text
    assert "train: $1.00 → $3.00 (+$2.00): longer runs, average run 30.0 min → 90.0 min" in text
    assert "idle spend" in text and "right-sizing could save" in text and "cost per successful run" in text
    # without --since there is no previous period to compare with: said, not made up
    whole = "\n".join(summary_lines(report.build_report(store, group_by="job")))
    assert "no previous period" in whole and "biggest movers" not in whole


def test_cache_tile_and_cache_table_read_one_source(store):
    """A reused run without a recorded lookup still counts, in the totals and the cache table alike."""
    two_weeks(store).run(PREV, "adhoc", "small", 10, state="CACHED", cache_hit=True, saved_usd=0.5,
                       pipeline="daily", step="adhoc")
    rep = report.build_report(store, since=PREV, until=CUR, group_by="job")
    assert rep.totals["saved_usd"] == pytest.approx(rep.cache["saved_usd"].sum()) == pytest.approx(3 * 1.60 + 0.5)
    assert rep.totals["cache_hits"] == rep.cache["hits"].sum() == 4
    html = render_html(rep)
    assert f"<b>{usd(rep.cache['saved_usd'].sum())}</b><span>saved by the step cache</span>" in html


def test_html_has_what_changed_and_charts_by_the_group_by_label(store):
    two_weeks(store)
    rep = report.build_report(store, since=CUR, until=NOW, group_by="team,job")
    html = render_html(rep)
    assert "Daily spend by team (UTC days)" in html
    assert "<h2>What changed</h2>" in html and "<td>cache hit ratio fell</td>" in html
    assert f"<b>{usd(rep.headline['prev_cost_usd'])}</b><span>spend before</span>" in html
    assert "<td>ml-monthly</td>" in html and "<td>forecast over</td>" in html  # $12 in 14 days: ~$27 by April
    by_job = render_html(report.build_report(store, since=CUR, until=NOW, group_by="week,job"))
    assert "Daily spend by job (UTC days)" in by_job  # time buckets are not a chart series: the next key is
    assert re.search(r"<title>2026-03-\d\d features: \$", by_job) and ">features</text>" in by_job  # bars, legend
