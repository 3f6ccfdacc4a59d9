"""`costwise report` and the spend lines of `costwise show`, through the real command line and real runs."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from scheduler.core.money import usd
from tests.conftest import Cli, write

DOCS = """
kind: Shape
name: tiny
vcpus: 1
memory_gib: 1
price_per_hour: 0.36
capacity: 2
---
kind: Job
name: spin
artifact: spin.py
requirements: {cpus: 0.5, memory_gib: 0.5}
labels: {team: ml, project: churn}
---
kind: Job
name: oops
artifact: oops.py
requirements: {cpus: 0.5, memory_gib: 0.5}
labels: {team: data}
"""


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    home = tmp_path_factory.mktemp("report-cli-home")
    return Cli(home)


@pytest.fixture(scope="module")
def history(tmp_path_factory, cli):
    tmp_path = tmp_path_factory.mktemp("report-cli")
    write(tmp_path / "p" / "spin.py", """
        import time
        end = time.time() + 0.5
        while time.time() < end:
            pass
    """)
    write(tmp_path / "p" / "oops.py", "raise SystemExit(2)\n")
    write(tmp_path / "p" / "docs.yaml", DOCS)
    assert cli("apply", str(tmp_path / "p" / "docs.yaml")).returncode == 0
    runs = [cli.json("run", "spin", "--wait"), cli.json("run", "spin", "--wait"), cli.json("run", "oops", "--wait")]
    assert [r["state"] for r in runs] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    return runs


def test_report_totals_equal_the_run_records(cli, history, tmp_path):
    records = cli.json("runs")
    out = tmp_path / "r.json"
    summary = cli.json("report", "--format", "json", "--out", str(out), "--group-by", "team,project")
    data = json.loads(out.read_text())
    total = sum(r["cost_usd"] for r in records)
    assert total > 0
    assert round(data["totals"]["cost_usd"], 2) == round(total, 2)
    assert data["totals"]["cost_usd"] == pytest.approx(total, abs=1e-12)
    assert summary["runs"] == data["totals"]["runs"] == 3
    groups = {(g["team"], g["project"]): g for g in data["groups"]}
    assert set(groups) == {("ml", "churn"), ("data", "(none)")}
    assert groups[("ml", "churn")]["runs"] == 2
    assert data["totals"]["failed_cost_usd"] == pytest.approx(next(r["cost_usd"] for r in records if r["job"] == "oops"))

    focus = tmp_path / "focus.csv"
    assert cli("report", "--format", "focus", "--out", str(focus)).returncode == 0
    frame = pd.read_csv(focus)
    assert sorted(frame["ResourceId"]) == sorted(r["id"] for r in records)
    assert frame["BilledCost"].sum() == pytest.approx(total, abs=1e-12)

    html = tmp_path / "r.html"
    proc = cli("report", "--format", "html", "--out", str(html), "--since", "1h")
    assert proc.returncode == 0, proc.stderr
    assert "wrote html report of 3 runs" in proc.stdout.replace("\n", " ")
    assert html.read_text().count("<svg") == 3


@pytest.mark.parametrize("args, message", [
    (["--format", "pdf"], "--format 'pdf' is not one of"),
    (["--format", "csv", "--since", "yesterdayish"], "--since: time 'yesterdayish'"),
    (["--format", "csv", "--since", "1h", "--until", "2h"], "--since '1h' is not before --until '2h'"),
    (["--format", "csv", "--group-by", "tema"], "--group-by 'tema' is neither a run field"),
    (["--format", "focus", "--focus-version", "1.4"], "--focus-version '1.4' is not one of 1.2, 1.3"),
])
def test_bad_report_input_is_one_line_and_exit_2(cli, history, tmp_path, args, message):
    proc = cli("report", *args, "--out", str(tmp_path / "x.out"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.out").exists()


def test_show_has_the_runs_spend_and_utilization(cli, history):
    run = history[0]
    detail = cli.json("show", run["id"])
    spend = detail["spend"]
    assert spend["cost_usd"] == pytest.approx(run["cost_usd"])
    assert spend["price_per_hour"] == 0.36
    assert spend["utilization"] == pytest.approx(min(run["cpu_util_avg"], 1.0))
    assert spend["idle_usd"] == pytest.approx(run["cost_usd"] * (1 - spend["utilization"]))
    assert spend["mem_share_of_shape"] == pytest.approx(run["mem_peak_bytes"] / 2**30)
    text = cli("show", run["id"]).stdout
    assert "spend $" in text and "utilization" in text and "idle $" in text
    # a run of seconds costs a fraction of a cent: shown in significant digits, as people read it
    assert run["cost_usd"] < 0.01 and f"spend {usd(run['cost_usd'])} " in text, text
    assert not re.search(r"\de-\d", text) and "0.000000" not in text, text


def test_report_prints_its_summary_and_table_alone_prints_only_that(cli, history, tmp_path):
    records = cli.json("runs")
    total = sum(r["cost_usd"] for r in records)
    table = cli("report", "--format", "table", "--since", "1h", "--group-by", "team")
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "(previous period " in text and f"spend {usd(total)} (previous $0.00: +{usd(total)})" in text, text
    assert "cost per successful run" in text and "by team:" in text and "ml:" in text, text
    assert "biggest movers:" in text and "new this period" in text, text
    assert not (tmp_path / "x.out").exists()
    data = cli.json("report", "--format", "table", "--since", "1h")
    assert data["headline"]["cost_usd"] == pytest.approx(total) and data["previous_period"]["until"]
    written = cli("report", "--format", "csv", "--out", str(tmp_path / "w.csv"), "--since", "1h")
    assert "wrote csv report of 3 runs" in written.stdout and "cost per successful run" in written.stdout
    proc = cli("report", "--format", "csv")
    assert proc.returncode == 2 and "--out is needed for --format 'csv'" in proc.stderr
