"""The Kubernetes executor's state handling, through the real client, against a small fake API server.

What this cannot show (no API server can be installed here): real scheduling onto nodes, the
control plane enforcing activeDeadlineSeconds / backoffLimit / ttlSecondsAfterFinished, owner
garbage collection of the run's Secret, real kubelet log streaming and metrics-server numbers.
"""

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest

from scheduler.store.catalog import apply_documents, load_documents
from scheduler.executors.kubernetes import KubernetesExecutor
from tests.conftest import ROOT, write
from tests.integration.kube_api import FakeKube
from tests.unit.test_kubernetes_manifest import GPU_SHAPE, launch_spec

JOB = "costwise-r-0a1b2c"


@pytest.fixture
def kube(tmp_path, monkeypatch):
    fake = FakeKube()
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps(fake.kubeconfig(namespace="ml")))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("COSTWISE_K8S_NAMESPACE", raising=False)
    yield fake
    fake.close()


@pytest.fixture
def spec(tmp_path):
    s = launch_spec(GPU_SHAPE, tmp=tmp_path)
    s.log_path.parent.mkdir(parents=True)
    return s


def read(path):
    return path.read_text() if path.exists() else ""


def wait_for(executor, handle, timeout=5.0):
    status = executor.wait(handle, timeout)
    assert status is not None, "the run did not end"
    return status


def test_launch_posts_the_manifest_then_follows_logs_metrics_and_exit(kube, spec):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(spec)
    assert json.loads(json.dumps(handle)) == handle  # persisted by the engine as JSON
    assert (handle["namespace"], handle["job_name"]) == ("ml", JOB)  # namespace from the kubeconfig context
    posted = kube.requests_of("POST", "/jobs")[0][3]
    assert posted == executor.describe(spec)["manifest"]
    # the secret value travels only in a Secret, owned by the Job
    secret = kube.secrets[("ml", JOB)]
    assert secret["stringData"] == {"API_TOKEN": "s3cret"}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == handle["uid"]
    assert "s3cret" not in json.dumps(posted)

    pod = kube.pod_of(JOB)
    kube.log(pod, "epoch 1")
    kube.metrics[pod] = {"cpu": "6", "memory": "3Gi"}
    assert executor.wait(handle, 0.2) is None
    executor.sample(handle)
    kube.log(pod, "epoch 2")
    kube.finish(JOB, 0)
    assert wait_for(executor, handle).exit_code == 0
    usage = executor.usage(handle)
    assert usage.cpu_util_avg == pytest.approx(6 / 8) and usage.mem_peak_bytes == 3 * 2**30
    assert spec.log_path.read_text() == "starting python3 train.py --epochs 3\nepoch 1\nepoch 2\n"


@pytest.mark.parametrize("code,reason,condition,expected", [
    (3, None, "BackoffLimitExceeded", "BackoffLimitExceeded: exit code 3"),
    (137, "OOMKilled", "BackoffLimitExceeded", "OOMKilled"),
])
def test_failed_job_reports_the_pod_exit_code_and_reason(kube, spec, code, reason, condition, expected):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(spec)
    kube.finish(JOB, code, reason=reason, condition=condition)
    status = wait_for(executor, handle)
    assert (status.exit_code, status.reason) == (code, expected)


def test_cancel_deletes_the_job_in_the_foreground_with_the_grace_period(kube, spec):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(spec)
    kube.log(kube.pod_of(JOB), "working")
    time.sleep(0.2)
    status = executor.cancel(handle, grace_s=7.5)
    assert status.reason == "deleted"
    method, path, query, body = kube.requests_of("DELETE", "/jobs/")[0]
    assert path.endswith(f"/namespaces/ml/jobs/{JOB}")
    options = {**query, **(body or {})}
    assert options.get("propagationPolicy") == "Foreground"
    assert str(options.get("gracePeriodSeconds")) == "8"
    assert ("ml", JOB) not in kube.jobs
    assert "working" in spec.log_path.read_text()


LAUNCHER = """
import json, pickle, sys, time
from scheduler.executors.kubernetes import KubernetesExecutor
executor = KubernetesExecutor(poll_s=0.05)
handle = executor.launch(pickle.load(open(sys.argv[1], "rb")))
print(json.dumps(handle), flush=True)
while True:
    executor.wait(handle, 1.0)
"""


