"""Job manifests: built by the executor, checked by the official client's models (no API server)."""

import json
from pathlib import Path

import kubernetes_validate
import pytest
from kubernetes import client

from scheduler.executors.base import LaunchSpec
from scheduler.executors.k8s_manifest import job_manifest, job_name, parse_quantity, scheduling, valid_label
from scheduler.executors.kubernetes import KubernetesExecutor
from scheduler.core.specs import Allocatable, Mount, Requirements, ShapeSpec

GPU_SHAPE = ShapeSpec(
    name="k8s-a10", backend="kubernetes", vcpus=8, memory_gib=32, gpus=1, gpu_type="A10", price_per_hour=1.2,
    labels={"node.kubernetes.io/instance-type": "g5.2xlarge", "toleration/nvidia.com/gpu": ":NoSchedule",
            "toleration/spot": "true:NoExecute"},
)
CPU_SHAPE = ShapeSpec(name="k8s-cpu", backend="kubernetes", vcpus=1.5, memory_gib=3, price_per_hour=0.1)


def launch_spec(shape, tmp: Path = Path("/srv/costwise"), **kw) -> LaunchSpec:
    root = tmp / "runs" / "r-0a1b2c"
    dirs = {"root": root, "artifacts": root / "artifacts", "input": root / "inputs", "output": root / "outputs",
            "work": root / "work", "checkpoint": tmp / "checkpoints" / "train" / "r-0a1b2c"}
    values = dict(
        run_id="r-0a1b2c", job="train", argv=["python3", "train.py", "--epochs", "3"], workdir=dirs["work"],
        env={"PATH": "/host/bin", "HOME": "/root", "MODE": "full", "API_TOKEN": "s3cret",
             "COSTWISE_RUN_ID": "r-0a1b2c", "COSTWISE_ARTIFACTS_DIR": str(dirs["artifacts"]),
             "COSTWISE_MOUNT_DATA": "/srv/datasets"},
        secret_names=frozenset({"API_TOKEN"}), log_path=root / "run.log", shape=shape, max_runtime_s=7200.4,
        image="registry.local/ml/train:1", mounts=(Mount(source="/srv/datasets", path="/data", read_only=True),),
        labels={"team": "ml", "cost-center": "42", "bad label": "x y", "costwise-run-id": "r-0a1b2c", "costwise-job": "train"},
        retries=2, dirs=dirs,
    )
    values.update(kw)
    return LaunchSpec(**values)


def validated(manifest: dict) -> client.V1Job:
    """The client's models take the manifest and give back exactly it: no field dropped or misspelt."""
    job = client.V1Job.from_dict(manifest)
    assert client.ApiClient().sanitize_for_serialization(job) == manifest
    return job


def test_gpu_job_manifest_carries_deadline_resources_selectors_and_run_labels():
    manifest = job_manifest(launch_spec(GPU_SHAPE), "ml", ttl_s=600)
    job = validated(manifest)
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert job.metadata.name == "costwise-r-0a1b2c" and job.metadata.namespace == "ml"
    assert job.spec.active_deadline_seconds == 7201
    assert job.spec.backoff_limit == 2
    assert job.spec.ttl_seconds_after_finished == 600
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never"
    container = pod.containers[0]
    assert container.resources.limits == {"cpu": "8", "memory": "32768Mi", "nvidia.com/gpu": "1"}
    assert container.resources.requests == {"cpu": "8", "memory": "32768Mi"}
    assert pod.node_selector == {"node.kubernetes.io/instance-type": "g5.2xlarge"}
    tolerations = sorted((t.key, t.operator, t.value, t.effect) for t in pod.tolerations)
    assert tolerations == [("nvidia.com/gpu", "Exists", None, "NoSchedule"), ("spot", "Equal", "true", "NoExecute")]
    for labels in (job.metadata.labels, job.spec.template.metadata.labels):
        assert labels["costwise.io/run-id"] == "r-0a1b2c"
        assert labels["costwise.io/job"] == "train"
        assert labels["app.kubernetes.io/managed-by"] == "costwise"
        assert labels["team"] == "ml" and labels["cost-center"] == "42"
        assert "bad label" not in labels  # not a valid Kubernetes label: kept in the annotation only
    assert json.loads(job.metadata.annotations["costwise.io/labels"])["bad label"] == "x y"
    assert job.metadata.annotations["costwise.io/shape"] == "k8s-a10"


def test_container_sees_the_run_folders_at_the_same_paths_and_no_secret_values():
    spec = launch_spec(GPU_SHAPE)
    manifest = job_manifest(spec, "ml")
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python3", "train.py", "--epochs", "3"]
    assert container["workingDir"] == str(spec.workdir)
    env = {e["name"]: e for e in container["env"]}
    assert "PATH" not in env and "HOME" not in env  # the image's own
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "costwise-r-0a1b2c", "key": "API_TOKEN"}}}
    assert "s3cret" not in json.dumps(manifest)
    assert env["COSTWISE_ARTIFACTS_DIR"]["value"] == str(spec.dirs["artifacts"])
    assert env["COSTWISE_MOUNT_DATA"]["value"] == "/data"
    volumes = {v["name"]: v for v in manifest["spec"]["template"]["spec"]["volumes"]}
    mounted = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    for key in ("work", "artifacts", "input", "output", "checkpoint"):
        assert mounted[str(spec.dirs[key])]["hostPath"]["path"] == str(spec.dirs[key])
    assert mounted["/data"]["hostPath"] == {"path": "/srv/datasets"}
    assert [m for m in container["volumeMounts"] if m["mountPath"] == "/data"][0]["readOnly"] is True


