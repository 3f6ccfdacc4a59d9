"""Runs in real Docker containers: limits, logs, deadlines, OOM, retries and adoption after a restart.

The image is built offline from this machine's python3.11 (tests/images.py); no registry is used.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scheduler.runtime.context import AppContext
from scheduler.executors.docker import DockerExecutor
from tests.conftest import write
from tests.images import TEST_IMAGE, ensure_test_image
from tests.unit.test_kubernetes_manifest import launch_spec

GIB = 2**30


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Docker engine"
        need = __import__("tests.conftest", fromlist=["need_service"]).need_service
        need("Docker", f"{type(exc).__name__}: {exc}")
    ensure_test_image(client)
    yield client
    for container in client.containers.list(all=True, filters={"label": "costwise.managed=true"}):
        if container.labels.get("costwise-job", "").startswith("dt-"):
            container.remove(force=True)


def containers_of(client, job):
    return client.containers.list(all=True, filters={"label": f"costwise-job={job}"})


DOCS = f"""
kind: Shape
name: dock-small
backend: docker
vcpus: 1.5
memory_gib: 0.5
price_per_hour: 0.05
capacity: 4
---
kind: Shape
name: dock-tiny
backend: docker
vcpus: 0.5
memory_gib: 0.0625
price_per_hour: 0.01
capacity: 4
---
kind: Job
name: dt-hello
artifact: jobs/hello.py
image: {TEST_IMAGE}
args: ["--greeting", "hi"]
env: {{MODE: full}}
requirements: {{cpus: 1, memory_gib: 0.25}}
mounts: [{{source: DATA, path: /data, read_only: true}}]
labels: {{team: ml}}
---
kind: Job
name: dt-sleepy
artifact: jobs/sleepy.py
image: {TEST_IMAGE}
requirements: {{cpus: 0.5, memory_gib: 0.05}}
max_runtime: 2s
stop_grace: 1s
---
kind: Job
name: dt-flaky
artifact: jobs/flaky.py
image: {TEST_IMAGE}
requirements: {{cpus: 0.5, memory_gib: 0.05}}
retries: 1
---
kind: Job
name: dt-hog
artifact: jobs/hog.py
image: {TEST_IMAGE}
shape: dock-tiny
requirements: {{cpus: 0.5, memory_gib: 0.05}}
"""


@pytest.fixture
def project(tmp_path, cli, docker_client):
    root = tmp_path / "project"
    data = tmp_path / "data"
    write(data / "numbers.csv", "1,2,3\n")
    write(root / "jobs" / "hello.py", """
        import os, pathlib, sys, time
        print("hello", sys.argv[1:], os.environ["MODE"], flush=True)
        assert os.getcwd() == os.environ["COSTWISE_ARTIFACTS_DIR"].replace("artifacts", "work")
        assert pathlib.Path(os.environ["COSTWISE_MOUNT_DATA"], "numbers.csv").read_text() == "1,2,3\\n"
        pathlib.Path(os.environ["COSTWISE_ARTIFACTS_DIR"], "model.txt").write_text("trained")
        pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "out.txt").write_text("done")
        pathlib.Path(os.environ["COSTWISE_CHECKPOINT_DIR"], "ckpt").write_text("1")
        blob = bytearray(40 * 2**20)
        end = time.monotonic() + float(os.environ.get("HOLD_S", "2"))
        while time.monotonic() < end:
            sum(i * i for i in range(2000))
        print("bye", flush=True)
    """)
    write(root / "jobs" / "sleepy.py", """
        import time
        print("sleeping", flush=True)
        time.sleep(60)
    """)
    write(root / "jobs" / "flaky.py", """
        import os, pathlib
        marker = pathlib.Path(os.environ["COSTWISE_CHECKPOINT_DIR"], "attempts")
        n = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(n + 1))
        print("attempt", n + 1, flush=True)
        raise SystemExit(0 if n >= 1 else 3)
    """)
    write(root / "jobs" / "hog.py", """
        chunks = []
        while True:
            chunks.append(bytearray(16 * 2**20))
    """)
    write(root / "docs.yaml", DOCS.replace("DATA", str(data)))
    proc = cli("apply", str(root / "docs.yaml"))
    assert proc.returncode == 0, proc.stderr
    return root


def test_a_docker_run_succeeds_with_the_shapes_limits_visible_while_it_runs(cli, home, project, docker_client):
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler.cli", "run", "dt-hello", "--wait", "--json"],
        env={**os.environ, "COSTWISE_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while not containers_of(docker_client, "dt-hello") and time.monotonic() < deadline:
        time.sleep(0.1)
    (container,) = containers_of(docker_client, "dt-hello")
    info = docker_client.api.inspect_container(container.id)
    host = info["HostConfig"]
    assert host["NanoCpus"] == int(1.5e9)
    assert host["Memory"] == host["MemorySwap"] == GIB // 2
    assert host["Init"] is True
    assert info["Config"]["Labels"]["costwise-run-id"].startswith("r-")
    assert info["Config"]["Labels"]["team"] == "ml"
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["COSTWISE_RUN_ID"] == info["Config"]["Labels"]["costwise-run-id"]
    assert env["COSTWISE_MOUNT_DATA"] == "/data"
    binds = {m["Destination"]: m for m in info["Mounts"]}
    assert binds[env["COSTWISE_ARTIFACTS_DIR"]]["Source"] == env["COSTWISE_ARTIFACTS_DIR"]
    assert binds["/data"]["RW"] is False

    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run = json.loads(out)
    assert (run["state"], run["exit_code"], run["backend"], run["shape"]) == ("SUCCEEDED", 0, "docker", "dock-small")
    assert 0 < run["cpu_util_avg"] <= 1 and run["mem_peak_bytes"] > 20 * 2**20
    artifacts = home / "runs" / run["id"] / "artifacts"
    assert (artifacts / "model.txt").read_text() == "trained"  # written inside, seen on the host
    log = cli("logs", run["id"]).stdout
    assert "hello ['--greeting', 'hi'] full" in log and "bye" in log
    assert not containers_of(docker_client, "dt-hello")  # removed after its logs were copied


def test_a_docker_run_past_its_max_runtime_is_killed_timed_out_and_removed(cli, project, docker_client):
    started = time.monotonic()
    run = cli.json("run", "dt-sleepy", "--wait")
    assert run["state"] == "TIMED_OUT"
    assert time.monotonic() - started < 20
    assert run["exit_code"] in (143, 137)  # SIGTERM reaches python through the container's init
    assert "sleeping" in cli("logs", run["id"]).stdout
    assert not containers_of(docker_client, "dt-sleepy")


def test_a_failed_attempt_is_retried_in_a_fresh_container_and_oom_is_reported(cli, project, docker_client):
    run = cli.json("run", "dt-flaky", "--wait")
    assert (run["state"], run["exit_code"]) == ("SUCCEEDED", 0)
    log = cli("logs", run["id"]).stdout
    assert "attempt 1" in log and "attempt 2" in log
    hog = cli.json("run", "dt-hog", "--wait")
    assert (hog["state"], hog["reason"]) == ("FAILED", "OOMKilled")
    assert not containers_of(docker_client, "dt-flaky") and not containers_of(docker_client, "dt-hog")


def test_a_restarted_daemon_adopts_the_running_container(cli, home, settings, project, docker_client):
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler.cli", "run", "dt-hello", "--wait", "--json", "--env", "HOLD_S=3"],
        env={**os.environ, "COSTWISE_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = containers_of(docker_client, "dt-hello")
        if found and found[0].status == "running" and any(home.glob("runs/*/run.log")):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor dies mid-run
    proc.wait()
    (container,) = containers_of(docker_client, "dt-hello")
    assert container.status == "running"

    ctx = AppContext(settings)  # a fresh process's view: only the store
    try:
        (run,) = [ctx.store.get_run(p.name) for p in (home / "runs").iterdir()]
        assert run.state == "RUNNING"
        executor = DockerExecutor()
        ctx.engine._executors["docker"] = executor
        saved = dict(run.handle)
        run.handle = {"run_id": run.id}  # even a launch cut short before its handle was saved is found
        assert executor.adopt(run.handle)
        assert (run.handle["container_id"], run.handle["log"]) == (saved["container_id"], saved["log"])
        final = ctx.engine.supervise(run)
    finally:
        ctx.close()
    assert (final.state, final.exit_code) == ("SUCCEEDED", 0)
    log = (home / "runs" / run.id / "run.log").read_text()
    assert log.count("hello ['--greeting', 'hi'] full") == 1 and log.count("bye") == 1
    assert not containers_of(docker_client, "dt-hello")
    # a container that is gone cannot be adopted: the run is lost
    assert not DockerExecutor().adopt({**run.handle, "container_id": "0" * 64, "run_id": "r-gone"})
    assert DockerExecutor().wait({**run.handle, "container_id": "0" * 64, "run_id": "r-gone"}, 0).reason == "lost"


def test_a_gpu_shape_renders_a_device_request_in_the_container_spec():
    from scheduler.core.specs import ShapeSpec

    gpu = ShapeSpec(name="dock-a10", backend="docker", vcpus=4, memory_gib=16, gpus=2, gpu_type="A10", price_per_hour=1.0)
    plan = DockerExecutor().describe(launch_spec(gpu, image=TEST_IMAGE))
    container = plan["container"]
    assert container["device_requests"] == [{"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]
    assert (container["nano_cpus"], container["mem_limit"]) == (4 * 10**9, 16 * GIB)
    assert container["environment"]["API_TOKEN"] == "<secret>"
    assert "PATH" not in container["environment"]
    cpu = ShapeSpec(name="dock-cpu", backend="docker", vcpus=1, memory_gib=1, price_per_hour=0.1)
    assert "device_requests" not in DockerExecutor().describe(launch_spec(cpu, image=TEST_IMAGE))["container"]


def test_dry_run_prints_the_container_spec_without_launching(cli, tmp_path):
    write(tmp_path / "train.py", "print('x')\n")
    write(tmp_path / "docs.yaml", f"""
        kind: Shape
        name: dock-gpu
        backend: docker
        vcpus: 4
        memory_gib: 16
        gpus: 1
        gpu_type: A10
        price_per_hour: 1.0
        ---
        kind: Job
        name: dt-train
        artifact: train.py
        image: {TEST_IMAGE}
        requirements: {{gpus: 1}}
    """)
    assert cli("apply", str(tmp_path / "docs.yaml")).returncode == 0
    plan = cli.json("run", "dt-train", "--shape", "dock-gpu", "--dry-run")
    assert plan["backend"] == "docker"
    assert plan["launch"]["container"]["device_requests"][0]["Count"] == 1
    assert plan["launch"]["container"]["command"] == ["python3", "train.py"]
    assert not list((cli.home / "runs").glob("*")) if (cli.home / "runs").exists() else True


DOCKER_SHAPES = """
kind: Shape
name: docker-small
backend: docker
vcpus: 1
memory_gib: 2
price_per_hour: 0.0464
capacity: 2
---
kind: Shape
name: docker-medium
backend: docker
vcpus: 2
memory_gib: 8
price_per_hour: 0.192
capacity: 2
"""


def test_the_example_pipeline_moves_from_local_to_docker_shapes_by_one_field(cli, tmp_path, docker_client):
    """The jobs name their image (unused on local shapes); the pipeline's `backends` is the switch."""
    import yaml

    from scheduler.cli.examples import RETRAIN, retrain_documents

    docs = retrain_documents(include_shapes=True) + list(yaml.safe_load_all(DOCKER_SHAPES))
    for doc in docs:
        if doc["kind"] == "Job":
            doc.update(artifact=str(RETRAIN / doc["artifact"]), image=TEST_IMAGE)
        if doc["kind"] == "Pipeline":
            doc.update(backends=["local"], parameters={**doc["parameters"], "epochs": 50}, schedule=None)
    path = tmp_path / "retrain.yaml"

    def run_on(backends: list[str]) -> dict:
        for doc in docs:
            if doc["kind"] == "Pipeline":
                doc["backends"] = backends
        path.write_text(yaml.safe_dump_all(docs))
        assert cli("apply", str(path)).returncode == 0
        return cli.json("pipeline", "run", "retrain", "--wait", "--force-all", timeout=180)

    local = run_on(["local"])
    docker_run = run_on(["docker"])
    for prun, backend in ((local, "local"), (docker_run, "docker")):
        assert prun["state"] in ("SUCCEEDED", "FAILED"), prun
        ran = [s for s in prun["steps"] if s["state"] not in ("SKIPPED",) and s.get("job")]
        assert ran and all(s["backend"] == backend for s in ran), [(s["step"], s["backend"]) for s in ran]
        assert {s["step"]: s["state"] for s in prun["steps"]}["evaluate"] == "SUCCEEDED"
    # the same code and data give the same verdict wherever it runs
    assert [s["state"] for s in local["steps"]] == [s["state"] for s in docker_run["steps"]]
    assert not containers_of(docker_client, "train")


