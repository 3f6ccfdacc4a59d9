"""The daemon for real: a `costwise daemon` process, its schedules, dispatch, API and restarts."""

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest

from tests.conftest import write
from tests.daemon_harness import DaemonProcess, wait_until

SHAPES = """
kind: Shape
name: cheap
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
capacity: 1
---
kind: Shape
name: dear
vcpus: 4
memory_gib: 8
price_per_hour: 0.40
capacity: 2
"""


@pytest.fixture
def project(tmp_path, cli):
    root = tmp_path / "p"
    write(root / "shapes.yaml", SHAPES)
    write(root / "tick.py", "import os\nprint('tick', os.environ['COSTWISE_RUN_ID'])\n")
    write(root / "sleep.py", """
        import os, pathlib, sys, time
        pathlib.Path(os.environ["COSTWISE_ARTIFACTS_DIR"], "pid").write_text(str(os.getpid()))
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 5)
        print("slept")
    """)
    assert cli("apply", str(root / "shapes.yaml")).returncode == 0
    return root


def apply(cli, root, name, text):
    write(root / name, text)
    proc = cli("apply", str(root / name))
    assert proc.returncode == 0, proc.stderr


def test_interval_schedule_produces_runs_and_edits_take_effect(cli, project, daemons):
    apply(cli, project, "tick.yaml", "kind: Job\nname: tick\nartifact: tick.py\nschedule: {interval: 2s}\n")
    daemons()
    wait_until(lambda: len([r for r in cli.json("runs", "--job", "tick") if r["state"] == "SUCCEEDED"]) >= 2, timeout=15)
    # edit the schedule while the daemon runs: remove it, and no new run appears
    apply(cli, project, "tick.yaml", "kind: Job\nname: tick\nartifact: tick.py\n")

    def no_new_run_for_3s():  # a live 2 s schedule would fire in any 3 s window
        count = len(cli.json("runs", "--job", "tick"))
        time.sleep(3)
        return len(cli.json("runs", "--job", "tick")) == count

    assert wait_until(no_new_run_for_3s, timeout=20)  # the daemon notices catalog changes within seconds
    before = len(cli.json("runs", "--job", "tick"))
    time.sleep(4.5)
    assert len(cli.json("runs", "--job", "tick")) == before
    # and add it back: runs resume
    apply(cli, project, "tick.yaml", "kind: Job\nname: tick\nartifact: tick.py\nschedule: {interval: 1s}\n")
    wait_until(lambda: len(cli.json("runs", "--job", "tick")) >= before + 2, timeout=10)
    runs = cli.json("runs", "--job", "tick")
    assert all(r["state"] in ("SUCCEEDED", "QUEUED", "STARTING", "RUNNING") for r in runs)


