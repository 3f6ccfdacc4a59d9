"""Real local runs through the real CLI: placement, deadlines, cancel, cost and utilization."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import write

SHAPES = """
kind: Shape
name: tiny
vcpus: 1
memory_gib: 1
price_per_hour: 0.02
capacity: 2
---
kind: Shape
name: small
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
capacity: 2
---
kind: Shape
name: big
vcpus: 8
memory_gib: 32
price_per_hour: 0.90
capacity: 2
"""


@pytest.fixture
def project(tmp_path, cli):
    root = tmp_path / "project"
    write(root / "shapes.yaml", SHAPES)
    write(root / "jobs" / "hello.py", """
        import os, pathlib, sys
        print("hello", " ".join(sys.argv[1:]), os.environ.get("GREETING", ""))
        for key in ("COSTWISE_RUN_ID", "COSTWISE_ARTIFACTS_DIR", "COSTWISE_INPUT_DIR", "COSTWISE_OUTPUT_DIR", "COSTWISE_CHECKPOINT_DIR"):
            assert os.environ[key], key
        assert pathlib.Path(os.environ["COSTWISE_INPUT_DIR"]).is_dir()
        pathlib.Path(os.environ["COSTWISE_ARTIFACTS_DIR"], "cwd.txt").write_text(os.getcwd())
        pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "out.txt").write_text("done")
    """)
    write(root / "jobs" / "stubborn.py", """
        import os, signal, subprocess, sys, time
        marks = os.environ["COSTWISE_ARTIFACTS_DIR"]
        # a grandchild in its own session that ignores SIGTERM
        subprocess.Popen([sys.executable, "-c",
            "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            f"open('{marks}/grandchild.pid', 'w').write(str(os.getpid())); time.sleep(120)"],
            start_new_session=True)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(f"{marks}/child.pid", "w").write(str(os.getpid()))
        print("ignoring SIGTERM", flush=True)
        time.sleep(60)
    """)
    write(root / "jobs" / "burn.py", """
        import time
        end = time.monotonic() + 1.2
        blob = bytearray(80 * 2**20)  # hold ~80 MiB
        while time.monotonic() < end:
            sum(i * i for i in range(5000))
    """)
    write(root / "jobs" / "flaky.py", """
        import os, pathlib
        marker = pathlib.Path(os.environ["COSTWISE_CHECKPOINT_DIR"], "attempts")
        n = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(n + 1))
        raise SystemExit(0 if n >= 1 else 3)
    """)
    write(root / "jobs.yaml", """
        kind: Job
        name: hello
        artifact: jobs/hello.py
        args: ["world"]
        env: {GREETING: hi}
        requirements: {cpus: 1, memory_gib: 1}
        labels: {team: ml}
        ---
        kind: Job
        name: stubborn
        artifact: jobs/stubborn.py
        stop_grace: 1s
        requirements: {cpus: 1, memory_gib: 1}
        ---
        kind: Job
        name: burn
        artifact: jobs/burn.py
        requirements: {cpus: 2, memory_gib: 2}
        ---
        kind: Job
        name: flaky
        artifact: jobs/flaky.py
        retries: 1
        requirements: {cpus: 1, memory_gib: 1}
    """)
    proc = cli("apply", str(root / "shapes.yaml"), str(root / "jobs.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    return root


def run_json(cli, *args):
    proc = cli("run", *args, "--wait", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_run_succeeds_on_the_cheapest_fitting_shape(cli, project, home):
    code, run = run_json(cli, "hello")
    assert code == 0 and run["state"] == "SUCCEEDED" and run["exit_code"] == 0
    assert run["shape"] == "tiny" and run["backend"] == "local"
    log = cli("logs", run["id"]).stdout
    assert "hello world hi" in log
    artifacts = Path(run["artifacts_dir"])
    cwd = Path((artifacts / "cwd.txt").read_text())
    assert cwd.name == "work" and (cwd / "hello.py").exists()
    results = json.loads((artifacts / "results.json").read_text())
    assert results["outputs"]["out.txt"]["sha256"] and results["env_names"] == ["GREETING"]
    assert results["cost_usd"] == run["cost_usd"] and results["shape"]["name"] == "tiny"


def test_bigger_requirements_land_on_a_bigger_shape(cli, project):
    code, run = run_json(cli, "burn")
    assert code == 0 and run["shape"] == "small"


def test_cost_is_price_times_duration_and_usage_is_recorded(cli, project):
    _, run = run_json(cli, "burn")
    assert run["duration_s"] >= 1.2
    assert run["cost_usd"] == pytest.approx(0.10 * run["duration_s"] / 3600, rel=0.01)
    assert 0.2 < run["cpu_util_avg"] <= 1.0  # one busy core of the shape's two
    assert run["mem_peak_bytes"] > 80 * 2**20


def test_max_runtime_kills_the_whole_tree(cli, project):
    started = time.monotonic()
    code, run = run_json(cli, "stubborn", "--max-runtime", "2s")
    elapsed = time.monotonic() - started
    assert code == 1 and run["state"] == "TIMED_OUT" and "max runtime" in run["reason"]
    assert 2.8 <= run["duration_s"] <= 4.5, run["duration_s"]  # 2 s runtime + 1 s grace
    assert elapsed < 10
    artifacts = Path(run["artifacts_dir"])
    for name in ("child.pid", "grandchild.pid"):
        pid = int((artifacts / name).read_text())
        assert not _alive(pid), f"{name} {pid} survived"
    assert not [p for p in psutil.process_iter() if _run_id(p) == run["id"]]


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _run_id(proc):
    try:
        return proc.environ().get("COSTWISE_RUN_ID")
    except psutil.Error:
        return None


def test_cancel_from_another_process(cli, project, home):
    waiting = subprocess.Popen(
        [sys.executable, "-m", "scheduler.cli", "run", "stubborn", "--wait", "--json"],
        env={**os.environ, "COSTWISE_HOME": str(home)}, stdout=subprocess.PIPE, text=True,
    )
    run_id = None
    for _ in range(100):
        runs = cli.json("runs", "--job", "stubborn")
        if runs and runs[0]["state"] == "RUNNING":
            run_id = runs[0]["id"]
            break
        time.sleep(0.1)
    assert run_id, "the run never started"
    proc = cli("cancel", run_id, "--json")
    assert proc.returncode == 0, proc.stderr
    out, _ = waiting.communicate(timeout=30)
    assert waiting.returncode == 1 and json.loads(out)["state"] == "CANCELED"
    assert cli.json("show", run_id)["state"] == "CANCELED"


def test_cancel_of_an_orphaned_run(cli, project, home):
    """The CLI that supervised the run was killed: cancel still stops the run's processes."""
    waiting = subprocess.Popen(
        [sys.executable, "-m", "scheduler.cli", "run", "stubborn", "--wait"],
        env={**os.environ, "COSTWISE_HOME": str(home)}, stdout=subprocess.DEVNULL,
    )
    run = None
    for _ in range(100):
        runs = cli.json("runs", "--job", "stubborn")
        if runs and runs[0]["state"] == "RUNNING":
            run = runs[0]
            break
        time.sleep(0.1)
    waiting.kill()
    waiting.wait()
    child = Path(run["artifacts_dir"]) / "child.pid"
    for _ in range(50):
        if child.exists():
            break
        time.sleep(0.1)
    record = cli.json("cancel", run["id"])
    assert record["state"] == "CANCELED"
    assert not _alive(int(child.read_text()))