# -- a spot run's container killed from outside ----------------------------------------------------
# Works in 0.2 s steps, checkpoints each, resumes from the checkpoint; each start is noted with its step.
STEPPER = """
import json, os, sys, time
ckpt = os.path.join(os.environ["COSTWISE_CHECKPOINT_DIR"], "state.json")
step = json.load(open(ckpt))["step"] if os.path.exists(ckpt) else 0
with open(os.path.join(os.environ["COSTWISE_ARTIFACTS_DIR"], "starts.txt"), "a") as f:
    f.write(f"{step}\\n")
while step < int(sys.argv[1]):
    time.sleep(0.2)
    step += 1
    with open(ckpt + ".tmp", "w") as f:
        json.dump({"step": step}, f)
    os.replace(ckpt + ".tmp", ckpt)
print("done at", step, flush=True)
"""

SPOT_DOCS = f"""
kind: Shape
name: dock-spot
backend: docker
vcpus: 0.5
memory_gib: 0.25
price_per_hour: 0.04
spot_price_per_hour: 0.012
capacity: 2
---
kind: Job
name: dt-spotty
artifact: stepper.py
image: {TEST_IMAGE}
args: ["15"]
requirements: {{cpus: 0.5, memory_gib: 0.1}}
spot: allowed
checkpoint_interval: 1s
stop_grace: 1s
---
kind: Job
name: dt-steady
artifact: stepper.py
image: {TEST_IMAGE}
args: ["100"]
requirements: {{cpus: 0.5, memory_gib: 0.1}}
stop_grace: 1s
"""


