"""max_runtime holds on every path: escaping process trees, a daemon killed in a run's STARTING window,
a killed `costwise run --wait` with no daemon, a supervisor thread that dies. Real processes throughout."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from scheduler.store.catalog import Document, apply_documents
from scheduler.core.clock import FrozenClock
from scheduler.runtime.engine import Engine
from scheduler.executors import cgroups
from scheduler.executors.base import MAX_STOP_GRACE_S, capped_grace
from scheduler.store.store import Store
from tests.conftest import write
from tests.daemon_harness import DaemonProcess, wait_until

SHAPES = """
kind: Shape
name: box
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
capacity: 2
"""

# A hostile job: a grandchild that leaves the session (setsid), double-forks, and execs `sleep` with an
# empty environment, so neither the run's process group, nor its session, nor COSTWISE_RUN_ID finds it.
ESCAPEE = """
import os, sys, time
marks = os.environ["COSTWISE_ARTIFACTS_DIR"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(os.path.join(marks, "escapee.pid"), "w") as f:
            f.write(str(os.getpid()))
        os.execve("/bin/sleep", ["sleep", "120"], {})
    os._exit(0)
os.wait()
with open(os.path.join(marks, "job.pid"), "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)
"""

JOBS = """
kind: Job
name: escapee
artifact: escapee.py
stop_grace: 1s
---
kind: Job
name: sleeper
artifact: escapee.py
max_runtime: 3s
stop_grace: 1s
"""


@pytest.fixture
def project(tmp_path, cli):
    root = tmp_path / "p"
    write(root / "shapes.yaml", SHAPES)
    write(root / "escapee.py", ESCAPEE)
    write(root / "jobs.yaml", JOBS)
    proc = cli("apply", str(root / "shapes.yaml"), str(root / "jobs.yaml"))
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(params=["cgroup", "no-cgroup"])
def kill_mode(request):
    """Kill by per-run cgroup where this machine can make one, and by the scan fallback (forced)."""
    if request.param == "cgroup":
        if cgroups.detect() is None:
            pytest.skip("SKIPPED LOUDLY: no writable cgroup hierarchy here (not root, or a read-only cgroupfs)")
        return {}
    return {"COSTWISE_CGROUPS": "off"}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid(artifacts: Path, name: str, timeout: float = 20) -> int:
    path = artifacts / name
    return int(wait_until(lambda: path.exists() and path.read_text(), timeout=timeout))


def _run_processes(run_id: str) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("COSTWISE_RUN_ID") == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def _start_waiting_cli(home: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "COSTWISE_HOME": str(home), **(env or {})}
    full_env.pop("COSTWISE_DB", None)
    return subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", *args, "--wait", "--json"],
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _running(cli, job: str) -> dict:
    return wait_until(lambda: next((r for r in cli.json("runs", "--job", job) if r["state"] == "RUNNING"
                                    and r["artifacts_dir"]), None), timeout=30)


def _cgroup_dirs(run_id: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"**/{cgroups.PREFIX}{run_id}")]


def test_an_escaping_grandchild_is_gone_after_a_timeout(cli, project, home, kill_mode):
    proc = _start_waiting_cli(home, "escapee", "--max-runtime", "2s", env=kill_mode)
    out, err = proc.communicate(timeout=60)
    run = json.loads(out)
    assert proc.returncode == 1 and run["state"] == "TIMED_OUT", err
    escapee = _pid(Path(run["artifacts_dir"]), "escapee.pid", timeout=1)
    assert not _alive(escapee), f"the setsid + double-fork + env -i grandchild {escapee} survived the timeout"
    assert not _run_processes(run["id"])
    assert not _cgroup_dirs(run["id"]), "the finished run's cgroup was left behind"


def test_an_escaping_grandchild_is_gone_after_a_cancel(cli, project, home, kill_mode):
    proc = _start_waiting_cli(home, "escapee", env=kill_mode)
    run = _running(cli, "escapee")
    artifacts = Path(run["artifacts_dir"])
    escapee, job = _pid(artifacts, "escapee.pid"), _pid(artifacts, "job.pid")
    assert _alive(escapee) and _alive(job)
    canceled = cli("cancel", run["id"], "--json", env=kill_mode)
    assert canceled.returncode == 0, canceled.stderr
    out, _ = proc.communicate(timeout=30)
    assert json.loads(out)["state"] == "CANCELED"
    assert not _alive(job)
    assert not _alive(escapee), f"the setsid + double-fork + env -i grandchild {escapee} survived the cancel"
    assert not _cgroup_dirs(run["id"])


def test_kill_9_in_the_starting_window_still_times_out_at_the_deadline(cli, project, daemons, home):
    """The daemon dies right after spawning the run's process, before its handle is saved."""
    first = DaemonProcess(home, env={"COSTWISE_TEST_CRASH_AT": "after-spawn"}).start()
    try:
        queued = json.loads(cli("run", "sleeper", "--json").stdout)
        assert first.proc.wait(timeout=30) == -signal.SIGKILL  # it killed itself at the crash point
    finally:
        first.stop()
    run = cli.json("show", queued["id"])
    assert run["state"] == "STARTING" and run["started_at"] is None  # the window the issue describes
    assert run["deadline_at"] is not None  # the claim carried the deadline
    job_pid = _pid(home / "runs" / queued["id"] / "artifacts", "job.pid")
    daemons()
    final = wait_until(lambda: (r := cli.json("show", queued["id"]))["state"] not in ("STARTING", "RUNNING") and r,
                       timeout=30)
    assert final["state"] == "TIMED_OUT", (final["state"], final["reason"])
    assert "max runtime" in final["reason"]
    assert final["started_at"] is not None  # filled from the process's start time
    assert final["duration_s"] <= 3 + 1 + 4, final["duration_s"]  # max runtime + grace, with slack
    assert not _alive(job_pid) and not _run_processes(queued["id"])
    assert len(cli.json("runs", "--job", "sleeper")) == 1


def test_a_killed_cli_run_is_stopped_at_its_deadline_with_no_daemon(cli, project, daemons, home):
    """`costwise run --wait` supervises the run itself; kill -9 it and nobody is left but the wrapper."""
    proc = _start_waiting_cli(home, "sleeper")
    run = _running(cli, "sleeper")
    artifacts = Path(run["artifacts_dir"])
    job_pid, escapee = _pid(artifacts, "job.pid"), _pid(artifacts, "escapee.pid")
    proc.kill()
    proc.wait()
    assert _alive(job_pid), "the run ended with its CLI: this test needs it to outlive it"
    deadline = datetime.fromisoformat(cli.json("show", run["id"])["deadline_at"])
    wait_until(lambda: not _alive(job_pid) and not _alive(escapee), timeout=20)
    stopped_late_s = time.time() - deadline.timestamp()
    assert stopped_late_s <= 1 + 3, stopped_late_s  # grace + slack for a loaded machine
    assert not _run_processes(run["id"])
    daemons()  # whoever reads the run next records how it ended
    final = wait_until(lambda: (r := cli.json("show", run["id"]))["state"] != "RUNNING" and r, timeout=30)
    assert final["state"] == "TIMED_OUT", (final["state"], final["reason"])
    assert "watchdog" in final["reason"]


def test_a_supervisor_thread_that_dies_is_replaced(cli, project, daemons, home):
    daemon = daemons(env={"COSTWISE_TEST_CRASH_AT": "supervise"})
    queued = json.loads(cli("run", "sleeper", "--max-runtime", "8s", "--json").stdout)
    final = wait_until(lambda: (r := cli.json("show", queued["id"]))["state"] not in ("QUEUED", "STARTING", "RUNNING")
                       and r, timeout=40)
    assert final["state"] == "TIMED_OUT", (final["state"], final["reason"])
    assert any(e["message"] == "supervisor replaced" for e in final["events"]), final["events"]
    assert "injected fault" in daemon.log()  # the dead supervisor's exception is logged
    assert not _run_processes(queued["id"])


def test_the_claim_carries_the_deadline_and_a_retry_keeps_it(settings, tmp_path):
    write(tmp_path / "fail.sh", "exit 3\n")
    clock = FrozenClock()
    store = Store.open(settings.db_url, clock)
    try:
        docs = [{"kind": "Shape", "name": "box", "vcpus": 1, "memory_gib": 1, "price_per_hour": 0.1, "capacity": 1},
                {"kind": "Job", "name": "flaky", "artifact": "fail.sh", "max_runtime": "90s", "retries": 1}]
        apply_documents([Document(d, tmp_path, "test") for d in docs], store, settings)
        engine = Engine(settings, store, clock)
        run = engine.submit("flaky")
        placed = engine.try_start(run, launch=False)
        claimed = store.get_run(run.id)
        assert claimed.state == "STARTING" and claimed.deadline_at == clock.now() + _seconds(90)
        assert placed.deadline_at == claimed.deadline_at
        clock.advance(5)
        final = engine.supervise(engine.launch(run.id, placed))
        assert final.state == "FAILED" and final.attempt == 1  # retried once, then failed
        assert store.get_run(run.id).deadline_at == claimed.deadline_at  # the retry kept the deadline
    finally:
        store.close()


def test_an_infinite_grace_still_ends_in_sigkill():
    assert capped_grace(float("inf")) == MAX_STOP_GRACE_S
    assert capped_grace(float("nan")) == 10.0
    assert capped_grace(-1) == 0.0 and capped_grace(2.5) == 2.5


def _seconds(n):
    from datetime import timedelta

    return timedelta(seconds=n)