def test_retries_rerun_a_failed_attempt(cli, project):
    code, run = run_json(cli, "flaky")
    assert code == 0 and run["state"] == "SUCCEEDED"
    events = cli.json("show", run["id"])["events"]
    assert any("retrying" in (e["message"] or "") for e in events)


def test_overrides(cli, project):
    code, run = run_json(cli, "hello", "--arg", "there", "--env", "GREETING=hey", "--shape", "big")
    assert code == 0 and run["shape"] == "big"
    assert "hello there hey" in cli("logs", run["id"]).stdout


def test_editing_the_artifact_after_apply_does_not_change_the_job(cli, project):
    (project / "jobs" / "hello.py").write_text("raise SystemExit(9)\n")
    code, run = run_json(cli, "hello")
    assert code == 0 and run["state"] == "SUCCEEDED"


def test_failed_run_exits_1_with_reason(cli, project, tmp_path):
    write(tmp_path / "fail.py", "raise SystemExit(3)\n")
    write(tmp_path / "fail.yaml", f"kind: Job\nname: fail\nartifact: {tmp_path / 'fail.py'}\n")
    assert cli("apply", str(tmp_path / "fail.yaml")).returncode == 0
    code, run = run_json(cli, "fail")
    assert code == 1 and run["state"] == "FAILED" and run["exit_code"] == 3 and run["reason"] == "exit code 3"


def test_queued_without_daemon_then_cancel(cli, project):
    proc = cli("run", "hello", "--json")
    assert proc.returncode == 0
    run = json.loads(proc.stdout)
    assert run["state"] == "QUEUED"
    assert cli.json("cancel", run["id"])["state"] == "CANCELED"


def test_background_processes_left_behind_are_stopped(cli, project, tmp_path):
    write(tmp_path / "bg.sh", "sleep 300 &\necho $! > \"$COSTWISE_ARTIFACTS_DIR/bg.pid\"\n")
    write(tmp_path / "bg.yaml", f"kind: Job\nname: bg\nartifact: {tmp_path / 'bg.sh'}\n")
    assert cli("apply", str(tmp_path / "bg.yaml")).returncode == 0
    code, run = run_json(cli, "bg")
    assert code == 0
    pid = int((Path(run["artifacts_dir"]) / "bg.pid").read_text())
    assert not _alive(pid)
