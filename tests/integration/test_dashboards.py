"""Every Grafana panel's query, variables substituted, returns data from a real Prometheus that scrapes a
real `costwise daemon` while it runs real jobs and pipelines (Grafana itself is not installable here)."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from scheduler.runtime.context import AppContext
from scheduler.runtime.pipeline_runner import PipelineRunner
from scheduler.core.runs import RunRecord, new_run_id
from scheduler.store.settings import Settings
from tests.conftest import ROOT, need_service, write

pytestmark = pytest.mark.prometheus

DASHBOARDS = sorted((ROOT / "stacks" / "dashboards").glob("*.json"))
# What Grafana would put in for its built-in variables; every custom variable is set to "All".
BUILTINS = {"$__rate_interval": "15s", "$__range": "5m", "$__interval": "5s"}

DOCS = """
kind: Shape
name: local-small
vcpus: 1
memory_gib: 2
price_per_hour: 0.05
capacity: 4
---
kind: Shape
name: local-big
vcpus: 2
memory_gib: 8
price_per_hour: 0.40
capacity: 2
---
kind: Job
name: hello
artifact: jobs/hello.py
requirements: {cpus: 0.5, memory_gib: 0.5}
labels: {team: platform}
---
kind: Job
name: broken
artifact: jobs/broken.py
requirements: {cpus: 0.5, memory_gib: 0.5}
labels: {team: ml}
---
kind: Job
name: sleeper
artifact: jobs/sleep.py
requirements: {cpus: 0.5, memory_gib: 0.5}
shape: local-big
labels: {team: gpu-research}
---
kind: Job
name: ticker
artifact: jobs/hello.py
requirements: {cpus: 0.5, memory_gib: 0.5}
labels: {team: data}
schedule: {interval: 2s}
---
kind: Job
name: prepare
artifact: jobs/step.py
args: [data.csv]
requirements: {cpus: 0.5, memory_gib: 0.5}
labels: {team: ml}
---
kind: Job
name: train
artifact: jobs/step.py
args: [model.pkl]
requirements: {cpus: 2, memory_gib: 1}
labels: {team: ml}
---
kind: Pipeline
name: retrain
labels: {team: ml}
steps:
  - {name: prepare, job: prepare, outputs: [data.csv]}
  - {name: train, job: train, inputs: {data.csv: prepare/data.csv}, outputs: [model.pkl]}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_for(check, timeout: float, what: str):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} ({last})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        need_service("Prometheus", "no `prometheus` on PATH; apt-get install prometheus")
    base = tmp_path_factory.mktemp("dash")
    home = base / "home"
    write(base / "project" / "jobs" / "hello.py", """
        import time
        end = time.time() + 0.3
        while time.time() < end:
            pass
    """)
    write(base / "project" / "jobs" / "broken.py", "import sys; sys.exit(3)\n")
    write(base / "project" / "jobs" / "sleep.py", "import time; time.sleep(120)\n")  # "a 10-hour GPU run"
    write(base / "project" / "jobs" / "step.py", """
        import os, pathlib, sys
        pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], sys.argv[1]).write_text("x" * 1000)
    """)
    write(base / "project" / "costwise.yaml", DOCS)
    env = {**os.environ, "COSTWISE_HOME": str(home)}
    env.pop("COSTWISE_DB", None)
    subprocess.run([sys.executable, "-m", "scheduler.cli", "apply", str(base / "project" / "costwise.yaml")],
                   check=True, env=env, capture_output=True, timeout=60)
    logs = base / "logs"
    logs.mkdir()
    procs = []
    try:
        metrics_port = free_port()
        # The real daemon serves /metrics (the standalone `python -m scheduler.reporting.metrics --port N` serves the same
        # families without the scheduler, for a catalog with no daemon).
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "daemon", "--metrics-port", str(metrics_port)],
            env=env, stdout=open(logs / "daemon.log", "wb"), stderr=subprocess.STDOUT,
        ))
        target = f"127.0.0.1:{metrics_port}"
        wait_for(lambda: b"costwise_runs_total" in urllib.request.urlopen(f"http://{target}/metrics", timeout=5).read(),
                 60, "the daemon's /metrics")
        prom_port = free_port()
        (base / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: costwise\n    static_configs:\n      - targets: ['{target}']\n"
        )
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(logs / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
        ))
        api = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: query(api, 'up{job="costwise"} == 1'), 60, "Prometheus to scrape the daemon")
        app = AppContext(Settings(home=home, db_url=f"sqlite:///{home / 'catalog.db'}"))
        yield {"api": api, "app": app, "home": home, "logs": logs}
        app.close()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def query(api: str, expr: str) -> list:
    data = get(f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert data["status"] == "success", data
    return data["data"]["result"]


def gpu_record(app, shape="gpu-sim"):
    """No GPU on the test machine: write the finished run the engine writes for a GPU run (NVML sample)."""
    now = app.clock.now()
    return app.store.create_run(RunRecord(
        id=new_run_id(), job="gpu-train", state="SUCCEEDED", shape=shape, backend="local",
        queued_at=now - timedelta(seconds=65), started_at=now - timedelta(seconds=60), ended_at=now,
        duration_s=60.0, cost_usd=1.5 * 60 / 3600, price_per_hour=1.5, cpu_util_avg=0.2,
        mem_peak_bytes=2**30, gpu_util_avg=0.7, labels={"team": "ml"},
    ))


def spot_record(app, shape="local-big", spot_price=0.12):
    """A spot run preempted once, then finished on spot: the record core/attempts.py leaves (the market is
    played by `costwise preempt`, tested with the runtime; here the panels need one in every wave)."""
    now = app.clock.now()
    log = [{"attempt": i + 1, "state": state, "market": "spot", "price_per_hour": spot_price, "seconds": 30.0,
            "cost_usd": spot_price * 30 / 3600, "lost_s": lost} for i, (state, lost) in
           enumerate((("PREEMPTED", 10.0), ("SUCCEEDED", 0.0)))]
    return app.store.create_run(RunRecord(
        id=new_run_id(), job="spot-train", state="SUCCEEDED", shape=shape, backend="local",
        queued_at=now - timedelta(seconds=65), started_at=now - timedelta(seconds=60), ended_at=now,
        duration_s=60.0, cost_usd=spot_price * 60 / 3600, price_per_hour=spot_price, cpu_util_avg=0.4,
        mem_peak_bytes=2**28, labels={"team": "ml"}, market="spot", attempts=2, preemptions=1, lost_s=10.0,
        extra={"attempt_log": log},
    ))


def wave(app, force_step: str | None = None):
    """Real activity through the daemon: job runs (one failing) and a pipeline run; waits for them all."""
    engine = app.engine
    runs = [engine.submit("hello"), engine.submit("broken")]
    runner = PipelineRunner(engine)
    prun = runner.submit("retrain", force_steps=[force_step] if force_step else None)
    for run in runs:
        assert engine.wait_for(run.id, timeout=60).finished
    end = time.monotonic() + 60
    while runner.record(prun["id"])["state"] not in ("SUCCEEDED", "FAILED", "CANCELED"):
        assert time.monotonic() < end, "pipeline run did not finish"
        time.sleep(0.2)
    gpu_record(app)
    spot_record(app)
    return runner.record(prun["id"])


def substitute(expr: str) -> str:
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    for name in ("team", "job_name", "shape"):
        expr = expr.replace(f"${name}", ".*")
    assert "$" not in expr, expr
    return expr


def finite(result: list) -> list[float]:
    return [float(r["value"][1]) for r in result if math.isfinite(float(r["value"][1]))]


def start_long_run(app):
    run = app.engine.submit("sleeper")
    wait_for(lambda: app.store.get_run(run.id).state == "RUNNING", 60, "the long run to start")
    return run


def stop_long_run(app, run):
    app.engine.cancel(run.id, wait=False)
    assert app.engine.wait_for(run.id, timeout=60).finished


def test_every_panel_query_returns_data_from_prometheus(stack):
    api, app = stack["api"], stack["app"]
    long_run = start_long_run(app)  # the spend-rate panels show what runs running now cost
    try:
        check_every_panel(api, app)
    finally:
        stop_long_run(app, long_run)


def check_every_panel(api, app):
    first = wave(app)
    assert [s["state"] for s in first["steps"]] == ["SUCCEEDED", "SUCCEEDED"]
    time.sleep(3)  # a few scrapes between the waves, so counters visibly increase
    second = wave(app)
    assert [s["state"] for s in second["steps"]] == ["CACHED", "CACHED"]
    third = wave(app, force_step="train")
    assert [s["state"] for s in third["steps"]] == ["CACHED", "SUCCEEDED"]
    time.sleep(3)

    checked = 0
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            metric, label = var["query"]["query"][len("label_values("):-1].split(", ")
            values = get(f"{api}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": metric}))["data"]
            assert [v for v in values if v], (path.name, var["name"])
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = substitute(target["expr"])
                result = query(api, expr)
                assert result, f"{path.name}: panel {panel['title']!r} query returned no series: {expr}"
                assert finite(result), f"{path.name}: panel {panel['title']!r} returned only NaN/Inf: {expr}"
                checked += 1
    assert checked >= 30

    # The dashboards' money agrees with the run records: the last scrape lies between two reads of the store.
    # (The ticker keeps finishing runs; a loaded machine may delay a scrape past the 1.5 s, so try a few times.)
    for _ in range(5):
        before = sum(r.cost_usd for r in app.store.list_runs() if r.finished)
        time.sleep(1.5)  # at least one scrape after `before`, on a machine that is not overloaded
        scraped = sum(finite(query(api, "sum(costwise_spend_dollars_total)")))
        after = sum(r.cost_usd for r in app.store.list_runs() if r.finished)
        if before - 1e-9 <= scraped <= after + 1e-9:
            break
    assert before - 1e-9 <= scraped <= after + 1e-9, (before, scraped, after)
    hits = finite(query(api, 'sum(costwise_cache_lookups_total{result="hit"})'))
    assert hits == [3.0]  # two reused steps in the second wave, one in the third
    lag = finite(query(api, "sum(costwise_scheduler_lag_seconds_count)"))
    assert lag and lag[0] >= 1  # the ticker's schedule fired


