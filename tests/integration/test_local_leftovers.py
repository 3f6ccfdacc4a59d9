"""A local run whose wrapper was SIGKILLed leaves nothing of its process group once it is found gone."""

import os
import signal
import time

import psutil
import pytest

from scheduler.core.specs import ShapeSpec
from scheduler.executors.base import LaunchSpec
from scheduler.executors.local import LocalExecutor

SHAPE = ShapeSpec(name="tiny", vcpus=1, memory_gib=1, price_per_hour=0.01, capacity=2)


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (psutil.Error, OSError):
            continue
    return members


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def launched(tmp_path):
    """A run of a day's deadline (its watchdog sleeps that long) whose job and wrapper are SIGKILLed,
    as when the machine's OOM killer or a person kills them while no daemon watches."""
    work = tmp_path / "work"
    work.mkdir()
    pid_file = tmp_path / "job.pid"
    spec = LaunchSpec(run_id="r-leftover", job="sleeper", argv=["sh", "-c", f'echo $$ > "{pid_file}"; exec sleep 60'],
                      workdir=work, env={"PATH": os.environ["PATH"]}, secret_names=frozenset(),
                      log_path=tmp_path / "run.log", shape=SHAPE, max_runtime_s=86400)
    handle = LocalExecutor().launch(spec)
    job = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    wait_for(lambda: len(group_members(handle["pid"])) >= 3)  # wrapper, watchdog (and its sleep), job
    os.kill(job, signal.SIGKILL)
    os.kill(handle["pid"], signal.SIGKILL)
    os.waitpid(handle["pid"], 0)  # our child: reap it, as init would the daemon's
    yield handle
    for proc in group_members(handle["pid"]):
        proc.kill()


def test_a_restarted_executor_finding_the_run_gone_ends_the_orphaned_watchdog(launched):
    assert group_members(launched["pid"]), "the watchdog should still be asleep: the test would prove nothing"
    status = LocalExecutor().wait(launched, 0)  # a daemon restarted: the run is not tracked here
    assert status is not None and status.reason == "lost"
    wait_for(lambda: not group_members(launched["pid"]), timeout=5)