@pytest.fixture
def spot_project(tmp_path, cli, docker_client):
    root = tmp_path / "spot"
    write(root / "stepper.py", STEPPER)
    write(root / "docs.yaml", SPOT_DOCS)
    proc = cli("apply", str(root / "docs.yaml"))
    assert proc.returncode == 0, proc.stderr
    return root


def kill_at_step(home, docker_client, job: str, step: int) -> str:
    """`docker kill` (the CLI, as anyone else would) the job's container once it checkpointed ``step``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [c for c in containers_of(docker_client, job) if c.status == "running"]
        if found:
            run_id = found[0].labels["costwise-run-id"]
            try:
                if json.loads((home / "checkpoints" / job / run_id / "state.json").read_text())["step"] >= step:
                    subprocess.run(["docker", "kill", found[0].id], check=True, capture_output=True, timeout=30)
                    return run_id
            except (OSError, ValueError):
                pass
        time.sleep(0.1)
    raise AssertionError(f"{job} never reached step {step}")


def run_wait(home, job):
    return subprocess.Popen([sys.executable, "-m", "scheduler.cli", "run", job, "--wait", "--json"],
                            env={**os.environ, "COSTWISE_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_spot_runs_container_killed_from_outside_is_requeued_and_resumes_from_its_checkpoint(
        cli, home, spot_project, docker_client):
    proc = run_wait(home, "dt-spotty")
    try:
        run_id = kill_at_step(home, docker_client, "dt-spotty", 3)
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    run = json.loads(out)
    assert run["id"] == run_id
    assert (run["state"], run["market"], run["attempts"], run["preemptions"]) == ("SUCCEEDED", "spot", 2, 1)
    detail = cli.json("show", run_id)
    log = detail["attempt_log"]
    assert [a["state"] for a in log] == ["PREEMPTED", "SUCCEEDED"] and all(a["price_per_hour"] == 0.012 for a in log)
    assert run["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in log), rel=1e-9)
    starts = [int(x) for x in (home / "runs" / run_id / "artifacts" / "starts.txt").read_text().split()]
    assert starts[0] == 0 and starts[1] >= 3  # the second container resumed from the checkpoint
    assert any("PREEMPTED" in (e["message"] or "") for e in detail["events"])
    assert "done at 15" in cli("logs", run_id).stdout
    assert not containers_of(docker_client, "dt-spotty")


def test_an_on_demand_runs_container_killed_from_outside_fails_as_before(cli, home, spot_project, docker_client):
    proc = run_wait(home, "dt-steady")
    try:
        run_id = kill_at_step(home, docker_client, "dt-steady", 1)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    run = json.loads(out)
    assert run["id"] == run_id
    assert (run["state"], run["exit_code"], run["market"], run["attempts"], run["preemptions"]) == (
        "FAILED", 137, "on_demand", 1, 0)
    assert run["reason"] == "killed from outside (exit code 137)"
    assert not containers_of(docker_client, "dt-steady")