def test_cpu_shape_has_no_gpu_limit_and_fractional_cpus():
    manifest = job_manifest(launch_spec(CPU_SHAPE, retries=0), "default")
    validated(manifest)
    resources = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "1500m", "memory": "3072Mi"}, "limits": {"cpu": "1500m", "memory": "3072Mi"}}
    assert manifest["spec"]["backoffLimit"] == 0
    assert "nodeSelector" not in manifest["spec"]["template"]["spec"]


def test_home_claim_mounts_one_claim_at_costwise_home_and_pvc_mounts():
    spec = launch_spec(CPU_SHAPE, mounts=(Mount(source="pvc:datasets", path="/data", read_only=True),))
    manifest = job_manifest(spec, "ml", home_claim="costwise-home")
    validated(manifest)
    pod = manifest["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]}
    mounts = {m["mountPath"]: claims[m["name"]]["claimName"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"/srv/costwise": "costwise-home", "/data": "datasets"}


def test_describe_is_the_manifest_and_names_the_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("COSTWISE_K8S_NAMESPACE", raising=False)
    plan = KubernetesExecutor().describe(launch_spec(GPU_SHAPE))
    assert plan["namespace"] == "default"
    assert plan["manifest"]["kind"] == "Job"
    assert plan["secret"] == {"name": "costwise-r-0a1b2c", "keys": ["API_TOKEN"]}


def test_names_labels_and_quantities():
    assert job_name("R_0A.1") == "costwise-r-0a-1"
    assert len(job_name("x" * 100)) <= 63
    assert valid_label("team", "ml") and valid_label("example.com/team", "ml-1")
    assert not valid_label("team", "a b") and not valid_label("bad key", "x") and not valid_label("t", "x" * 64)
    assert scheduling({"pool": "gpu", "toleration/dedicated": "ml"}) == (
        {"pool": "gpu"}, [{"key": "dedicated", "operator": "Equal", "value": "ml"}])
    assert parse_quantity("250m") == 0.25 and parse_quantity("1500000n") == pytest.approx(0.0015)
    assert parse_quantity("128Mi") == 128 * 2**20 and parse_quantity("2") == 2.0


def test_image_is_required():
    with pytest.raises(Exception, match="image"):
        job_manifest(launch_spec(CPU_SHAPE, image=None), "ml")


CATALOG_SHAPE = ShapeSpec(  # an m5.xlarge from the price catalog: 4 vCPU / 16 GiB, 3.92 / 13621 MiB allocatable
    name="m5.xlarge", backend="kubernetes", vcpus=4, memory_gib=16, price_per_hour=0.192, capacity=3,
    labels={"node.kubernetes.io/instance-type": "m5.xlarge"}, allocatable={"vcpus": 3.92, "memory_gib": 13621 / 1024},
)


def resources(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]["containers"][0]["resources"]


def test_requests_are_the_jobs_requirements_and_limits_the_shape():
    spec = launch_spec(CATALOG_SHAPE, requirements=Requirements(cpus=2, memory_gib=6))
    manifest = job_manifest(spec, "ml")
    validated(manifest)
    assert resources(manifest) == {"requests": {"cpu": "2", "memory": "6144Mi"},
                                   "limits": {"cpu": "4", "memory": "16384Mi"}}


def test_requests_never_exceed_what_a_node_of_the_shape_allocates():
    # A job that asks for the whole nominal instance (as a catalog shape used to request) gets the node's allocatable.
    for requirements in (Requirements(cpus=4, memory_gib=16), None):
        manifest = job_manifest(launch_spec(CATALOG_SHAPE, requirements=requirements), "ml")
        validated(manifest)
        requests = resources(manifest)["requests"]
        assert requests == {"cpu": "3920m", "memory": "13621Mi"}
        assert parse_quantity(requests["cpu"]) <= CATALOG_SHAPE.allocatable.vcpus
        assert parse_quantity(requests["memory"]) <= CATALOG_SHAPE.allocatable.memory_gib * 2**30
    odd = CATALOG_SHAPE.model_copy(update={"allocatable": Allocatable(vcpus=3.9999, memory_gib=13.00009)})
    requests = resources(job_manifest(launch_spec(odd, requirements=Requirements(cpus=4, memory_gib=16)), "ml"))["requests"]
    assert requests == {"cpu": "3999m", "memory": "13312Mi"}  # rounded down, never up past the node


def test_kueue_shape_creates_the_job_suspended_in_its_queue_with_the_max_exec_time():
    shape = GPU_SHAPE.model_copy(update={"kueue_queue": "ml-gpu"})
    manifest = job_manifest(launch_spec(shape), "ml")
    job = validated(manifest)
    assert job.spec.suspend is True
    assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "ml-gpu"
    assert job.metadata.labels["kueue.x-k8s.io/max-exec-time-seconds"] == "7201"  # max_runtime 7200.4s, as activeDeadlineSeconds
    assert "kueue.x-k8s.io/queue-name" not in job.spec.template.metadata.labels  # the Job's, not the pods'
    # costwise's shape stays the flavor: the pods keep the shape's node selector and tolerations
    assert job.spec.template.spec.node_selector == {"node.kubernetes.io/instance-type": "g5.2xlarge"}
    plain = job_manifest(launch_spec(GPU_SHAPE), "ml")
    assert "suspend" not in plain["spec"] and "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]


def test_manifests_pass_the_strict_schema_of_kubernetes_1_33():
    for shape in (CATALOG_SHAPE.model_copy(update={"kueue_queue": "ml"}), GPU_SHAPE):
        manifest = job_manifest(launch_spec(shape, requirements=Requirements(cpus=2, memory_gib=4)), "ml")
        kubernetes_validate.validate(manifest, "1.33.0", strict=True)
