"""/metrics: names, types and labels per the contract, values from the store, counted exactly once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.core.clock import FrozenClock
from scheduler.reporting.metrics import SETTLE_S, make_registry, serve_metrics
from scheduler.reporting.metrics_labels import allocation_labels
from scheduler.core.runs import RunRecord
from scheduler.core.specs import ShapeSpec
from scheduler.store.store import Store

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 5, 4, 12, tzinfo=timezone.utc)

CONTRACT = {  # name: (type, label names) — DESIGN.md 'Metrics'
    "costwise_runs": ("counter", {"job_name", "pipeline", "state"}),
    "costwise_run_duration_seconds": ("histogram", {"job_name", "shape"}),
    "costwise_spend_dollars": ("counter", {"job_name", "pipeline", "step", "shape", "market", "team"}),
    "costwise_spot_savings_dollars": ("counter", {"job_name", "shape", "team"}),
    "costwise_preemptions": ("counter", {"job_name", "shape", "team"}),
    "costwise_saved_dollars": ("counter", {"job_name", "pipeline", "step"}),
    "costwise_cache_lookups": ("counter", {"pipeline", "step", "result"}),
    "costwise_queue_depth": ("gauge", {"shape"}),
    "costwise_queue_wait_seconds": ("histogram", {"job_name"}),
    "costwise_shape_slots_in_use": ("gauge", {"shape", "backend"}),
    "costwise_shape_slots_total": ("gauge", {"shape", "backend"}),
    "costwise_shape_price_dollars_per_hour": ("gauge", {"shape", "backend"}),
    "costwise_run_cpu_utilization_ratio": ("histogram", {"job_name", "shape"}),
    "costwise_run_memory_peak_bytes": ("histogram", {"job_name", "shape"}),
    "costwise_run_gpu_utilization_ratio": ("histogram", {"job_name", "shape"}),
    "costwise_scheduler_lag_seconds": ("histogram", set()),
    "costwise_leader": ("gauge", set()),
    "costwise_running_spend_dollars": ("gauge", {"job_name", "pipeline", "step", "shape", "market", "team"}),
    "costwise_running_burn_dollars_per_hour": ("gauge", {"job_name", "pipeline", "step", "shape", "market", "team"}),
    "costwise_running_preemptions": ("gauge", {"job_name", "shape", "team"}),
}


@pytest.fixture
def clock():
    return FrozenClock(T0)


@pytest.fixture
def store(catalog_url, clock):
    s = Store.open(catalog_url, clock)
    s.apply([
        ShapeSpec(name="cpu-small", vcpus=2, memory_gib=4, price_per_hour=0.1, capacity=3),
        ShapeSpec(name="gpu-a10", vcpus=8, memory_gib=32, gpus=1, gpu_type="A10", price_per_hour=1.2, capacity=1),
    ])
    yield s
    s.close()


def finish(store, run_id, job="train", shape="cpu-small", ended=None, seconds=60.0, state="SUCCEEDED", **fields):
    ended = ended or store.clock.now()
    started = ended - timedelta(seconds=seconds)
    price = {"cpu-small": 0.1, "gpu-a10": 1.2}.get(shape, 0.0)
    values = dict(job=job, state=state, shape=shape, backend="local", queued_at=started - timedelta(seconds=2),
                  started_at=started, ended_at=ended, duration_s=seconds, cost_usd=price * seconds / 3600,
                  price_per_hour=price, cpu_util_avg=0.25, mem_peak_bytes=300 * 2**20, labels={"team": "ml"})
    values.update(fields)
    return store.create_run(RunRecord(id=run_id, **values))


def finish_spot(store, run_id, attempts, job="train", shape="cpu-small", **fields):
    """A finished run with its attempts (market, price/h, seconds, lost s) logged as core/attempts.py does."""
    ended = store.clock.now()
    start = ended - timedelta(seconds=sum(a[2] for a in attempts))
    log, at = [], start
    for i, (market, price, seconds, lost) in enumerate(attempts, 1):
        log.append({"attempt": i, "state": "PREEMPTED" if i < len(attempts) else "SUCCEEDED", "market": market,
                    "price_per_hour": price, "started_at": at.isoformat(),
                    "ended_at": (at + timedelta(seconds=seconds)).isoformat(), "seconds": seconds,
                    "cost_usd": price * seconds / 3600, "lost_s": lost})
        at += timedelta(seconds=seconds)
    last = attempts[-1]
    return finish(store, run_id, job=job, shape=shape, ended=ended, seconds=sum(a[2] for a in attempts),
                  market=last[0], price_per_hour=last[1], attempts=len(attempts), preemptions=len(attempts) - 1,
                  lost_s=sum(a[3] for a in attempts), cost_usd=sum(a["cost_usd"] for a in log),
                  extra={"attempt_log": log}, **fields)


def scrape(registry) -> dict:
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def sample(families, name, suffix="", **labels):
    family = families[name]
    hits = [s.value for s in family.samples if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (name, suffix, labels, [s for s in family.samples if s.name == name + suffix])
    return hits[0]


def test_names_types_and_labels_follow_the_contract(store):
    finish(store, "r-aaaa000001")
    finish(store, "r-aaaa000002", job="tune", shape="gpu-a10", gpu_util_avg=0.8, pipeline="retrain", step="tune",
           extra={"cache": {"result": "miss"}})
    finish(store, "r-aaaa000003", job="tune", shape="gpu-a10", state="CACHED", cache_hit=True, saved_usd=0.5,
           pipeline="retrain", step="tune", extra={"cache": {"result": "hit"}}, seconds=0.0, cost_usd=0.0)
    store.create_run(RunRecord(id="r-aaaa000004", job="train", state="QUEUED", queued_at=T0))
    store.create_run(RunRecord(id="r-aaaa000005", job="train", state="RUNNING", shape="cpu-small", queued_at=T0,
                               started_at=T0, price_per_hour=0.1, labels={"team": "ml"}))
    finish_spot(store, "r-aaaa000006", [("spot", 0.03, 600.0, 60.0), ("spot", 0.03, 600.0, 0.0)])
    store.create_run(RunRecord(id="r-aaaa000007", job="train", state="QUEUED", queued_at=T0, preemptions=1,
                               market="spot", cost_usd=0.001, labels={"team": "ml"}))
    registry, daemon, _ = make_registry(store, CollectorRegistry())
    daemon.observe_lag(0.2)
    families, text = scrape(registry)
    for name, (kind, labels) in CONTRACT.items():
        assert name in families, name
        family = families[name]
        assert family.type == kind, name
        for s in family.samples:
            assert set(s.labels) - {"le"} == labels, (s.name, s.labels)
    assert all(name.startswith("costwise_") for name in families)
    assert "r-aaaa" not in text  # no run ids anywhere
    assert not re.search(r'[{,]job="', text)  # `job` is Prometheus's; ours is job_name


def test_values_come_from_the_run_records(store):
    for i in range(3):
        finish(store, f"r-{i:010d}", seconds=60.0 * (i + 1))
    finish(store, "r-f000000001", state="FAILED", seconds=30.0, cpu_util_avg=None, mem_peak_bytes=None)
    finish(store, "r-g000000001", job="tune", shape="gpu-a10", gpu_util_avg=0.5, seconds=3600.0, labels={})
    store.create_run(RunRecord(id="r-q000000001", job="train", state="QUEUED", queued_at=T0))
    store.create_run(RunRecord(id="r-r000000001", job="train", state="RUNNING", shape="cpu-small", queued_at=T0,
                               started_at=T0))
    families, _ = scrape(make_registry(store, CollectorRegistry())[0])
    assert sample(families, "costwise_runs", "_total", job_name="train", state="SUCCEEDED") == 3
    assert sample(families, "costwise_runs", "_total", job_name="train", state="FAILED") == 1
    assert sample(families, "costwise_spend_dollars", "_total", job_name="train", team="ml") == pytest.approx(
        0.1 * (60 + 120 + 180 + 30) / 3600)
    assert sample(families, "costwise_spend_dollars", "_total", job_name="tune", team="") == pytest.approx(1.2)
    # idle: cost x (1 - utilization), GPU utilization first; the unmeasured failed run adds nothing
    assert sample(families, "costwise_idle_spend_dollars", "_total", job_name="tune") == pytest.approx(0.6)
    assert sample(families, "costwise_idle_spend_dollars", "_total", job_name="train") == pytest.approx(
        0.1 * 360 / 3600 * 0.75)
    dur = dict(job_name="train", shape="cpu-small")
    assert sample(families, "costwise_run_duration_seconds", "_count", **dur) == 4
    assert sample(families, "costwise_run_duration_seconds", "_sum", **dur) == pytest.approx(390)
    assert sample(families, "costwise_run_duration_seconds", "_bucket", le="60.0", **dur) == 2
    assert sample(families, "costwise_run_cpu_utilization_ratio", "_count", **dur) == 3
    assert sample(families, "costwise_run_cpu_utilization_ratio", "_bucket", le="0.3", **dur) == 3
    assert sample(families, "costwise_run_gpu_utilization_ratio", "_count", job_name="tune", shape="gpu-a10") == 1
    assert not [s for s in families["costwise_run_gpu_utilization_ratio"].samples if s.labels["job_name"] == "train"]
    assert sample(families, "costwise_queue_wait_seconds", "_count", job_name="train") == 4
    assert sample(families, "costwise_queue_wait_seconds", "_sum", job_name="train") == pytest.approx(8.0, abs=0.01)
    assert sample(families, "costwise_queue_depth", shape="none") == 1
    assert sample(families, "costwise_queue_depth", shape="cpu-small") == 0
    assert sample(families, "costwise_shape_slots_in_use", shape="cpu-small", backend="local") == 1
    assert sample(families, "costwise_shape_slots_total", shape="cpu-small") == 3
    assert sample(families, "costwise_shape_price_dollars_per_hour", shape="gpu-a10") == 1.2
    assert sample(families, "costwise_runs_active", state="QUEUED") == 1
    assert sample(families, "costwise_runs_active", state="RUNNING") == 1


def test_cache_lookups_and_savings_follow_what_the_pipeline_runner_records(store):
    finish(store, "r-m1", job="prep", pipeline="retrain", step="prepare", extra={"cache": {"result": "miss"}})
    for i in range(3):
        finish(store, f"r-h{i}", job="prep", pipeline="retrain", step="prepare", state="CACHED", cache_hit=True,
               saved_usd=0.25, cost_usd=0.0, seconds=0.0, extra={"cache": {"result": "hit"}})
    finish(store, "r-s1", job="reg", pipeline="retrain", step="register", state="SKIPPED", cost_usd=0.0)
    families, _ = scrape(make_registry(store, CollectorRegistry())[0])
    step = dict(pipeline="retrain", step="prepare")
    assert sample(families, "costwise_cache_lookups", "_total", result="hit", **step) == 3
    assert sample(families, "costwise_cache_lookups", "_total", result="miss", **step) == 1
    assert not [s for s in families["costwise_cache_lookups"].samples if s.labels["step"] == "register"]
    assert sample(families, "costwise_saved_dollars", "_total", job_name="prep", **step) == pytest.approx(0.75)
    # reused steps ran nothing: they are not in the duration or queue-wait histograms
    assert sample(families, "costwise_run_duration_seconds", "_count", job_name="prep", shape="cpu-small") == 1


def test_every_finished_run_is_counted_exactly_once_as_time_moves(store, clock):
    registry = make_registry(store, CollectorRegistry())[0]
    finish(store, "r-old", ended=T0 - timedelta(days=3))
    families, _ = scrape(registry)
    assert sample(families, "costwise_runs", "_total", job_name="train", state="SUCCEEDED") == 1
    seen = [1]
    for step in range(6):
        clock.advance(SETTLE_S / 2)
        # a run whose record lands a while after its end time (slow finish), and one ending now
        finish(store, f"r-late{step}", ended=clock.now() - timedelta(seconds=SETTLE_S * 0.8))
        finish(store, f"r-now{step}")
        families, _ = scrape(registry)
        value = sample(families, "costwise_runs", "_total", job_name="train", state="SUCCEEDED")
        assert value == 1 + 2 * (step + 1)
        seen.append(value)
    assert seen == sorted(seen)
    fresh, _ = scrape(make_registry(store, CollectorRegistry())[0])  # a restarted daemon agrees
    assert sample(fresh, "costwise_runs", "_total", job_name="train", state="SUCCEEDED") == seen[-1]
    assert sample(fresh, "costwise_spend_dollars", "_total", job_name="train") == pytest.approx(
        sample(families, "costwise_spend_dollars", "_total", job_name="train"))


def test_scheduler_lag_is_observed_by_the_daemon(store):
    registry, daemon, _ = make_registry(store, CollectorRegistry())
    for lag in (0.02, 0.3, 7.0, -1.0):
        daemon.observe_lag(lag)
    families, _ = scrape(registry)
    assert sample(families, "costwise_scheduler_lag_seconds", "_count") == 4
    assert sample(families, "costwise_scheduler_lag_seconds", "_bucket", le="0.05") == 2  # negative lag counts as 0
    assert sample(families, "costwise_scheduler_lag_seconds", "_sum") == pytest.approx(7.32)


def test_serve_metrics_over_http(store):
    finish(store, "r-http1")
    served = serve_metrics(store, "127.0.0.1", 0, prime=False)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
        assert resp.status == 200
        assert 'costwise_runs_total{job_name="train",pipeline="",state="SUCCEEDED"} 1.0' in body
        served.daemon.observe_lag(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/metrics", timeout=10) as resp:
            assert "costwise_scheduler_lag_seconds_count 1.0" in resp.read().decode()
    finally:
        served.shutdown()


def test_dashboards_are_up_to_date_and_query_only_exposed_metrics(store):
    proc = subprocess.run([sys.executable, str(ROOT / "stacks/dashboards/generate.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    finish(store, "r-x1", shape="gpu-a10", gpu_util_avg=0.5, pipeline="p", step="s",
           extra={"cache": {"result": "hit"}}, saved_usd=0.1)
    store.create_run(RunRecord(id="r-x2", job="train", state="RUNNING", shape="cpu-small", queued_at=T0, started_at=T0,
                               price_per_hour=0.1))
    finish_spot(store, "r-x3", [("spot", 0.03, 600.0, 60.0), ("on_demand", 0.1, 300.0, 0.0)])
    store.create_run(RunRecord(id="r-x4", job="train", state="QUEUED", queued_at=T0, preemptions=1, market="spot",
                               cost_usd=0.001))
    registry, daemon, _ = make_registry(store, CollectorRegistry())
    _, text = scrape(registry)
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    boards = sorted((ROOT / "stacks/dashboards").glob("*.json"))
    assert len(boards) == 3
    used = set()
    for path in boards:
        board = json.loads(path.read_text())
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[0] == "datasource" and board["templating"]["list"][0]["type"] == "datasource"
        assert board["uid"] and board["panels"]
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                for metric in re.findall(r"\b(costwise_[a-z_]+)", target["expr"]):
                    assert metric in exposed, (path.name, panel["title"], metric)
                    used.add(metric)
                assert "job=" not in target["expr"].replace("job_name", "")
    contract_series = {n + ("_total" if k == "counter" else "_bucket" if k == "histogram" else "")
                       for n, (k, _) in CONTRACT.items()}
    assert contract_series <= used  # every contract metric is on some dashboard
    provisioning = ROOT / "stacks/dashboards/provisioning"
    assert "type: prometheus" in (provisioning / "datasources/costwise-prometheus.yaml").read_text()
    assert "type: file" in (provisioning / "dashboards/costwise.yaml").read_text()


def test_fast_rendering_matches_prometheus_client(store):
    finish(store, "r-1", job='we"ird\\job', labels={"team": "a\nb"})
    finish(store, "r-2", job="tune", shape="gpu-a10", gpu_util_avg=0.4, pipeline="p", step="s",
           extra={"cache": {"result": "miss"}})
    finish(store, "r-3", ended=T0 - timedelta(days=2))  # settled
    registry, daemon, _ = make_registry(store, CollectorRegistry())
    daemon.observe_lag(0.4)
    from scheduler.reporting.metrics import render

    def samples(text):
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name != "costwise_metrics_collect_seconds" and not s.name.endswith("_created"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    fast = samples(render(registry).decode())
    slow = samples(generate_latest(registry).decode())
    assert fast == slow
    assert len(fast) > 60
    assert (("costwise_runs_total", (("job_name", 'we"ird\\job'), ("pipeline", ""), ("state", "SUCCEEDED")))) in fast


def test_metrics_app_serves_gzip_to_scrapers_that_ask(store):
    import gzip

    finish(store, "r-1")
    served = serve_metrics(store, "127.0.0.1", 0, prime=False)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{served.port}/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert b"costwise_runs_total" in gzip.decompress(resp.read())
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{served.port}/nope", timeout=10)
    finally:
        served.shutdown()


def test_running_runs_accrue_spend_as_they_go(store, clock):
    """A 10-hour GPU run shows its spend so far on every scrape, not 0 and then a spike."""
    store.create_run(RunRecord(id="r-long000001", job="tune", state="RUNNING", shape="gpu-a10", queued_at=T0,
                               started_at=T0, price_per_hour=1.2, labels={"team": "ml"}))
    # a spot run preempted once: its first attempt is billed (0.2), it waits in the queue for the next one
    store.create_run(RunRecord(id="r-pre0000001", job="train", state="QUEUED", queued_at=T0, started_at=T0,
                               price_per_hour=0.1, cost_usd=0.2, preemptions=1, labels={"team": "ml"}))
    registry = make_registry(store, CollectorRegistry())[0]
    seen = []
    for _ in range(3):
        clock.advance(3600)
        families, _ = scrape(registry)
        seen.append(sample(families, "costwise_running_spend_dollars", job_name="tune", shape="gpu-a10", team="ml"))
        assert sample(families, "costwise_running_burn_dollars_per_hour", job_name="tune") == 1.2
        assert sample(families, "costwise_running_spend_dollars", job_name="train", shape="") == pytest.approx(0.2)
        assert not [s for s in families["costwise_spend_dollars"].samples if s.labels["job_name"] == "tune"]
    assert seen == pytest.approx([1.2, 2.4, 3.6])
    # it ends: its money moves from the gauge to the counter (spend so far does not drop)
    store.update_run("r-long000001", state="SUCCEEDED", ended_at=clock.now(), duration_s=3 * 3600.0, cost_usd=3.6)
    families, _ = scrape(registry)
    assert not [s for s in families["costwise_running_spend_dollars"].samples if s.labels["job_name"] == "tune"]
    assert sample(families, "costwise_spend_dollars", "_total", job_name="tune") == pytest.approx(3.6)


def test_a_standby_exports_only_its_own_measurements(store):
    finish(store, "r-sb0000001")
    store.create_run(RunRecord(id="r-sb0000002", job="train", state="RUNNING", shape="cpu-small", queued_at=T0,
                               started_at=T0 - timedelta(hours=1), price_per_hour=0.1))
    leading = [False]
    registry, daemon, _ = make_registry(store, CollectorRegistry(), leader=lambda: leading[0])
    daemon.observe_lag(0.1)
    from scheduler.reporting.metrics import render

    for text in (render(registry).decode(), generate_latest(registry).decode()):
        families = {f.name: f for f in text_string_to_metric_families(text) if not f.name.endswith("_created")}
        assert set(families) == {"costwise_leader", "costwise_scheduler_lag_seconds", "costwise_metrics_collect_seconds"}
        assert sample(families, "costwise_leader") == 0
    leading[0] = True  # it took the lock
    families, _ = scrape(registry)
    assert sample(families, "costwise_leader") == 1
    assert sample(families, "costwise_runs", "_total", job_name="train", state="SUCCEEDED") == 1
    assert sample(families, "costwise_running_spend_dollars", job_name="train") == pytest.approx(0.1)


def test_the_cost_allocation_labels_are_configurable(store):
    finish(store, "r-lb0000001", labels={"team": "ml", "project": "churn", "cost-center": "cc-7"})
    finish(store, "r-lb0000002", labels={"team": "ml"})
    store.create_run(RunRecord(id="r-lb0000003", job="train", state="RUNNING", shape="cpu-small", queued_at=T0,
                               started_at=T0, price_per_hour=0.1, labels={"project": "churn"}))
    labels = allocation_labels("team,project,cost_center=cost-center")
    registry = make_registry(store, CollectorRegistry(), labels=labels)[0]
    from scheduler.reporting.metrics import render

    families = {f.name: f for f in text_string_to_metric_families(render(registry).decode())}
    alloc = {"team", "project", "cost_center"}
    for name, fixed in (("costwise_spend_dollars", {"job_name", "pipeline", "step", "shape", "market"}),
                        ("costwise_idle_spend_dollars", {"job_name", "shape", "market"}),
                        ("costwise_running_spend_dollars", {"job_name", "pipeline", "step", "shape", "market"})):
        assert families[name].samples and all(set(s.labels) == fixed | alloc for s in families[name].samples), name
    assert sample(families, "costwise_spend_dollars", "_total", project="churn", cost_center="cc-7") == pytest.approx(
        0.1 * 60 / 3600)
    assert sample(families, "costwise_spend_dollars", "_total", project="", cost_center="") == pytest.approx(0.1 * 60 / 3600)
    assert sample(families, "costwise_running_spend_dollars", project="churn", team="") == 0.0  # started just now
    # the default is today's series: team only
    default, _ = scrape(make_registry(store, CollectorRegistry())[0])
    assert {frozenset(s.labels) for s in default["costwise_spend_dollars"].samples} == {
        frozenset({"job_name", "pipeline", "step", "shape", "market", "team"})}


def test_a_bad_metrics_label_setting_is_one_line_and_exit_2(tmp_path):
    import os

    env = {**os.environ, "COSTWISE_HOME": str(tmp_path / "home"), "COSTWISE_METRICS_LABELS": "team,cost-center"}
    env.pop("COSTWISE_DB", None)
    proc = subprocess.run([sys.executable, "-m", "scheduler.cli", "daemon", "--metrics-port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "COSTWISE_METRICS_LABELS" in proc.stderr
    assert "'cost-center'" in proc.stderr
