"""`costwise kueue export` through the CLI on a real catalog: the YAML it writes, and bad shapes refused on apply."""

import yaml

from tests.conftest import costwise_in_process as costwise, write

SHAPES = """
kind: Shape
name: m5.xlarge
backend: kubernetes
vcpus: 4
memory_gib: 16
price_per_hour: 0.192
capacity: 3
labels: {node.kubernetes.io/instance-type: m5.xlarge}
allocatable: {vcpus: 3.92, memory_gib: 13.3}
kueue_queue: ml
---
kind: Shape
name: local-small
vcpus: 2
memory_gib: 4
price_per_hour: 0.04
"""


def test_export_writes_flavors_cluster_queue_and_local_queues(home, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("COSTWISE_K8S_NAMESPACE", raising=False)
    assert costwise(home, "apply", str(write(tmp_path / "shapes.yaml", SHAPES)))[0] == 0
    out = tmp_path / "kueue.yaml"
    code, stdout, stderr = costwise(home, "kueue", "export", "--out", str(out), "--namespace", "ml-jobs")
    assert (code, stdout) == (0, "") and f"wrote 3 Kueue objects to {out}" in stderr
    flavor, queue, local = yaml.safe_load_all(out.read_text())
    assert (flavor["kind"], flavor["metadata"]["name"]) == ("ResourceFlavor", "m5-xlarge")
    assert flavor["spec"] == {"nodeLabels": {"node.kubernetes.io/instance-type": "m5.xlarge"}}
    assert queue["kind"] == "ClusterQueue"
    [group] = queue["spec"]["resourceGroups"]
    assert group["flavors"] == [{"name": "m5-xlarge", "resources": [
        {"name": "cpu", "nominalQuota": "11760m"},        # 3 x 3.92
        {"name": "memory", "nominalQuota": "40857Mi"}]}]  # 3 x 13619 MiB (13.3 GiB, whole MiB)
    assert local == {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
                     "metadata": {"name": "ml", "namespace": "ml-jobs", "labels": {"app.kubernetes.io/managed-by": "costwise"}},
                     "spec": {"clusterQueue": "costwise"}}
    code, stdout, _ = costwise(home, "kueue", "export")  # stdout, the executor's namespace
    assert code == 0 and list(yaml.safe_load_all(stdout))[2]["metadata"]["namespace"] == "default"


def test_export_without_kubernetes_shapes_and_bad_shapes_are_exit_2(home, tmp_path):
    code, _, stderr = costwise(home, "kueue", "export")
    assert code == 2 and stderr.startswith("error: no kubernetes shapes") and stderr.count("\n") == 1
    for extra, says in (("kueue_queue: ml", "kueue_queue='ml' is for kubernetes shapes"),
                        ("allocatable: {vcpus: 3, memory_gib: 2}", "allocatable.vcpus=3 is more than the shape's vcpus 2")):
        doc = write(tmp_path / "bad.yaml", f"kind: Shape\nname: bad\nvcpus: 2\nmemory_gib: 4\nprice_per_hour: 0.1\n{extra}\n")
        code, _, stderr = costwise(home, "apply", str(doc))
        assert code == 2 and says in stderr and stderr.count("\n") == 1