SPENT = 'sum({__name__=~"costwise_spend_dollars_total|costwise_running_spend_dollars",job_name="sleeper"})'


def test_spend_rises_while_a_long_run_is_still_running(stack):
    """Not 0 and then a spike: two scrapes a few seconds apart during one run show its spend growing at its price."""
    api, app = stack["api"], stack["app"]
    run = start_long_run(app)
    try:
        running = 'sum(costwise_running_spend_dollars{job_name="sleeper"})'
        price = 0.40  # local-big's, per hour
        started = app.store.get_run(run.id).started_at

        def this_run():  # a scrape that saw this run (the same series may still hold an earlier sleeper's last value)
            value = finite(query(api, running))
            so_far = price * (datetime.now(timezone.utc) - started).total_seconds() / 3600
            return value if value and 0 < value[0] <= so_far + 1e-9 else None

        first = wait_for(this_run, 30, "the long run's spend on /metrics")[0]
        time.sleep(4)  # four scrapes later
        second = finite(query(api, running))[0]
        assert 0 < first < second, (first, second)
        assert second - first == pytest.approx(price * 4 / 3600, rel=0.5)
        assert finite(query(api, 'sum(costwise_running_burn_dollars_per_hour{job_name="sleeper"})')) == [price]
        earlier = sum(r.cost_usd for r in app.store.list_runs(job="sleeper") if r.finished)  # the panel test's
        counter = finite(query(api, 'sum(costwise_spend_dollars_total{job_name="sleeper"})'))
        assert sum(counter) == pytest.approx(earlier, abs=1e-12)  # this run is not in the counter: not finished
        # the dashboards' own queries (spend so far, by team; spend in range) see it too
        board = json.loads((ROOT / "stacks/dashboards/costwise-spend.json").read_text())
        so_far = next(p for p in board["panels"] if p["title"] == "Spend so far by team")["targets"][0]["expr"]
        team = [r for r in query(api, substitute(so_far)) if r["metric"].get("team") == "gpu-research"]
        assert team and float(team[0]["value"][1]) >= second - 1e-12
        before_end = finite(query(api, SPENT))[0]
    finally:
        stop_long_run(app, run)
    ended = app.store.get_run(run.id)
    # once it ended its money is in the counter, and spend so far did not drop
    billed = sum(r.cost_usd for r in app.store.list_runs(job="sleeper"))
    wait_for(lambda: abs(sum(finite(query(api, 'sum(costwise_spend_dollars_total{job_name="sleeper"})'))) - billed) < 1e-9,
             30, "the ended run in the spend counter")
    assert finite(query(api, SPENT))[0] >= before_end - 1e-12
    assert ended.cost_usd > 0