def test_a_restarted_daemon_adopts_the_job_without_copying_logs_twice(kube, spec, tmp_path):
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps(spec))
    first = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path / "spec.pkl")], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        handle = json.loads(first.stdout.readline())
        pod = kube.pod_of(JOB)
        kube.log(pod, "before restart")
        deadline = time.monotonic() + 10
        while "before restart" not in read(spec.log_path) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        first.kill()  # the daemon dies; a new process knows only the persisted handle
        first.wait()

    second = KubernetesExecutor(poll_s=0.05)
    assert second.adopt(handle)
    kube.log(pod, "after restart")
    kube.finish(JOB, 0)
    assert wait_for(second, handle).exit_code == 0
    assert spec.log_path.read_text().splitlines() == ["starting python3 train.py --epochs 3", "before restart", "after restart"]

    # found by its run label when the name in the handle is stale
    third = KubernetesExecutor(poll_s=0.05)
    assert third.adopt({**handle, "job_name": "renamed"})
    third.forget(handle)
    # and from the run id alone (a launch cut short before its handle was saved)
    bare = {"run_id": handle["run_id"]}
    fourth = KubernetesExecutor(poll_s=0.05)
    assert fourth.adopt(bare)
    assert (bare["namespace"], bare["job_name"], bare["log"]) == ("ml", JOB, handle["log"])
    fourth.forget(bare)


def test_a_job_that_is_gone_is_lost(kube, spec):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(spec)
    with kube.lock:  # deleted behind our back, pods and all
        del kube.jobs[("ml", JOB)]
        kube.pods.clear()
    fresh = KubernetesExecutor(poll_s=0.05)
    assert not fresh.adopt(handle)
    assert fresh.wait(handle, 0.1).reason == "lost"
    assert wait_for(executor, handle).reason == "lost"


def test_a_second_launch_of_the_same_run_is_refused(kube, spec):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(spec)
    with pytest.raises(Exception, match="already exists"):
        executor.launch(spec)
    executor.forget(handle)


# -- through the engine ----------------------------------------------------------------------------
DOCS = """
kind: Shape
name: k8s-small
backend: kubernetes
vcpus: 2
memory_gib: 4
price_per_hour: 0.2
labels: {pool: cpu}
---
kind: Job
name: train
artifact: train.py
image: registry.local/ml/train:1
requirements: {cpus: 1, memory_gib: 1}
retries: 2
max_runtime: 1s
stop_grace: 1s
labels: {team: ml}
"""


@pytest.fixture
def engine(app, kube, tmp_path):
    write(tmp_path / "proj" / "train.py", "print('training')\n")
    write(tmp_path / "proj" / "docs.yaml", DOCS)
    apply_documents(load_documents([tmp_path / "proj" / "docs.yaml"]), app.store, app.settings)
    eng = app.engine
    eng.executor("kubernetes").poll_s = 0.05
    return eng


def test_engine_runs_a_job_to_success_and_lets_kubernetes_do_the_retries(engine, kube):
    kube.auto_exit = (0.3, 0)
    run = engine.run_to_completion(engine.submit("train"))
    assert (run.state, run.exit_code, run.backend) == ("SUCCEEDED", 0, "kubernetes")
    manifest = kube.requests_of("POST", "/jobs")[0][3]
    assert manifest["spec"]["backoffLimit"] == 2 and manifest["spec"]["activeDeadlineSeconds"] == 1
    assert manifest["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert "starting python3 train.py" in (engine.settings.run_dir(run.id) / "run.log").read_text()

    kube.auto_exit = (0.3, 4)
    failed = engine.run_to_completion(engine.submit("train"))
    assert (failed.state, failed.exit_code) == ("FAILED", 4)
    assert len(kube.requests_of("POST", "/jobs")) == 2  # the Job's backoffLimit retries, not the engine


def test_engine_deletes_a_job_past_its_max_runtime(engine, kube):
    kube.auto_exit = None  # never ends by itself
    run = engine.run_to_completion(engine.submit("train"))
    assert run.state == "TIMED_OUT"
    assert kube.requests_of("DELETE", "/jobs/")
    assert not kube.jobs


def test_dry_run_prints_the_job_manifest_and_creates_nothing(cli, kube, tmp_path):
    write(tmp_path / "proj" / "train.py", "print('training')\n")
    write(tmp_path / "proj" / "docs.yaml", DOCS.replace("pool: cpu", "pool: cpu, toleration/dedicated: ml"))
    assert cli("apply", str(tmp_path / "proj" / "docs.yaml")).returncode == 0
    plan = cli.json("run", "train", "--shape", "k8s-small", "--dry-run")
    manifest = plan["launch"]["manifest"]
    assert (plan["backend"], manifest["apiVersion"], manifest["kind"]) == ("kubernetes", "batch/v1", "Job")
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["spec"]["template"]["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml"}]
    assert kube.requests == []  # nothing was sent to the API server


# -- a pod taken away ------------------------------------------------------------------------------
def test_a_spot_attempts_disrupted_pod_ends_it_preempted_and_its_job_is_deleted(kube, spec):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(dataclasses.replace(spec, preemptible=True))
    assert handle["preemptible"] is True  # kept with the run, so an adopting daemon knows it too
    assert executor.wait(handle, 0.2) is None
    pod = kube.disrupt(JOB, reason="PreemptionByScheduler")  # the Job itself is still active
    status = wait_for(executor, handle)
    assert status.is_preempted and status.exit_code == 137
    assert status.reason == f"pod {pod} disrupted: PreemptionByScheduler"
    method, path, query, body = kube.requests_of("DELETE", "/jobs/")[0]
    assert path.endswith(f"/jobs/{JOB}") and {**query, **(body or {})}.get("propagationPolicy") == "Foreground"
    assert ("ml", JOB) not in kube.jobs  # the next attempt creates a fresh Job of the same name


