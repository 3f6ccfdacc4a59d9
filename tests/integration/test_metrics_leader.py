"""A leader and a standby `costwise daemon` on one real PostgreSQL catalog, both scraped by one real
Prometheus (as the Kubernetes stack's two replicas are): sum() over both is the leader's figures, and a
configured cost-allocation label (COSTWISE_METRICS_LABELS) is on the spend series."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from tests.conftest import Cli, need_service, write
from tests.daemon_harness import DaemonProcess, free_port
from tests.integration.test_dashboards import finite, query, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.prometheus]

DOCS = """
kind: Shape
name: s
vcpus: 2
memory_gib: 4
price_per_hour: 0.5
capacity: 4
---
kind: Job
name: work
artifact: work.py
labels: {team: ml, project: churn}
---
kind: Job
name: sleeper
artifact: sleep.py
labels: {team: ml, project: vision}
"""
STANDBY_ONLY = {"costwise_leader", "costwise_metrics_collect_seconds", "costwise_scheduler_lag_seconds_bucket",
                "costwise_scheduler_lag_seconds_count", "costwise_scheduler_lag_seconds_sum",
                "costwise_scheduler_lag_seconds_created"}


def test_leader_and_standby_scraped_together_sum_to_the_leaders_figures(fresh_pg, home, tmp_path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        need_service("Prometheus", "no `prometheus` on PATH; apt-get install prometheus")
    cli = Cli(home, fresh_pg)
    write(tmp_path / "work.py", "print('done')\n")
    write(tmp_path / "sleep.py", "import time; time.sleep(120)\n")
    write(tmp_path / "docs.yaml", DOCS)
    assert cli("apply", str(tmp_path / "docs.yaml")).returncode == 0
    env = {"COSTWISE_METRICS_LABELS": "team,project"}
    leader = DaemonProcess(home, fresh_pg, env=env).start()
    standby = DaemonProcess(home, fresh_pg, env=env)
    prom = None
    try:
        standby.start(wait_leader=False)
        for _ in range(3):
            assert cli("run", "work", "--wait").returncode == 0
        sleeper = cli.json("run", "sleeper")
        wait_for(lambda: cli.json("show", sleeper["id"])["state"] == "RUNNING", 60, "the sleeper to run")
        prom_port = free_port()
        targets = ", ".join(f"'127.0.0.1:{d.port}'" for d in (leader, standby))
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: costwise\n    static_configs:\n      - targets: [{targets}]\n")
        prom = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(tmp_path / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: finite(query(api, 'count(up{job="costwise"} == 1) == 2')), 60, "Prometheus to scrape both")
        time.sleep(2)
        on = {"leader": f'instance="127.0.0.1:{leader.port}"', "standby": f'instance="127.0.0.1:{standby.port}"'}

        assert finite(query(api, "sum(costwise_leader)")) == [1.0]
        assert finite(query(api, f"costwise_leader{{{on['standby']}}}")) == [0.0]
        standby_names = {r["metric"]["__name__"] for r in query(api, f'{{{on["standby"]},__name__=~"costwise_.*"}}')}
        assert standby_names and standby_names <= STANDBY_ONLY, standby_names - STANDBY_ONLY
        # one PromQL evaluation per check, so both sides are read at the same instant
        for metric in ("costwise_spend_dollars_total", "costwise_runs_total", "costwise_running_spend_dollars",
                       "costwise_shape_slots_in_use", "costwise_run_duration_seconds_count"):
            diff = finite(query(api, f"sum({metric}) - sum({metric}{{{on['leader']}}})"))
            assert diff == [0.0], metric
        billed = sum(r["cost_usd"] for r in cli.json("runs", "--job", "work"))
        spend = query(api, 'sum by (team, project) (costwise_spend_dollars_total{job_name="work"})')
        assert [r["metric"] for r in spend] == [{"team": "ml", "project": "churn"}]
        assert float(spend[0]["value"][1]) == pytest.approx(billed)
        running = query(api, 'sum by (project) (costwise_running_spend_dollars{job_name="sleeper"})')
        assert [r["metric"] for r in running] == [{"project": "vision"}] and float(running[0]["value"][1]) > 0
        assert cli("cancel", sleeper["id"]).returncode in (0, 1)
        wait_for(lambda: cli.json("show", sleeper["id"])["state"] == "CANCELED", 60, "the sleeper to end")
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=20)
        standby.stop()
        leader.stop()
