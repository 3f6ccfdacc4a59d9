"""`costwise kueue export`'s objects: a ResourceFlavor per kubernetes shape, one ClusterQueue whose quota per
flavor is capacity x allocatable, a LocalQueue per kueue_queue (kueue.x-k8s.io/v1beta1, checked by shape:
no Kueue CRD schema or API server here)."""

import re

import pytest
from kubernetes import client

from scheduler.core.errors import SpecError, UserError
from scheduler.core.specs import ShapeSpec
from scheduler.executors.k8s_manifest import parse_quantity
from scheduler.executors.kueue_objects import flavor_name, kueue_objects

M5 = ShapeSpec(name="m5.xlarge", backend="kubernetes", vcpus=4, memory_gib=16, price_per_hour=0.192, capacity=3,
               labels={"node.kubernetes.io/instance-type": "m5.xlarge"}, kueue_queue="ml",
               allocatable={"vcpus": 3.92, "memory_gib": 13621 / 1024})
G5 = ShapeSpec(name="G5_2xl", backend="kubernetes", vcpus=8, memory_gib=32, gpus=1, gpu_type="A10", price_per_hour=1.2,
               capacity=2, labels={"node.kubernetes.io/instance-type": "g5.2xlarge", "toleration/nvidia.com/gpu": ":NoSchedule"},
               kueue_queue="ml-gpu")
SPOT = ShapeSpec(name="m5-spot", backend="kubernetes", vcpus=4, memory_gib=16, price_per_hour=0.07,
                 labels={"pool": "spot"}, kueue_queue="ml")
LOCAL = ShapeSpec(name="local-small", vcpus=2, memory_gib=4, price_per_hour=0.04)
KUEUE = "kueue.x-k8s.io/v1beta1"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def by_kind(objects):
    kinds = {}
    for obj in objects:
        assert obj["apiVersion"] == KUEUE and set(obj) == {"apiVersion", "kind", "metadata", "spec"}
        assert DNS_LABEL.match(obj["metadata"]["name"])
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def test_a_flavor_per_kubernetes_shape_with_its_node_labels():
    kinds = by_kind(kueue_objects([M5, G5, LOCAL], "ml"))
    flavors = {f["metadata"]["name"]: f["spec"] for f in kinds["ResourceFlavor"]}
    assert flavors == {"g5-2xl": {"nodeLabels": {"node.kubernetes.io/instance-type": "g5.2xlarge"}},  # no toleration/ label
                       "m5-xlarge": {"nodeLabels": {"node.kubernetes.io/instance-type": "m5.xlarge"}}}
    for labels in flavors.values():  # nodeLabels are a node selector: valid label keys and values
        client.V1PodSpec(containers=[], node_selector=labels["nodeLabels"])


def test_cluster_queue_quota_is_capacity_times_allocatable_and_gpus():
    [queue] = by_kind(kueue_objects([M5, G5, SPOT], "ml", "team-a"))["ClusterQueue"]
    assert queue["metadata"]["name"] == "team-a"
    assert queue["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ml"}}
    [group] = queue["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory", "nvidia.com/gpu"]
    quotas = {f["name"]: {r["name"]: parse_quantity(r["nominalQuota"]) for r in f["resources"]} for f in group["flavors"]}
    assert quotas["m5-xlarge"] == {"cpu": pytest.approx(3 * 3.92), "memory": 3 * 13621 * 2**20, "nvidia.com/gpu": 0}
    assert quotas["g5-2xl"] == {"cpu": 2 * 8, "memory": 2 * 32 * 2**30, "nvidia.com/gpu": 2}  # no allocatable: its size
    assert quotas["m5-spot"] == {"cpu": 4, "memory": 16 * 2**30, "nvidia.com/gpu": 0}
    for flavor in group["flavors"]:  # Kueue wants every flavor to list the covered resources, in order
        assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]


def test_cpu_only_catalog_covers_cpu_and_memory_and_local_queues_are_distinct():
    kinds = by_kind(kueue_objects([M5, SPOT], "batch"))
    assert kinds["ClusterQueue"][0]["spec"]["resourceGroups"][0]["coveredResources"] == ["cpu", "memory"]
    assert [(q["metadata"]["name"], q["metadata"]["namespace"], q["spec"]) for q in kinds["LocalQueue"]] == [
        ("ml", "batch", {"clusterQueue": "costwise"})]


def test_what_cannot_be_exported_is_one_line():
    with pytest.raises(UserError, match="no kubernetes shapes"):
        kueue_objects([LOCAL], "ml")
    with pytest.raises(UserError, match="both make ResourceFlavor 'm5-xlarge'"):
        kueue_objects([M5, M5.model_copy(update={"name": "M5_xlarge"})], "ml")
    with pytest.raises(SpecError, match="--namespace 'Ml' is not a Kubernetes name"):
        kueue_objects([M5], "Ml")
    with pytest.raises(SpecError, match="--cluster-queue 'a_b'"):
        kueue_objects([M5], "ml", "a_b")
    assert flavor_name("GPU__A100.80GB") == "gpu-a100-80gb"