def test_an_on_demand_runs_disrupted_pod_is_left_to_the_job_and_a_failed_job_stays_a_failure(kube, spec):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(spec)
    kube.disrupt(JOB)  # the Job controller's business (backoffLimit): not the run's end
    assert executor.wait(handle, 0.3) is None
    with kube.lock:
        kube.jobs[("ml", JOB)]["status"] = {"failed": 1, "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    status = wait_for(executor, handle)
    assert (status.exit_code, status.reason, status.is_preempted) == (137, "pod disrupted: PreemptionByScheduler", True)
    assert not kube.requests_of("DELETE", "/jobs/") and ("ml", JOB) in kube.jobs  # as any failed Job


def test_a_spot_attempts_pod_deleted_with_its_node_ends_it_preempted(kube, spec):
    executor = KubernetesExecutor(poll_s=0.05)
    handle = executor.launch(dataclasses.replace(spec, preemptible=True))
    assert executor.wait(handle, 0.3) is None  # polled: its pod is seen
    pod = kube.lose_node(JOB)
    status = wait_for(executor, handle)
    assert status.is_preempted and status.reason == f"pod {pod} deleted while its Job was active (node gone)"
    assert ("ml", JOB) not in kube.jobs


SPOT_DOCS = """
kind: Shape
name: k8s-spot
backend: kubernetes
vcpus: 2
memory_gib: 4
price_per_hour: 0.2
spot_price_per_hour: 0.06
labels: {pool: cpu}
---
kind: Job
name: ktrain
artifact: train.py
image: registry.local/ml/train:1
requirements: {cpus: 1, memory_gib: 1}
spot: allowed
checkpoint_interval: 1s
stop_grace: 1s
---
kind: Job
name: kplain
artifact: train.py
image: registry.local/ml/train:1
requirements: {cpus: 1, memory_gib: 1}
stop_grace: 1s
"""


@pytest.fixture
def spot_engine(app, kube, tmp_path):
    write(tmp_path / "proj" / "train.py", "print('training')\n")
    write(tmp_path / "proj" / "docs.yaml", SPOT_DOCS)
    apply_documents(load_documents([tmp_path / "proj" / "docs.yaml"]), app.store, app.settings)
    eng = app.engine
    eng.executor("kubernetes").poll_s = 0.05
    return eng


def in_thread(engine, job):
    ended = {}
    thread = threading.Thread(target=lambda: ended.update(run=engine.run_to_completion(engine.submit(job))),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not kube_jobs_running(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # polled at least once: its pod is seen
    return thread, ended


def kube_jobs_running(engine) -> bool:
    return any(r.state == "RUNNING" for r in engine.store.list_runs())


@pytest.mark.parametrize("how", ["disrupted", "evicted", "node gone"])
def test_a_spot_run_whose_pod_is_taken_away_is_requeued_and_succeeds_on_a_fresh_job(spot_engine, kube, how):
    thread, ended = in_thread(spot_engine, "ktrain")
    (job,) = [name for _, name in kube.jobs]
    kube.auto_exit = (0.3, 0)  # the next pod succeeds
    if how == "disrupted":
        kube.disrupt(job, reason="TerminationByKubelet")
    elif how == "evicted":
        kube.disrupt(job, evicted=True, job_fails=True)  # backoffLimit 0: the Job failed too
    else:
        kube.lose_node(job)
    thread.join(timeout=30)
    run = ended["run"]
    assert (run.state, run.market, run.attempts, run.preemptions) == ("SUCCEEDED", "spot", 2, 1)
    log = run.extra["attempt_log"]
    assert [a["state"] for a in log] == ["PREEMPTED", "SUCCEEDED"] and all(a["market"] == "spot" for a in log)
    assert run.cost_usd == pytest.approx(sum(a["cost_usd"] for a in log))
    assert len(kube.requests_of("POST", "/jobs")) == 2 and len(kube.requests_of("DELETE", f"/jobs/{job}")) == 1
    assert any("PREEMPTED" in (e["message"] or "") for e in spot_engine.store.events(run.id))


def test_an_on_demand_run_whose_job_failed_with_its_pod_disrupted_fails(spot_engine, kube):
    thread, ended = in_thread(spot_engine, "kplain")
    (job,) = [name for _, name in kube.jobs]
    kube.disrupt(job, job_fails=True)
    thread.join(timeout=30)
    run = ended["run"]
    assert (run.state, run.market, run.attempts, run.preemptions) == ("FAILED", "on_demand", 1, 0)
    assert run.reason == "pod disrupted: PreemptionByScheduler" and len(kube.requests_of("POST", "/jobs")) == 1
