"""Spot runs on a local shape, with real processes: placed on the market the deadline allows, preempted by
`costwise preempt` while `costwise run --wait` waits in another process, resumed from the checkpoint
folder each time, billed per attempt at the spot price; a daemon killed during the requeue launches the
run once."""

import json
import signal
import subprocess
import sys
import os
from pathlib import Path

import pytest

from tests.conftest import costwise_in_process, write
from tests.daemon_harness import DaemonProcess, wait_until

SPOT_PRICE, ON_DEMAND_PRICE = 0.03, 0.10

SHAPES = f"""
kind: Shape
name: box
vcpus: 2
memory_gib: 4
price_per_hour: {ON_DEMAND_PRICE}
spot_price_per_hour: {SPOT_PRICE}
capacity: 2
"""

# Works in 0.2 s steps, writes its step to the checkpoint folder after each, resumes from it; each
# start is noted (with the step it resumed from) in the artifacts folder.
STEPPER = """
import json, os, sys, time
ckpt = os.path.join(os.environ["COSTWISE_CHECKPOINT_DIR"], "state.json")
step = json.load(open(ckpt))["step"] if os.path.exists(ckpt) else 0
with open(os.path.join(os.environ["COSTWISE_ARTIFACTS_DIR"], "starts.txt"), "a") as f:
    f.write(f"{step}\\n")
total = int(sys.argv[1])
while step < total:
    time.sleep(0.2)
    step += 1
    with open(ckpt + ".tmp", "w") as f:
        json.dump({"step": step}, f)
    os.replace(ckpt + ".tmp", ckpt)
"""

JOBS = """
kind: Job
name: spotty
artifact: stepper.py
args: ["30"]
spot: allowed
checkpoint_interval: 1s
stop_grace: 1s
---
kind: Job
name: late
artifact: stepper.py
args: ["1"]
spot: allowed
checkpoint_interval: 2s
deadline: 10s
---
kind: Job
name: tight
artifact: stepper.py
args: ["30"]
spot: allowed
checkpoint_interval: 1s
deadline: 365s
stop_grace: 1s
---
kind: Job
name: plain
artifact: stepper.py
args: ["100"]
stop_grace: 1s
"""


@pytest.fixture
def project(tmp_path, home):
    root = tmp_path / "p"
    write(root / "shapes.yaml", SHAPES)
    write(root / "stepper.py", STEPPER)
    write(root / "jobs.yaml", JOBS)
    code, _, err = costwise_in_process(home, "apply", str(root / "shapes.yaml"), str(root / "jobs.yaml"))
    assert code == 0, err
    return root


def cw(home, *args):
    code, out, err = costwise_in_process(home, *args)
    return code, (json.loads(out) if "--json" in args and out.strip() else out), err


def show(home, run_id):
    return cw(home, "show", run_id, "--json")[1]


def the_run(home, job):
    runs = cw(home, "runs", "--job", job, "--json")[1]
    return runs[0] if runs else None


def starts(run) -> list[int]:
    path = Path(run["artifacts_dir"] or "/nonexistent") / "starts.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def running_at_step(home, run_id, attempts: int, step: int):
    """The run once its attempt number ``attempts`` is running and has checkpointed past ``step``."""
    run = show(home, run_id)
    if run["state"] != "RUNNING" or run["attempts"] != attempts or len(starts(run)) != attempts:
        return None
    ckpt = home / "checkpoints" / run["job"] / run_id / "state.json"
    try:
        return run if json.loads(ckpt.read_text())["step"] >= step else None
    except (OSError, ValueError):
        return None


