"""Reports over a history with spot runs (SQLite and PostgreSQL): per group the attempts, preemptions,
lost hours, spend on spot and the spot saving against the shape's on-demand price in the catalog, in
every format, with the columns reports had before left first and unchanged."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest

from scheduler.core.runs import RunRecord
from scheduler.reporting import report
from scheduler.reporting.report_summary import summary_lines
from scheduler.store import report_queries
from tests.integration.test_report import T0, add_run, store  # noqa: F401

OD = 1.00  # gpu-a10's on-demand price in test_report's catalog
SPOT = 0.30
OLD_GROUP_COLUMNS = ["team", "job", "runs", "cost_usd", "saved_usd", "idle_usd", "hours", "cache_hits", "failed",
                     "utilization", "share"]


def spot_run(store, run_id, attempts, job="train", shape="gpu-a10", day=1, labels=None):
    """A finished run whose attempts (market, price/h, seconds, lost s) are logged as core/attempts.py does."""
    start = T0 + timedelta(days=day)
    log, at = [], start
    for i, (market, price, seconds, lost) in enumerate(attempts, 1):
        log.append({"attempt": i, "state": "PREEMPTED" if i < len(attempts) else "SUCCEEDED", "market": market,
                    "price_per_hour": price, "started_at": at.isoformat(),
                    "ended_at": (at + timedelta(seconds=seconds)).isoformat(), "seconds": seconds,
                    "cost_usd": price * seconds / 3600, "lost_s": lost})
        at += timedelta(seconds=seconds + 30)  # queued again for 30 s after a preemption: not billed
    last = attempts[-1]
    return store.create_run(RunRecord(
        id=run_id, job=job, state="SUCCEEDED", shape=shape, backend="local", queued_at=start, started_at=start,
        ended_at=at - timedelta(seconds=30), duration_s=(at - start).total_seconds() - 30, market=last[0],
        price_per_hour=last[1], attempts=len(attempts), preemptions=len(attempts) - 1,
        lost_s=sum(a[3] for a in attempts), cost_usd=sum(a["cost_usd"] for a in log), cpu_util_avg=0.2,
        gpu_util_avg=0.8, labels=labels if labels is not None else {"team": "ml"}, extra={"attempt_log": log}))


def history(store):
    spot_run(store, "r-spot000001", [("spot", SPOT, 1800.0, 600.0), ("spot", SPOT, 1800.0, 0.0)])  # preempted once
    spot_run(store, "r-mix0000001", [("spot", SPOT, 1200.0, 300.0), ("on_demand", OD, 1800.0, 0.0)])  # fell back
    add_run(store, 1, "etl", "big", 30, labels={"team": "data"}, day=1, attempts=1)  # on-demand only
    # a spot run on a shape since deleted from the catalog: its spend and preemptions count, its saving is unknown
    spot_run(store, "r-gone000001", [("spot", SPOT, 3600.0, 120.0), ("spot", SPOT, 600.0, 0.0)], job="old",
             shape="retired", labels={"team": "ml"})


# spot seconds of train: 3600 (preempted) + 1200 (before the fall-back); saving = on-demand - spot for them
TRAIN = {"runs": 2, "attempts": 4, "preemptions": 2, "lost_hours": 900 / 3600, "spot_cost_usd": SPOT * 4800 / 3600,
         "spot_saved_usd": (OD - SPOT) * 4800 / 3600, "cost_usd": SPOT * 4800 / 3600 + OD * 0.5}
OLD = {"runs": 1, "attempts": 2, "preemptions": 1, "lost_hours": 120 / 3600, "spot_cost_usd": SPOT * 4200 / 3600,
       "spot_saved_usd": 0.0, "cost_usd": SPOT * 4200 / 3600}
ETL = {"runs": 1, "attempts": 1, "preemptions": 0, "lost_hours": 0.0, "spot_cost_usd": 0.0, "spot_saved_usd": 0.0,
       "cost_usd": 1.60 * 0.5}


def by_group(frame: pd.DataFrame) -> dict:
    cols = list(TRAIN)
    return {(row["team"], row["job"]): {c: row[c] for c in cols} for row in frame.to_dict("records")}


def test_groups_carry_attempts_preemptions_lost_hours_and_the_spot_saving(store):
    history(store)
    built = report.build_report(store, group_by="team,job")
    assert by_group(built.groups) == {("ml", "train"): pytest.approx(TRAIN), ("ml", "old"): pytest.approx(OLD),
                                      ("data", "etl"): pytest.approx(ETL)}
    assert list(built.groups.columns) == OLD_GROUP_COLUMNS + ["attempts", "preemptions", "lost_hours",
                                                              "spot_cost_usd", "spot_saved_usd"]
    t = built.totals
    spot = TRAIN["spot_cost_usd"] + OLD["spot_cost_usd"]
    assert (t["attempts"], t["preemptions"]) == (7, 3)
    assert t["lost_hours"] == pytest.approx(1020 / 3600)
    assert t["spot_cost_usd"] == pytest.approx(spot)
    assert t["spot_share"] == pytest.approx(spot / t["cost_usd"])
    assert t["spot_saved_usd"] == pytest.approx(TRAIN["spot_saved_usd"])
    line = next(x for x in summary_lines(built) if x.startswith("spot "))
    assert "3 preemptions" in line and "0.28 h of work lost" in line and "saved $0.93" in line


def test_a_period_without_spot_has_zero_figures_and_no_spot_line_or_section(store):
    add_run(store, 1, "etl", "big", 30, labels={"team": "data"}, day=1, attempts=1)
    built = report.build_report(store, group_by="team,job")
    assert (built.totals["spot_cost_usd"], built.totals["preemptions"], built.totals["spot_saved_usd"]) == (0, 0, 0)
    assert not [x for x in summary_lines(built) if x.startswith("spot ")]
    from scheduler.reporting.report_html import render_html

    assert "<h2>Spot</h2>" not in render_html(built)


def test_every_format_carries_the_spot_figures(store, tmp_path):
    history(store)
    report.write_report(store, "csv", tmp_path / "r.csv", group_by="team,job")
    csv = pd.read_csv(tmp_path / "r.csv")
    assert list(csv.columns)[: len(OLD_GROUP_COLUMNS)] == OLD_GROUP_COLUMNS
    assert by_group(csv)[("ml", "train")] == pytest.approx(TRAIN)

    report.write_report(store, "json", tmp_path / "r.json", group_by="team,job")
    data = json.loads((tmp_path / "r.json").read_text())
    assert by_group(pd.DataFrame(data["groups"]))[("ml", "old")] == pytest.approx(OLD)
    assert data["totals"]["preemptions"] == 3

    report.write_report(store, "parquet", tmp_path / "r.parquet", group_by="team")
    runs = pd.read_parquet(tmp_path / "r.parquet").set_index("id")
    assert runs.loc["r-mix0000001", ["attempts", "preemptions", "lost_s"]].tolist() == [2, 1, 300.0]
    assert runs.loc["r-mix0000001", "market"] == "on_demand"
    assert runs.loc["r-mix0000001", "spot_cost_usd"] == pytest.approx(SPOT * 1200 / 3600)
    assert runs.loc["r-mix0000001", "spot_saved_usd"] == pytest.approx((OD - SPOT) * 1200 / 3600)
    assert pd.isna(runs.loc["r-gone000001", "spot_saved_usd"])  # its shape's on-demand price is not known
    assert pd.isna(runs.loc["r-000001", "spot_cost_usd"])  # never on spot

    report.write_report(store, "html", tmp_path / "r.html", group_by="team,job")
    html = (tmp_path / "r.html").read_text()
    section = html[html.index("<h2>Spot</h2>"):]
    section = section[: section.index("<h2>", 5)]
    assert '<div class="cards" id="spot">' in section and "$0.93" in section and "3</b><span>preemptions" in section
    assert "etl" not in section and "train" in section and "old" in section  # only groups that used spot


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_the_columnar_reader_reads_the_spot_columns(store):
    """SQLite's ADBC path renders the correlated attempt-log subquery itself: it must not fall back."""
    history(store)
    query = report_queries.runs_query(store.dialect, detail=True)
    frame = report_queries.read_columnar(store, query, [c.name for c in query.selected_columns])
    assert frame is not None
    spot_s = dict(zip(frame["id"], frame["spot_s"]))
    assert spot_s == pytest.approx({"r-spot000001": 3600.0, "r-mix0000001": 1200.0, "r-gone000001": 4200.0,
                                    "r-000001": float("nan")}, nan_ok=True)