def test_cli_hands_runs_to_the_daemon(cli, project, daemons):
    apply(cli, project, "jobs.yaml", "kind: Job\nname: sleeper\nartifact: sleep.py\nargs: ['0.2']\n")
    daemons()
    proc = cli("run", "sleeper", "--json")  # no --wait: queued for the daemon, which runs it
    queued = json.loads(proc.stdout)
    assert queued["state"] == "QUEUED" and "no daemon" not in proc.stderr
    wait_until(lambda: cli.json("show", queued["id"])["state"] == "SUCCEEDED")
    proc = cli("run", "sleeper", "--wait", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["state"] == "SUCCEEDED"


def test_kill_9_during_a_run_then_restart_adopts_it(cli, project, daemons, home):
    # long enough that the run outlives a slow restart on a loaded machine: adopted, not found ended
    apply(cli, project, "jobs.yaml", "kind: Job\nname: sleeper\nartifact: sleep.py\nargs: ['8']\n")
    first = daemons()
    run = json.loads(cli("run", "sleeper", "--json").stdout)
    wait_until(lambda: cli.json("show", run["id"])["state"] == "RUNNING")
    first.kill9()
    second = daemons()
    final = wait_until(lambda: (r := cli.json("show", run["id"]))["state"] in ("SUCCEEDED", "FAILED") and r, timeout=30)
    assert final["state"] == "SUCCEEDED"
    assert any("adopted" in (e["message"] or "") for e in final["events"]), final["events"]
    assert len(cli.json("runs", "--job", "sleeper")) == 1  # recorded once, launched once
    assert "slept" in cli("logs", run["id"]).stdout
    assert second.get("/health")["leader"]


def test_a_run_gone_while_no_daemon_watched_is_recorded_once(cli, project, daemons, home):
    apply(cli, project, "jobs.yaml", "kind: Job\nname: sleeper\nartifact: sleep.py\nargs: ['30']\n")
    first = daemons()
    run = json.loads(cli("run", "sleeper", "--json").stdout)
    pid_file = Path(wait_until(lambda: cli.json("show", run["id"])["artifacts_dir"])) / "pid"
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text()))
    first.kill9()
    for proc in [psutil.Process(pid), *psutil.Process(pid).parents()[:1]]:
        proc.kill()  # the run dies too while no daemon is up
    daemons()
    final = wait_until(lambda: (r := cli.json("show", run["id"]))["state"] not in ("RUNNING", "STARTING") and r)
    # the shell wrapper may or may not have written the job's exit code before it was killed too
    assert final["state"] == "FAILED"
    assert final["reason"] in ("lost", "exit code 137 (ended while no daemon watched)"), final["reason"]
    assert len(cli.json("runs", "--job", "sleeper")) == 1


def test_capacity_spill_over_after_max_wait(cli, project, daemons):
    apply(cli, project, "jobs.yaml", "kind: Job\nname: sleeper\nartifact: sleep.py\nargs: ['5']\nmax_wait: 1s\n"
                                     "requirements: {cpus: 1, memory_gib: 1}\n")
    daemons()
    a = json.loads(cli("run", "sleeper", "--json").stdout)
    b = json.loads(cli("run", "sleeper", "--json").stdout)
    ra = wait_until(lambda: (r := cli.json("show", a["id"]))["state"] == "RUNNING" and r)
    rb = wait_until(lambda: (r := cli.json("show", b["id"]))["state"] == "RUNNING" and r, timeout=10)
    assert ra["shape"] == "cheap" and rb["shape"] == "dear"
    assert "spilled over" in rb["placement"]["reason"]
    assert any("waiting for cheap (full)" in (e["message"] or "") for e in rb["events"])


def test_budget_holds_a_run_with_its_reason(cli, project, daemons):
    apply(cli, project, "jobs.yaml", """
        kind: Job
        name: sleeper
        artifact: sleep.py
        args: ['0.1']
        labels: {team: ml}
        ---
        kind: Budget
        name: ml-daily
        labels: {team: ml}
        period: day
        limit_usd: 0.000001
    """)
    daemon = daemons()
    first = json.loads(cli("run", "sleeper", "--json").stdout)
    wait_until(lambda: cli.json("show", first["id"])["state"] == "SUCCEEDED")  # nothing spent yet: runs
    second = json.loads(cli("run", "sleeper", "--json").stdout)
    held = wait_until(lambda: (r := cli.json("show", second["id"]))["placement"].get("reason") and r)
    assert held["state"] == "QUEUED"
    assert held["placement"]["reason"].startswith("held by budget 'ml-daily'")
    # a budget that refuses ends the run unlaunched; the daemon logs each dispatch, wait, refusal, end
    apply(cli, project, "refuse.yaml", """
        kind: Job
        name: refused
        artifact: sleep.py
        args: ['0.1']
        labels: {team: ops}
        ---
        kind: Budget
        name: ops-daily
        labels: {team: ops}
        period: day
        limit_usd: 0.000001
        action: refuse
    """)
    spends = json.loads(cli("run", "refused", "--json").stdout)  # nothing spent, no history: it runs
    wait_until(lambda: cli.json("show", spends["id"])["state"] == "SUCCEEDED")
    refused = json.loads(cli("run", "refused", "--json").stdout)
    wait_until(lambda: cli.json("show", refused["id"])["state"] == "FAILED")
    lines = daemon.log_path.read_text().splitlines()

    def logged(event, run_id):
        return [line for line in lines if f" {event} run={run_id} " in line]

    (dispatched,) = logged("dispatch", first["id"])
    assert "INFO costwise.daemon:" in dispatched and "job=sleeper state=STARTING shape=cheap market=on_demand reason=cheapest" in dispatched
    assert "job=sleeper state=SUCCEEDED shape=cheap market=on_demand reason=exit code 0" in logged("end", first["id"])[0]
    assert "reason=held by budget 'ml-daily'" in logged("wait", second["id"])[0]
    assert len(logged("wait", second["id"])) == 1  # a hold is logged when its reason changes, not every round
    (refusal,) = logged("refuse", refused["id"])
    assert "job=refused state=FAILED shape=- market=" in refusal and "reason=refused by budget 'ops-daily'" in refusal


