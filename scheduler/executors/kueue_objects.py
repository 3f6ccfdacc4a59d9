"""Kueue's objects for the catalog's kubernetes shapes, as plain data (pure: no client, no I/O).

One ResourceFlavor per shape (its node labels select the shape's nodes), one ClusterQueue whose quota
per flavor is the shape's capacity x what a node of it gives pods (allocatable CPU and memory, GPUs),
and a LocalQueue in costwise's namespace per ``kueue_queue`` the shapes name. Kueue admits a Job
against the quota; costwise has already chosen the flavor by expected cost (the Job's node selector
is the shape's, so only that flavor's nodeLabels match it). kueue.x-k8s.io/v1beta1, as
https://kueue.sigs.k8s.io/docs/concepts/ describes the three kinds.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from ..core.errors import SpecError, UserError
from .k8s_manifest import GPU_RESOURCE, cpu_quantity, memory_quantity, scheduling

KUEUE_API = "kueue.x-k8s.io/v1beta1"
DEFAULT_CLUSTER_QUEUE = "costwise"
MAX_FLAVORS = 64  # a resource group's flavors (ResourceGroup.flavors MaxItems in Kueue's v1beta1 API)
NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server
_NOT_DNS = re.compile(r"[^a-z0-9]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MANAGED = {"app.kubernetes.io/managed-by": "costwise"}


def flavor_name(shape_name: str) -> str:
    """A ResourceFlavor name (a DNS label) for a shape name (which may have capitals, '.' and '_')."""
    return _NOT_DNS.sub("-", shape_name.lower()).strip("-") or "shape"


def kueue_objects(shapes: Iterable, namespace: str, cluster_queue: str = DEFAULT_CLUSTER_QUEUE) -> list[dict[str, Any]]:
    """ResourceFlavors, then the ClusterQueue, then the LocalQueues; UserError when there is nothing to
    export or two shapes would share a flavor name."""
    for field, value in (("namespace", namespace), ("cluster-queue", cluster_queue)):
        if not _DNS_LABEL.match(value):
            raise SpecError(f"--{field} {value!r} is not a Kubernetes name (lower-case letters, digits, '-')", field, value)
    kube = sorted((s for s in shapes if s.backend == "kubernetes"), key=lambda s: s.name)
    if not kube:
        raise UserError("no kubernetes shapes in the catalog: no ResourceFlavor or ClusterQueue to export")
    if len(kube) > MAX_FLAVORS:
        raise UserError(f"{len(kube)} kubernetes shapes: a Kueue ClusterQueue takes at most {MAX_FLAVORS} flavors")
    names: dict[str, str] = {}
    for shape in kube:
        other = names.setdefault(flavor_name(shape.name), shape.name)
        if other != shape.name:
            raise UserError(f"shapes {other!r} and {shape.name!r} both make ResourceFlavor {flavor_name(shape.name)!r}")
    queues = sorted({s.kueue_queue for s in kube if s.kueue_queue})
    return ([resource_flavor(s) for s in kube] + [cluster_queue_object(kube, cluster_queue, namespace)]
            + [local_queue(q, namespace, cluster_queue) for q in queues])


def resource_flavor(shape) -> dict[str, Any]:
    node_labels, _ = scheduling(shape.labels)  # tolerations stay on the Job, as without Kueue
    spec = {"nodeLabels": node_labels} if node_labels else {}
    return {"apiVersion": KUEUE_API, "kind": "ResourceFlavor",
            "metadata": {"name": flavor_name(shape.name), "labels": dict(MANAGED)}, "spec": spec}


def covered_resources(shapes) -> list[str]:
    return ["cpu", "memory"] + ([GPU_RESOURCE] if any(s.gpus > 0 for s in shapes) else [])


def flavor_quota(shape, resources: list[str]) -> dict[str, Any]:
    """The shape's capacity x a node's allocatable (its size where it has none): what its runs can request at once."""
    room = shape.allocatable or shape
    per_run = {"cpu": math.floor(round(room.vcpus * 1000, 6)) / 1000,
               "memory": math.floor(round(room.memory_gib * 1024, 6)) / 1024,
               GPU_RESOURCE: math.ceil(shape.gpus)}
    quantity = {"cpu": lambda n: cpu_quantity(n * shape.capacity),
                "memory": lambda n: memory_quantity(n * shape.capacity),
                GPU_RESOURCE: lambda n: str(n * shape.capacity)}
    return {"name": flavor_name(shape.name),
            "resources": [{"name": r, "nominalQuota": quantity[r](per_run[r])} for r in resources]}


def cluster_queue_object(shapes, name: str, namespace: str) -> dict[str, Any]:
    resources = covered_resources(shapes)
    return {
        "apiVersion": KUEUE_API, "kind": "ClusterQueue",
        "metadata": {"name": name, "labels": dict(MANAGED)},
        "spec": {
            "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: namespace}},
            "resourceGroups": [{"coveredResources": resources,
                                "flavors": [flavor_quota(s, resources) for s in shapes]}],
        },
    }


def local_queue(name: str, namespace: str, cluster_queue: str) -> dict[str, Any]:
    return {"apiVersion": KUEUE_API, "kind": "LocalQueue",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED)},
            "spec": {"clusterQueue": cluster_queue}}