def run_wait_process(home, job):
    env = {**os.environ, "COSTWISE_HOME": str(home)}
    env.pop("COSTWISE_DB", None)
    return subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", job, "--wait", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_spot_run_preempted_twice_resumes_each_time_and_bills_every_attempt(home, project):
    waiter = run_wait_process(home, "spotty")
    try:
        run_id = wait_until(lambda: (r := the_run(home, "spotty")) and r["id"], timeout=30)
        for attempt, step in ((1, 5), (2, 12)):
            wait_until(lambda: running_at_step(home, run_id, attempt, step), timeout=30)
            code, record, err = cw(home, "preempt", run_id, "--json")
            assert code == 0, err
            assert record["preemptions"] == attempt and record["state"] in ("QUEUED", "STARTING", "RUNNING")
        out, err = waiter.communicate(timeout=60)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    final = json.loads(out)
    assert (final["state"], final["attempts"], final["preemptions"], final["market"]) == ("SUCCEEDED", 3, 2, "spot")
    detail = show(home, run_id)
    resumed = starts(detail)
    assert resumed[0] == 0 and 5 <= resumed[1] < resumed[2] and resumed[2] >= 12, resumed  # from its checkpoint
    log = detail["attempt_log"]
    assert [a["state"] for a in log] == ["PREEMPTED", "PREEMPTED", "SUCCEEDED"]
    assert all(a["market"] == "spot" and a["price_per_hour"] == SPOT_PRICE for a in log)
    assert final["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in log), rel=1e-9)
    assert final["cost_usd"] == pytest.approx(SPOT_PRICE * sum(a["seconds"] for a in log) / 3600, rel=1e-9)
    # lost work: the time since the newest checkpoint (written every 0.2 s), not a whole interval
    assert 0 < final["lost_s"] < 0.2 * 2 + 0.5 and final["lost_s"] == pytest.approx(sum(a["lost_s"] for a in log))
    results = json.loads((Path(final["artifacts_dir"]) / "results.json").read_text())
    assert results["market"]["attempts"] == 3 and len(results["market"]["attempt_log"]) == 3
    assert "spot" in detail["placement"]["market_reason"]
    assert sum("preempted" in (e["message"] or "") for e in detail["events"]) >= 2


def test_a_run_whose_deadline_slack_is_gone_is_placed_on_demand(home, project):
    code, record, err = cw(home, "run", "late", "--wait", "--json")
    assert code == 0, err
    assert record["market"] == "on_demand" and record["preemptions"] == 0
    detail = show(home, record["id"])
    assert "slack is gone" in detail["placement"]["market_reason"], detail["placement"]
    assert detail["price_per_hour"] == ON_DEMAND_PRICE
    assert record["cost_usd"] == pytest.approx(ON_DEMAND_PRICE * record["duration_s"] / 3600)


def test_a_preempted_run_whose_slack_ran_out_finishes_on_demand(home, project):
    """Deadline 365 s, no estimate yet: the gate keeps the run's remaining time (its interval and a
    restart: 181 s), one interval at risk and one more restart, so about 3 s of slack at the first
    claim (spot) and none once it has run 4 s (on-demand, for good)."""
    waiter = run_wait_process(home, "tight")
    try:
        run_id = wait_until(lambda: (r := the_run(home, "tight")) and r["id"], timeout=30)
        wait_until(lambda: running_at_step(home, run_id, 1, 20), timeout=30)
        assert show(home, run_id)["market"] == "spot"
        code, _, err = cw(home, "preempt", run_id)
        assert code == 0, err
        out, err = waiter.communicate(timeout=60)
    finally:
        waiter.kill()
    final = json.loads(out)
    assert (final["state"], final["market"], final["attempts"], final["preemptions"]) == ("SUCCEEDED", "on_demand", 2, 1)
    detail = show(home, run_id)
    assert "slack is gone" in detail["placement"]["market_reason"] and detail["gave_up_spot"] is True
    log = detail["attempt_log"]
    assert [(a["market"], a["price_per_hour"]) for a in log] == [("spot", SPOT_PRICE), ("on_demand", ON_DEMAND_PRICE)]
    assert final["cost_usd"] == pytest.approx(sum(a["price_per_hour"] * a["seconds"] / 3600 for a in log), rel=1e-9)
    assert starts(detail)[1] >= 20  # resumed from its checkpoint on on-demand
    code, text, _ = cw(home, "show", run_id)
    assert code == 0 and "attempts 2 · preemptions 1" in text and "attempt 1 PREEMPTED" in text, text


def test_preempt_refuses_a_run_that_is_not_a_live_spot_attempt(home, project):
    waiter = run_wait_process(home, "plain")
    try:
        run_id = wait_until(lambda: (r := the_run(home, "plain")) and r["state"] == "RUNNING" and r["id"], timeout=30)
        code, out, err = cw(home, "preempt", run_id)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "market on_demand is not spot" in err, err
        assert show(home, run_id)["state"] == "RUNNING"  # nothing was stopped
        cw(home, "cancel", run_id)
        waiter.communicate(timeout=30)
    finally:
        waiter.kill()
    code, out, err = cw(home, "preempt", run_id)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not RUNNING" in err, err
    code, out, err = cw(home, "preempt", "r-nosuchrun")
    assert code == 2 and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("point", [None, "before-requeue", "after-requeue"])
def test_a_daemon_killed_during_the_requeue_launches_the_run_once(home, project, daemons, point):
    """None: the daemon lives and dispatches the requeued run itself; else it is killed (SIGKILL) at
    that point of the requeue and the next daemon finishes the run."""
    first = DaemonProcess(home, env={"COSTWISE_TEST_CRASH_AT": point} if point else {}).start()
    try:
        code, queued, err = cw(home, "run", "spotty", "--arg", "15", "--json")
        assert code == 0, err
        wait_until(lambda: running_at_step(home, queued["id"], 1, 3), timeout=30)
        code, record, err = cw(home, "preempt", queued["id"], "--json")
        assert code == 0, err
        if point:
            assert first.proc.wait(timeout=30) == -signal.SIGKILL  # it killed itself at the crash point
    finally:
        if point:
            first.stop()
    if point:
        assert show(home, queued["id"])["state"] == "QUEUED"
        daemons()
    final = wait_until(lambda: (r := show(home, queued["id"]))["state"] == "SUCCEEDED" and r, timeout=60)
    if not point:
        first.stop()
    launches = [e for e in final["events"] if (e["message"] or "").startswith("launched on")]
    assert len(launches) == 2, final["events"]  # the first attempt, and the requeued one once
    assert (final["attempts"], final["preemptions"]) == (2, 1)
    assert starts(final)[1] >= 3


def test_a_spot_allowed_run_lands_on_the_spot_offer_of_a_dearer_shape(home, project):
    """`cheap` sells on-demand only, at half box's on-demand price; box's spot is cheaper still: the run
    goes to box's spot offer (placement weighs every fitting shape's offers, not one shape's markets)."""
    write(project / "more.yaml", """
kind: Shape
name: cheap
vcpus: 2
memory_gib: 4
price_per_hour: 0.05
capacity: 2
---
kind: Job
name: quick
artifact: stepper.py
args: ["1"]
spot: allowed
checkpoint_interval: 1s
""")
    code, _, err = costwise_in_process(home, "apply", str(project / "more.yaml"))
    assert code == 0, err
    code, record, err = cw(home, "run", "quick", "--wait", "--json")
    assert code == 0, err
    assert (record["state"], record["shape"], record["market"]) == ("SUCCEEDED", "box", "spot")
    detail = show(home, record["id"])
    assert detail["price_per_hour"] == SPOT_PRICE and "box spot" in detail["placement"]["reason"]
    offers = {(a["shape"], a["market"]) for a in detail["placement"]["alternatives"]}
    assert offers == {("box", "spot"), ("cheap", "on_demand"), ("box", "on_demand")}
    code, text, err = costwise_in_process(home, "show", record["id"])  # each offer named with its market
    assert code == 0, err
    offer_lines = [line.split() for line in text.splitlines() if line.startswith("  box") or line.startswith("  cheap")]
    assert {(words[0], words[1]) for words in offer_lines} == {("box", "spot"), ("box", "on-demand"), ("cheap", "on-demand")}
    assert record["cost_usd"] == pytest.approx(SPOT_PRICE * record["duration_s"] / 3600)
    # a deadline without slack closes every spot offer: the cheapest on-demand offer, not box's
    code, plain, err = cw(home, "run", "late", "--wait", "--json")
    assert code == 0, err
    assert (plain["shape"], plain["market"]) == ("cheap", "on_demand")


def test_shapes_for_a_spot_job_ranks_both_markets(home, project):
    """`costwise shapes --job` asks what a run of the job would ask: its spot offers are ranked with the rest."""
    write(project / "spotjob.yaml", """
kind: Job
name: spotty
artifact: stepper.py
args: ["1"]
spot: allowed
checkpoint_interval: 1s
""")
    code, _, err = costwise_in_process(home, "apply", str(project / "spotjob.yaml"))
    assert code == 0, err
    code, ranked, err = cw(home, "shapes", "--job", "spotty", "--json")
    assert code == 0, err
    offers = [(r["shape"], r.get("market")) for r in ranked if r["fits"]]
    assert ("box", "spot") in offers and ("box", "on_demand") in offers
    assert offers[0] == ("box", "spot")  # the cheaper market first
    code, text, err = costwise_in_process(home, "shapes", "--job", "spotty")
    assert code == 0 and "box (spot)" in text, err