def test_hooks_start_a_job_and_post_a_webhook(cli, project, daemons):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    apply(cli, project, "jobs.yaml", f"""
        kind: Job
        name: after
        artifact: tick.py
        ---
        kind: Job
        name: first
        artifact: tick.py
        hooks:
          on_success: [{{job: after}}, {{webhook: "http://127.0.0.1:{server.server_port}/done"}}]
    """)
    daemons()
    json.loads(cli("run", "first", "--json").stdout)
    wait_until(lambda: [r for r in cli.json("runs", "--job", "after") if r["state"] == "SUCCEEDED"])
    wait_until(lambda: received)
    assert received[0]["job"] == "first" and received[0]["state"] == "SUCCEEDED"
    server.shutdown()


def test_alertmanager_webhook_starts_the_mapped_pipeline_once(cli, project, home):
    apply(cli, project, "pipe.yaml", """
        kind: Job
        name: tick
        artifact: tick.py
        ---
        kind: Pipeline
        name: retrain
        steps: [{name: go, job: tick}]
    """)
    daemon = DaemonProcess(home, extra_args=["--alert", "ModelDrift=retrain"]).start()
    try:
        alert = {"status": "firing", "labels": {"alertname": "ModelDrift", "model": "churn"},
                 "startsAt": "2026-11-22T06:00:00Z", "fingerprint": "abc123"}
        body = {"version": "4", "status": "firing", "alerts": [alert, {**alert, "labels": {"alertname": "Other"}}]}
        status, answer = daemon.post("/alerts", body)
        assert status == 202 and len(answer["started"]) == 1 and answer["ignored"] == ["Other"]
        status, again = daemon.post("/alertmanager", body)  # Alertmanager repeats itself: no second run
        assert again["started"] == answer["started"]
        prun = wait_until(lambda: (p := daemon.get(f"/pipeline-runs/{answer['started'][0]}"))["state"] == "SUCCEEDED" and p)
        assert prun["steps"][0]["state"] == "SUCCEEDED"
    finally:
        daemon.stop()


def test_off_loopback_needs_a_token(cli, project, home):
    proc = cli("daemon", "--host", "0.0.0.0", "--metrics-port", "0")
    assert proc.returncode == 2 and "give an API token" in proc.stderr
    daemon = DaemonProcess(home, extra_args=["--host", "0.0.0.0", "--token", "s3cret"], token="s3cret").start()
    try:
        assert daemon.request("GET", "/health")[0] == 401
        assert daemon.request("GET", "/runs", token="wrong")[0] == 401
        assert daemon.post("/runs", {"job": "nope"})[0] == 401
        assert daemon.request("GET", "/metrics")[0] == 401
        assert daemon.request("GET", "/runs", token="s3cret")[0] == 200
    finally:
        daemon.stop()


