"""A job in a container that escapes its process tree (setsid, double fork) is still gone at its deadline."""

import json
import os
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from tests.conftest import write
from tests.images import TEST_IMAGE
from tests.integration.test_docker_runs import containers_of, docker_client  # noqa: F401 - the fixture

DOCS = f"""
kind: Shape
name: dock-escape
backend: docker
vcpus: 0.5
memory_gib: 0.25
price_per_hour: 0.01
capacity: 2
---
kind: Job
name: dt-escapee
artifact: jobs/escapee.py
image: {TEST_IMAGE}
requirements: {{cpus: 0.5, memory_gib: 0.1}}
max_runtime: 3s
stop_grace: 1s
"""

# The grandchild leaves the job's session and process group, ignores SIGTERM and outlives its parent;
# MARKER in its command line finds it from the host, where the container's processes are visible too.
ESCAPEE = """
    import os, signal, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "MARKER"])
        os._exit(0)
    print("escaped", flush=True)
    time.sleep(600)
"""


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in (proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.fixture
def marker(tmp_path, cli):
    marker = f"escapee-{uuid.uuid4().hex[:8]}"
    write(tmp_path / "jobs" / "escapee.py", ESCAPEE.replace("MARKER", marker))
    write(tmp_path / "docs.yaml", DOCS)
    proc = cli("apply", str(tmp_path / "docs.yaml"))
    assert proc.returncode == 0, proc.stderr
    return marker


def test_an_escaping_grandchild_in_a_container_is_gone_after_the_timeout(cli, home, marker, docker_client):
    run = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", "dt-escapee", "--wait", "--json"],
                           env={**os.environ, "COSTWISE_HOME": str(home)}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not marked(marker) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.1)
    assert marked(marker), "the grandchild never started: the test would prove nothing"
    out, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    assert json.loads(out)["state"] == "TIMED_OUT"
    assert not containers_of(docker_client, "dt-escapee")
    assert not marked(marker)
