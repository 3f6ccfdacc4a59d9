"""Wait or spill in a real daemon by expected waits: a run spills at once to the next-cheapest shape when
the cheapest is full and the running run's expected duration puts the wait past max_wait, and waits
for the cheapest when that run is expected to end soon (core/waits.py, fed by the dispatch round)."""

import json

import pytest

from tests.conftest import write
from tests.daemon_harness import wait_until
from tests.integration.test_daemon import SHAPES  # cheap (1 slot, $0.10/h) and dear (2 slots, $0.40/h)

JOBS = """
kind: Job
name: holder
artifact: sleep.py
args: ['{sleep}']
expected_duration: {expected}
requirements: {{cpus: 1, memory_gib: 1}}
---
kind: Job
name: quick
artifact: sleep.py
args: ['0.1']
expected_duration: 60
max_wait: 300
requirements: {{cpus: 1, memory_gib: 1}}
"""


@pytest.fixture
def project(tmp_path, cli):
    def make(sleep: float, expected: float):
        root = tmp_path / "p"
        write(root / "shapes.yaml", SHAPES)
        write(root / "sleep.py", "import sys, time\ntime.sleep(float(sys.argv[1]))\n")
        write(root / "jobs.yaml", JOBS.format(sleep=sleep, expected=expected))
        for name in ("shapes.yaml", "jobs.yaml"):
            proc = cli("apply", str(root / name))
            assert proc.returncode == 0, proc.stderr
    return make


def holder_then_quick(cli) -> tuple[dict, dict]:
    holder = json.loads(cli("run", "holder", "--json").stdout)
    on_cheap = wait_until(lambda: (r := cli.json("show", holder["id"]))["state"] == "RUNNING" and r)
    assert on_cheap["shape"] == "cheap" and on_cheap["placement"]["expected_duration_s"] > 0
    return holder, json.loads(cli("run", "quick", "--json").stdout)


def test_a_run_spills_at_once_when_the_cheapest_shapes_expected_wait_passes_max_wait(cli, project, daemons):
    project(sleep=20, expected=3600)  # an hour expected on cheap: far past quick's 300 s max_wait
    daemons()
    holder, quick = holder_then_quick(cli)
    done = wait_until(lambda: (r := cli.json("show", quick["id"]))["state"] == "SUCCEEDED" and r, timeout=15)
    assert done["shape"] == "dear"
    assert "spilled over at once" in done["placement"]["reason"] and "passes max_wait" in done["placement"]["reason"]
    assert cli.json("show", holder["id"])["state"] == "RUNNING"  # it did not wait for the slot


def test_a_run_waits_for_the_cheapest_shape_when_its_expected_wait_is_short(cli, project, daemons):
    project(sleep=3, expected=20)  # about 20 s expected on cheap: well inside max_wait, a quarter of the price
    daemons()
    holder, quick = holder_then_quick(cli)
    done = wait_until(lambda: (r := cli.json("show", quick["id"]))["state"] == "SUCCEEDED" and r, timeout=30)
    assert done["shape"] == "cheap"
    waits = [e["message"] for e in done["events"] if (e["message"] or "").startswith("waiting ~")]
    assert waits and "for cheap (full)" in waits[0], done["events"]
    assert cli.json("show", holder["id"])["state"] == "SUCCEEDED"