def test_api_starts_lists_and_cancels_runs(cli, project, daemons):
    apply(cli, project, "jobs.yaml", "kind: Job\nname: sleeper\nartifact: sleep.py\nargs: ['30']\nstop_grace: 1s\n")
    daemon = daemons()
    status, run = daemon.post("/runs", {"job": "sleeper", "env": {"X": "1"}, "max_runtime": "1h"})
    assert status == 201 and run["state"] == "QUEUED"
    status, bad = daemon.post("/runs", {"job": "sleeper", "max_runtime": "5 parsecs"})
    assert status == 400 and "max_runtime='5 parsecs'" in bad["error"]
    assert daemon.post("/runs", {"job": "ghost"})[0] == 404
    wait_until(lambda: daemon.get(f"/runs/{run['id']}")["state"] == "RUNNING")
    assert [r["id"] for r in daemon.get("/runs?job=sleeper")] == [run["id"]]
    daemon.post(f"/runs/{run['id']}/cancel")
    assert wait_until(lambda: daemon.get(f"/runs/{run['id']}")["state"] == "CANCELED")


def test_sigterm_leaves_running_runs_for_the_next_leader(cli, project, daemons):
    apply(cli, project, "jobs.yaml", "kind: Job\nname: sleeper\nartifact: sleep.py\nargs: ['3']\n")
    first = daemons()
    run = json.loads(cli("run", "sleeper", "--json").stdout)
    wait_until(lambda: cli.json("show", run["id"])["state"] == "RUNNING")
    assert first.stop() == 0
    daemons()
    assert wait_until(lambda: cli.json("show", run["id"])["state"] == "SUCCEEDED")


def test_misfires_after_downtime_are_coalesced_not_a_burst(cli, project, daemons):
    apply(cli, project, "tick.yaml", "kind: Job\nname: tick\nartifact: tick.py\nschedule: {interval: 1s}\n")
    first = daemons()
    wait_until(lambda: len(cli.json("runs", "--job", "tick")) >= 2)
    first.stop()
    seen = {r["id"] for r in cli.json("runs", "--job", "tick")}
    time.sleep(8)  # about eight fires are missed while no daemon runs
    daemons()
    wait_until(lambda: len(cli.json("runs", "--job", "tick")) > len(seen))
    time.sleep(3)  # let the regular fires after the catch-up come, however slow this machine is
    queued = sorted(datetime.fromisoformat(r["queued_at"]) for r in cli.json("runs", "--job", "tick")
                    if r["id"] not in seen)
    # Judged on the runs' own timestamps, not on how long the CLI took to look: in the first 1.5 s
    # after the catch-up run there is that one run plus at most two regular 1 s fires; a burst of
    # the eight missed fires would put them all there.
    first_window = [t for t in queued if (t - queued[0]).total_seconds() <= 1.5]
    assert 1 <= len(first_window) <= 3, [t.isoformat() for t in queued]


def test_a_sweep_pipeline_through_the_daemon(cli, project, daemons):
    write(project / "trial.py", """
        import json, os, pathlib
        trial = json.loads(os.environ["COSTWISE_TRIAL"])
        out = pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"])
        (out / "metrics.json").write_text(json.dumps({"loss": abs(trial["x"] - 3)}))
    """)
    apply(cli, project, "sweep.yaml", """
        kind: Job
        name: trial
        artifact: trial.py
        requirements: {cpus: 1, memory_gib: 1}
        ---
        kind: Pipeline
        name: tune
        steps:
          - name: search
            sweep:
              job: trial
              parameters: {x: {grid: [1, 2, 3, 4]}}
              parallel: 2
              objective: {value: "metrics.json#loss", goal: minimize}
            outputs: [metrics.json]
    """)
    daemon = daemons()
    status, prun = daemon.post("/pipelines/tune/runs", {})
    assert status == 201
    done = wait_until(lambda: (p := daemon.get(f"/pipeline-runs/{prun['id']}"))["state"] not in ("QUEUED", "RUNNING") and p,
                      timeout=60)
    assert "failed" not in daemon.log(), daemon.log()
    assert done["state"] == "SUCCEEDED", done
    step = done["steps"][0]
    assert len(step["trials"]) == 4 and step["trial"] == {"x": 3} and step["objective"] == 0
