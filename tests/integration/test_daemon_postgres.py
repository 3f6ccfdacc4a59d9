"""Two daemons on one real PostgreSQL catalog: one leader, one standby that takes over."""

import time
from collections import Counter

import pytest

from tests.conftest import Cli, write
from tests.daemon_harness import DaemonProcess, wait_until

pytestmark = pytest.mark.postgres


def test_leader_standby_takeover_and_each_fire_once(fresh_pg, home, tmp_path):
    cli = Cli(home, fresh_pg)
    write(tmp_path / "tick.py", "print('tick')\n")
    write(tmp_path / "docs.yaml", """
        kind: Shape
        name: s
        vcpus: 2
        memory_gib: 4
        price_per_hour: 0.1
        capacity: 4
        ---
        kind: Job
        name: tick
        artifact: tick.py
        schedule: {interval: 1s}
    """)
    assert cli("apply", str(tmp_path / "docs.yaml")).returncode == 0, "apply failed"
    leader = DaemonProcess(home, fresh_pg).start()
    standby = DaemonProcess(home, fresh_pg)
    try:
        standby.start(wait_leader=False)
        time.sleep(1.5)
        assert leader.get("/health")["leader"] is True
        assert standby.get("/health")["leader"] is False
        status, body = standby.post("/runs", {"job": "tick"})
        assert status == 503 and "standby" in body["error"]
        time.sleep(3)
        leader.kill9()
        killed_at = time.monotonic()
        wait_until(lambda: standby.get("/health")["leader"], timeout=15)
        takeover_s = time.monotonic() - killed_at
        assert takeover_s < 5, takeover_s
        time.sleep(4)
        # stop the schedule and let the new leader finish what it started: a SIGTERM'd daemon leaves
        # runs in flight to the next leader, and there is none after this test
        write(tmp_path / "docs.yaml", "kind: Job\nname: tick\nartifact: tick.py\n")
        assert cli("apply", str(tmp_path / "docs.yaml")).returncode == 0, "apply failed"
        live = ("QUEUED", "STARTING", "RUNNING")
        wait_until(lambda: not [r for r in cli.json("runs", "--job", "tick", "--limit", "1000") if r["state"] in live],
                   timeout=30)
    finally:
        standby.stop()
        leader.stop()
    runs = cli.json("runs", "--job", "tick", "--limit", "1000")
    assert len(runs) >= 5
    # every fire recorded once: no two runs for one scheduled time, and nothing left running
    keys = _fire_keys(fresh_pg)
    assert len(keys) == len(runs) and all(n == 1 for n in Counter(keys).values())
    assert {r["state"] for r in runs} <= {"SUCCEEDED", "QUEUED", "FAILED"}
    failed = [r for r in runs if r["state"] == "FAILED"]
    assert all(r["reason"] == "lost" or r["reason"].startswith("exit code") for r in failed)


def _fire_keys(url):
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        keys = [k for (k,) in conn.exec_driver_sql("select fire_key from runs where job = 'tick'")]
    engine.dispose()
    return keys
